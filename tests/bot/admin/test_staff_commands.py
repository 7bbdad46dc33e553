"""Staff commands in chat: who may run what, confirmation, audit, invites; strangers see nothing."""

from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import select

from bot.keys import SERVICES
from commerce.staff.models import AuditEntry, StaffMember
from tests.bot.conftest import ShopFactory
from tests.bot.driver import Shop, db

pytestmark = pytest.mark.sqlite_only  # staff commands through the chat: their use cases run on both databases in tests/commerce

OWNER = "o_owner_0001"
HELPER = "o_helper_0002"
OTHER = "o_helper_0003"


@pytest.fixture
async def staffed(make_shop: ShopFactory, db_url: str) -> Shop:
    return await make_shop(db_url, staff={"owners": [OWNER]})


async def _audit(shop: Shop) -> list[AuditEntry]:
    async with db(shop.client.app)() as session:
        return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all())


async def test_help_lists_what_the_role_may_run(staffed: Shop) -> None:
    reply = await staffed.user(OWNER).say("/help")
    assert "/staff" in reply.text and "/audit" in reply.text and "/mute" in reply.text
    assert (await staffed.user(OWNER).say("／帮助")).text == reply.text  # full-width slash, zh name


async def test_a_stranger_typing_a_command_just_searches(staffed: Shop) -> None:
    reply = await staffed.user("o_customer_9").say("/staff list")
    assert "员工" not in reply.text and "/help" not in reply.text
    assert "没有找到" in reply.text or "找到" in reply.text  # an ordinary search answer
    (entry,) = await _audit(staffed)
    assert (entry.actor, entry.command, entry.outcome, entry.role) == ("o_customer_9", "staff", "refused", "")


async def test_unknown_command_and_wrong_arguments(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    assert "没有「/nosuch」这个命令" in (await owner.say("/nosuch 1 2")).text
    usage = await owner.say("/staff add")
    assert "参数不对" in usage.text and "/staff list" in usage.text
    assert "参数不对" in (await owner.say("/staff add o_someone_1 emperor")).text


async def test_owner_adds_changes_and_removes_staff_with_confirmation(staffed: Shop) -> None:
    owner, helper = staffed.user(OWNER), staffed.user(HELPER)
    assert "已添加员工" in (await owner.say(f"/staff add {HELPER} service 小王")).text
    helper_help = await helper.say("/help")
    assert "/mute" in helper_help.text and "/staff" not in helper_help.text
    refused = await helper.say("/staff list")
    assert "不能使用 /staff" in refused.text
    assert "运营" in (await owner.say(f"/staff role {HELPER} operator")).text

    ask = await owner.say(f"/staff remove {HELPER}")
    assert "将移除员工" in ask.text and "确认码" in ask.text
    assert "已取消" in (await owner.say("算了，不删了")).text
    async with db(staffed.client.app)() as session:
        assert await session.scalar(select(StaffMember.role).where(StaffMember.openid == HELPER)) == "operator"

    ask = await owner.say(f"/staff remove {HELPER}")
    code = ask.text.split("确认码 ")[1][:4]
    assert "已移除员工" in (await owner.say(code)).text
    after = await helper.say("/help")
    assert "/mute" not in after.text  # an ex-staff member is a customer again

    entries = await _audit(staffed)
    removal = [e for e in entries if e.command == "staff" and e.args[:1] == ["remove"]]
    assert [e.outcome for e in removal] == ["cancelled", "ok"]
    assert removal[-1].before is not None and removal[-1].before["role"] == "operator"
    assert any(e.actor == HELPER and e.outcome == "refused" for e in entries)


async def test_a_confirmation_that_comes_too_late_does_nothing(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    await owner.say(f"/staff add {HELPER} service")
    await owner.say(f"/staff remove {HELPER}")
    store = staffed.client.app[SERVICES].dialogs.store
    stored = await store.get(OWNER)
    assert stored is not None and stored.dialog == "confirm"
    await store.put(OWNER, dataclasses.replace(stored, data={**stored.data, "deadline": time.time() - 1}))
    assert "超时" in (await owner.say("确认")).text
    async with db(staffed.client.app)() as session:
        assert await session.scalar(select(StaffMember.openid).where(StaffMember.openid == HELPER)) == HELPER


async def test_text_that_is_no_command_calls_a_pending_confirmation_off(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    await owner.say(f"/staff add {HELPER} service")
    await owner.say(f"/staff remove {HELPER}")
    assert "已取消" in (await owner.say("好的吧")).text  # not a yes: the action was called off
    assert "已移除" not in (await owner.say("确认")).text
    async with db(staffed.client.app)() as session:
        assert await session.scalar(select(StaffMember.openid).where(StaffMember.openid == HELPER)) == HELPER


async def test_bug_a_command_typed_while_a_confirmation_waits_was_dropped(sqlite_staffed: Shop) -> None:
    """Issue 15: another command called the pending one off and was not run. Now it runs,
    the pending one keeps waiting (the reply says so), and 确认 still runs it."""
    owner = sqlite_staffed.user(OWNER)
    await owner.say(f"/staff add {HELPER} service")
    assert "确认码" in (await owner.say(f"/staff remove {HELPER}")).text
    meanwhile = await owner.say("/staff list")
    assert HELPER in meanwhile.text  # the command ran
    assert "/staff 仍在等待确认" in meanwhile.text
    assert "已移除员工" in (await owner.say("确认")).text
    async with db(sqlite_staffed.client.app)() as session:
        assert await session.scalar(select(StaffMember.openid).where(StaffMember.openid == HELPER)) is None


async def test_a_command_needing_its_own_confirmation_replaces_the_pending_one(sqlite_staffed: Shop) -> None:
    owner = sqlite_staffed.user(OWNER)
    await owner.say(f"/staff add {HELPER} service")
    await owner.say(f"/staff add {OTHER} service")
    await owner.say(f"/staff remove {HELPER}")
    second = await owner.say(f"/staff remove {OTHER}")
    assert "之前的 /staff 已取消" in second.text and "确认码" in second.text
    await owner.say("确认")
    async with db(sqlite_staffed.client.app)() as session:
        left = set(await session.scalars(select(StaffMember.openid).where(StaffMember.openid.in_([HELPER, OTHER]))))
    assert left == {HELPER}  # only the second removal ran


async def test_invite_code_makes_staff_once(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    invite = await owner.say("/staff invite operator")
    code = invite.text.split("/join ")[1].strip()
    newcomer = staffed.user("o_newcomer_3")
    assert "欢迎加入" in (await newcomer.say(f"/join {code}")).text
    assert "/stats" in (await newcomer.say("/help")).text or "/mute" in (await newcomer.say("/help")).text
    other = staffed.user("o_other_4")
    reply = await other.say(f"/join {code}")  # used: just text, no hint
    assert "欢迎加入" not in reply.text and "邀请" not in reply.text


async def test_mute_and_audit(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    assert "已关闭员工提醒" in (await owner.say("/mute")).text
    assert "已开启员工提醒" in (await owner.say("/unmute")).text
    log = await owner.say("/audit 5")
    assert "/mute" in log.text and "/unmute" in log.text
    assert "参数不对" in (await owner.say("/audit lots")).text


async def test_help_by_group_and_by_command(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    overview = await owner.say("/help")
    assert len(overview.text.encode()) < 2000 and "员工：" in overview.text
    group = await owner.say("/help 员工")
    assert "/staff list" in group.text and "/audit [条数]" in group.text
    one = await owner.say("/help audit")
    assert "/audit [条数]" in one.text and "/staff list" not in one.text
    assert "参数不对" in (await owner.say("/help nothing_like_this")).text


async def test_staff_are_added_by_the_customer_number_alerts_show(sqlite_staffed: Shop) -> None:
    owner = sqlite_staffed.user(OWNER)
    assert "没有找到这位顾客" in (await owner.say("/staff add 顾客…_0002 service")).text  # nobody wrote yet
    await sqlite_staffed.user(HELPER).say("你好")
    assert "o_helper_0002" in (await owner.say("/staff add 顾客…_0002 service")).text
    async with db(sqlite_staffed.client.app)() as session:
        added = list(await session.scalars(select(StaffMember.openid)))
    assert added == [HELPER]  # never a staff member named "_0002"
    stranger = await sqlite_staffed.user("o_stranger_9").say("/staff add _0002 owner")
    assert "o_helper_0002" not in stranger.text

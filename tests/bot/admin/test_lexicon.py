"""Staff teach the shop their words from chat: synonyms feed search, FAQ answers answer (issue 12)."""

from __future__ import annotations

import re

import pytest

from tests.bot.admin.test_orders import audit_rows
from tests.bot.conftest import OPERATOR, OWNER, SERVICE, STRANGER
from tests.bot.driver import Shop

pytestmark = pytest.mark.sqlite_only  # staff commands through the chat: their use cases run on both databases in tests/commerce


def _first_line(text: str) -> str:
    found = re.search(r"^1\. (.*)$", text, re.M)
    return found.group(1) if found else ""


async def test_a_synonym_makes_an_everyday_name_find_the_product(staffed: Shop) -> None:
    customer = staffed.user("o_customer_1")
    assert "巨峰葡萄" not in _first_line((await customer.say("夏黑")).text)
    reply = await staffed.user(OPERATOR).say("/synonym 夏黑 巨峰葡萄")
    assert "夏黑" in reply.text and "巨峰葡萄" in reply.text
    assert "巨峰葡萄" in _first_line((await customer.say("夏黑")).text)
    assert "巨峰葡萄" in _first_line((await staffed.user("o_customer_2").say("来两斤夏黑")).text)
    listed = await staffed.user(OWNER).say("/synonym")
    assert "夏黑 → 巨峰葡萄" in listed.text
    (entry,) = [e for e in await audit_rows(staffed, "synonym") if e.outcome == "ok" and e.after]
    assert (entry.actor, entry.after) == (OPERATOR, {"word": "夏黑", "means": "巨峰葡萄"})
    assert "已删除" in (await staffed.user(OWNER).say("/synonym del 夏黑")).text
    assert "巨峰葡萄" not in _first_line((await staffed.user("o_customer_3").say("夏黑")).text)


async def test_everyday_names_are_built_in_and_a_staff_synonym_wins(staffed: Shop) -> None:
    for words, product in (
        ("提子", "巨峰葡萄"), ("红枣", "和田大枣"), ("梨子多少钱一斤", "砀山酥梨"),  # not 车厘子 for 「梨子」
        ("保温壶", "316不锈钢保温杯"), ("来两斤提子", "巨峰葡萄"),
    ):
        assert product in _first_line((await staffed.user("o_customer_1").say(words)).text), words
    await staffed.user(OPERATOR).say("/synonym 保温壶 桂花香薰蜡烛")
    assert "桂花香薰蜡烛" in _first_line((await staffed.user("o_customer_2").say("保温壶")).text)


async def test_staff_answers_a_question_and_can_take_the_answer_back(staffed: Shop) -> None:
    customer = staffed.user("o_customer_1")
    assert "人工" in (await customer.say("能开发票吗")).text  # the built-in answer
    saved = await staffed.user(OWNER).say("/faq add 发票 可以开电子发票，下单后把抬头发给我们")
    assert "已保存" in saved.text
    assert "可以开电子发票" in (await customer.say("能开发票吗")).text
    await staffed.user(OWNER).say("/faq add 会员卡 本店暂时没有会员卡，关注即享新人券")
    assert "暂时没有会员卡" in (await customer.say("你们有会员卡吗")).text  # not a built-in topic
    listed = (await staffed.user(OPERATOR).say("/faq list")).text
    assert "发票" in listed and "会员卡" in listed
    assert "已删除" in (await staffed.user(OWNER).say("/faq del 发票")).text
    assert "可以开电子发票" not in (await customer.say("能开发票吗")).text
    outcomes = [(e.command, e.outcome) for e in await audit_rows(staffed, "faq")]
    assert outcomes.count(("faq", "ok")) == 4


async def test_the_english_faq_command_and_usage(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    assert "/faq add" in (await owner.say("/faq")).text  # the usage line
    assert "/faq add" in (await owner.say("/faq nonsense")).text
    assert "还没有自定义问答" in (await owner.say("/问答 list")).text


async def test_service_staff_may_not_edit_the_lexicon(staffed: Shop) -> None:
    reply = await staffed.user(SERVICE).say("/faq add 发票 随便开")
    assert "发票" not in reply.text or "随便开" not in reply.text
    assert "随便开" not in (await staffed.user("o_customer_1").say("能开发票吗")).text
    assert [e.outcome for e in await audit_rows(staffed, "faq")] == ["refused"]


async def test_a_stranger_typing_faq_add_just_searches(staffed: Shop) -> None:
    reply = await staffed.user(STRANGER).say("/faq add 发票 随便开")
    assert "已保存" not in reply.text and "商品" in reply.text  # an ordinary search answer (results or none)
    assert "随便开" not in (await staffed.user("o_customer_1").say("能开发票吗")).text
    assert [(e.actor, e.outcome) for e in await audit_rows(staffed, "faq")] == [(STRANGER, "refused")]
    assert "已设置" not in (await staffed.user(STRANGER).say("/synonym 提子 巨峰葡萄")).text

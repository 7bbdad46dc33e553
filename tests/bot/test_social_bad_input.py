"""Bad input on the social surfaces (group buys, referrals, points) through the real app.

SPEC section 9: every odd message gets a clear reply (never the generic "抱歉，系统开小差了"
nor a product search for what was plainly a command), and loses nothing: no group is
withdrawn, no campaign made, no deadline moved, no withdrawal asked for by a guess.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from commerce.groupbuys.models import GroupBuy, GroupCampaign
from commerce.orders.models import Order
from commerce.referrals.models import Withdrawal
from tests.bot.admin.test_orders import audit_rows
from tests.bot.conftest import OWNER, ShopFactory
from tests.bot.driver import ChatUser, Reply, Shop, db
from tests.bot.test_group_chat import _with_address
from tests.bot.test_points_chat import _give_points
from tests.bot.test_shopping_chat import _open

GENERIC = ("开小差", "something went wrong")
SEARCH = ("相关的商品", "您是不是想找", "nothing matches", "Did you mean")
LEADER, FRIEND, NEWCOMER = "o_bad_leader1", "o_bad_friend1", "o_bad_newcom1"
KB10 = "x" * 10_000


def clear(reply: Reply, *expected: str, caplog: pytest.LogCaptureFixture | None = None) -> str:
    """The reply is a text with one of `expected`, short enough to send, not an error or a search."""
    text = reply.text
    assert reply.kind == "text", reply
    assert not any(g in text for g in GENERIC), text
    assert not any(s in text for s in SEARCH), text
    assert any(e in text for e in expected), text
    assert len(text.encode()) <= 2048
    if caplog is not None:
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    return text


async def _shop(make_shop: ShopFactory, sqlite_url: str) -> Shop:
    return await make_shop(
        sqlite_url,
        staff={"owners": [OWNER]},
        server={"messages_per_minute": 0},
        scheduler={"enabled": False},
    )


async def _count(shop: Shop, model: type) -> int:
    async with db(shop.client.app)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _group(shop: Shop) -> GroupBuy:
    async with db(shop.client.app)() as session:
        group = await session.scalar(select(GroupBuy).order_by(GroupBuy.id.desc()).limit(1))
        assert group is not None
        return group


async def _shop_with_group(make_shop: ShopFactory, sqlite_url: str) -> tuple[Shop, GroupBuy]:
    """A campaign by command and a leader's group waiting for the leader's payment."""
    shop = await _shop(make_shop, sqlite_url)
    assert "已新建拼团活动" in (await shop.user(OWNER).say("/campaign new FRU-APPLE-3J 9.9 3")).text
    leader = shop.user(LEADER)
    await _with_address(shop, leader)
    assert "拼团价" in (await leader.say("拼团")).text
    assert (await leader.say("1")).kind == "news"  # the pay card
    return shop, await _group(shop)


# ---- customers: "参团 CODE", the bare code, "取消拼团" -------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["参团 🍎🍎🍎🍎", "参团 " + "A" * 10_000, "参团 '; DROP TABLE group_buys; --", "参团 ＺＺＺＺ９９", "参团 zz zz 99"],
    ids=["emoji", "10kb", "sql", "fullwidth", "spaces"],
)
async def test_join_with_no_such_code_says_so(
    sqlite_shop: Shop, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    clear(await sqlite_shop.user().say(text), "没有找到拼团码", caplog=caplog)


async def test_a_typed_code_is_read_in_any_shape_and_garbage_withdraws_nothing(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    shop, group = await _shop_with_group(make_shop, sqlite_url)
    code = group.code
    friend = shop.user(FRIEND)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in code)
    for text in (
        f"参团 {code.lower()}",
        f"参团 {code[:3]} {code[3:]}",
        f"参团 {fullwidth}",
        f"参团 {code}🍎",
        code.lower(),
        code,
    ):
        assert f"拼团 {code}" in clear(await friend.say(text), "拼团"), text
        await friend.say("取消")

    leader = shop.user(LEADER)
    for text in ("取消拼团 🍎", "取消拼团 " + KB10, "cancel group 🍎", "取消拼团 ' OR 1=1"):
        clear(await leader.say(text), "没有可以取消的拼团", "no group to cancel")
    assert (await _group(shop)).status == group.status  # still waiting for the leader's payment


async def test_group_address_step_keeps_asking_until_an_address_is_confirmed(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    shop = await _shop(make_shop, sqlite_url)
    await shop.user(OWNER).say("/campaign new FRU-APPLE-3J 9.9 3")
    newcomer = shop.user(NEWCOMER)
    await newcomer.say("拼团")
    clear(await newcomer.say("1"), "收货信息")
    for text in ("🍎🍎", KB10, "张三 12345 上海市浦东新区世纪大道100号", "确认", "张三 13800138000 🍎"):
        # what the step needs: the address read and refused, or (no address at all) asked for again
        clear(await newcomer.say(text), "手机号好像不对", "没能识别收货信息", "还差收货信息")
    assert await _count(shop, Order) == 0
    parsed = await newcomer.say("张三 13800138000 上海市浦东新区世纪大道100号🍎")
    assert "请确认收货信息" in clear(parsed, "请确认收货信息")
    assert (await newcomer.say("确认")).kind == "news"  # the pay card
    assert await _count(shop, Order) == 1


# ---- customers: "邀请", "我的", "提现 AMOUNT" ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("提现 99999999999999", "暂时没有可提现的佣金"),
        ("提现 " + "9" * 5000, "暂时没有可提现的佣金"),
        ("提现 -5", "金额需要大于 0"),
        ("提现 0", "金额需要大于 0"),
        ("提现 0.001", "没看懂提现金额「0.001」"),
        ("提现 ¥１２", "暂时没有可提现的佣金"),
        ("提现 abc", "没看懂提现金额「abc」"),
        ("提现 1.2.3", "没看懂提现金额"),
        ("提现 🍎", "没看懂提现金额"),
        ("提现 " + KB10, "没看懂提现金额"),
        ("withdraw 1e5", "could not read the amount"),
        ("withdraw -5", "more than zero"),
    ],
    ids=[
        "huge", "5000-digits", "negative", "zero", "three-decimals", "fullwidth-yen", "letters",
        "two-dots", "emoji", "10kb", "exponent", "en-negative",
    ],
)
async def test_withdraw_with_an_odd_amount_says_what_is_wrong(
    sqlite_shop: Shop, text: str, expect: str, caplog: pytest.LogCaptureFixture
) -> None:
    clear(await sqlite_shop.user().say(text), expect, caplog=caplog)
    assert await _count(sqlite_shop, Withdrawal) == 0


@pytest.mark.parametrize(("text", "expect"), [("邀请", "你的邀请码"), ("我的", "可提现")])
async def test_invite_and_me_answer_a_new_customer(sqlite_shop: Shop, text: str, expect: str) -> None:
    clear(await sqlite_shop.user().say(text), expect)


# ---- customers: points ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expect"),
    [("用积分", "积分在结算时使用"), ("不用积分", "积分在结算时使用"), ("use points", "used at checkout"), ("no points", "used at checkout")],
)
async def test_points_words_outside_checkout_say_where_they_work(sqlite_shop: Shop, text: str, expect: str) -> None:
    clear(await sqlite_shop.user().say(text), expect)


async def test_points_words_at_checkout_still_reach_the_review(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await _shop(make_shop, sqlite_url)
    customer = shop.user("o_points_bad1")
    await _open(customer, "香蕉", "香蕉")
    await customer.say("加入购物车 3")
    await _give_points(shop, customer.openid, 1000)
    await customer.say("结算")
    await customer.say("张三 13800138000 上海市浦东新区世纪大道100号")
    assert "积分：用 " in (await customer.say("确认")).text
    assert "积分：用 " not in clear(await customer.say("不用积分"), "确认订单")
    assert "积分：用 " in clear(await customer.say("用积分"), "确认订单")


# ---- customers: follows and scans with malformed scenes, and the landing pages ---------------


SCENES = [
    "qrscene_", "qrscene_🍎", "qrscene_" + "x" * 70, "qrscene_v1.g.", "qrscene_v1.r.0", "qrscene_v2.r.ABCD",
    "qrscene_v1.x.1", "qrscene_v1.p.0", "qrscene_v1.p.99999999999", "qrscene_v1.r.ABCDEF", "qrscene_v1..",
    "qrscene_v1.g.ＡＢＣＤ", "qrscene_v1.r.' OR 1=1", "x" * 10_000,
]


@pytest.mark.parametrize("key", SCENES, ids=range(len(SCENES)))
async def test_a_malformed_scene_gets_a_welcome(
    sqlite_shop: Shop, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    clear(await sqlite_shop.user("o_scene_new1").event("subscribe", key, Ticket="t"), "欢迎关注", caplog=caplog)
    scan = await sqlite_shop.user("o_scene_old1").event("SCAN", key.removeprefix("qrscene_"), Ticket="t")
    clear(scan, "欢迎回到", caplog=caplog)


@pytest.mark.parametrize(
    "path",
    [
        "/g/🍎", "/g/" + "A" * 5000, "/g/abc", "/g/%00", "/g/ＡＢＣＤＥＦ", "/g/'%20OR%201=1",
        "/r/🍎", "/r/" + "A" * 5000, "/r/%00", "/r/abc", "/r/ＡＢＣＤＥＦ",
        "/s/🍎", "/s/" + "A" * 5000, "/s/v1.g.", "/s/v1.r.0", "/s/v2.r.ABCD", "/s/v1.p.0", "/s/%00",
    ],
)
async def test_a_garbage_link_is_a_404_page(sqlite_shop: Shop, path: str) -> None:
    assert (await sqlite_shop.client.get(path, allow_redirects=False)).status == 404


# ---- staff ---------------------------------------------------------------------------------------

USAGE = "参数不对"


@pytest.mark.parametrize(
    ("text", "expect", "audited"),
    [
        ("/campaign new FRU-APPLE-3J -1 3", "拼团价要大于 0", True),
        ("/campaign new FRU-APPLE-3J 0 3", "拼团价要大于 0", True),
        ("/campaign new FRU-APPLE-3J 99999999999999 3", "拼团价要大于 0", True),
        ("/campaign new FRU-APPLE-3J abc 3", USAGE, False),
        ("/campaign new FRU-APPLE-3J 🍎 3", USAGE, False),
        ("/campaign new FRU-APPLE-3J 0.001 3", "最多两位小数", True),
        ("/campaign new FRU-APPLE-3J 9.9 0", "成团人数要在 2 到 50", True),
        ("/campaign new FRU-APPLE-3J 9.9 -3", USAGE, False),
        ("/campaign new FRU-APPLE-3J 9.9 999999", "成团人数要在 2 到 50", True),
        ("/campaign new FRU-APPLE-3J 9.9 🍎", USAGE, False),
        ("/campaign new FRU-APPLE-3J 9.9 3 hours 0", USAGE, False),
        ("/campaign new FRU-APPLE-3J 9.9 3 hours 999999", "时限要在 1 到 168", True),
        ("/campaign new FRU-APPLE-3J 9.9 3 hours abc", USAGE, False),
        ("/campaign new FRU-APPLE-3J 9.9 3 quota 0", USAGE, False),
        ("/campaign new FRU-APPLE-3J 9.9 3 quota -1", USAGE, False),
        ("/campaign new FRU-APPLE-3J 9.9 3 days 0", USAGE, False),
        ("/campaign new FRU-APPLE-3J 9.9 3 days 99999", USAGE, False),
        ("/campaign new FRU-APPLE-3J 9.9 3 limit 999999", "每人团数（limit）要在 1 到 99", True),
        ("/campaign new FRU-APPLE-3J 9.9 3 " + KB10, USAGE, False),
        ("/campaign new NOPE-SKU 9.9 3", "没有找到「NOPE-SKU」", True),
        ("/campaign new 99999999999 9.9 3", "没有找到商品", True),
        ("/campaign close 99999", "没有这个拼团活动", True),
        ("/group NOPE close", "没有找到拼团码 NOPE", True),
        ("/group NOPE extend 2", "没有找到拼团码 NOPE", True),
        ("/group 🍎", USAGE, False),
        ("/group " + "A" * 10_000, USAGE, False),
        ("/withdrawal approve abc", USAGE, False),
        ("/withdrawal approve 99999 REF", "没有这笔提现申请", True),
        ("/withdrawal reject 1", USAGE, False),
        ("/withdrawal approve 99999999999999 REF", USAGE, False),
        ("/referrals extra args", USAGE, False),
    ],
)
async def test_a_bad_staff_command_is_explained_and_changes_nothing(
    sqlite_staffed: Shop, text: str, expect: str, audited: bool, caplog: pytest.LogCaptureFixture
) -> None:
    clear(await sqlite_staffed.user(OWNER).say(text), expect, caplog=caplog)
    assert await _count(sqlite_staffed, GroupCampaign) == 0
    outcomes = [e.outcome for e in await audit_rows(sqlite_staffed)]
    assert outcomes == (["failed"] if audited else []), outcomes


async def test_extending_a_group_by_nonsense_moves_no_deadline(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop, group = await _shop_with_group(make_shop, sqlite_url)
    owner: ChatUser = shop.user(OWNER)
    for hours, expect in (("-1", USAGE), ("abc", USAGE), ("🍎", USAGE), ("0", "时限要在 1 到 72"), ("99999", "时限要在 1 到 72")):
        clear(await owner.say(f"/group {group.code} extend {hours}"), expect)
    after = await _group(shop)
    assert (after.status, after.deadline) == (group.status, group.deadline)
    assert [e.outcome for e in await audit_rows(shop, "group")] == ["failed", "failed"]

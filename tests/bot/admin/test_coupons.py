"""Coupon commands in chat: create (amount off, percent off), issue, list; through the real app."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.admin.coupons import parse_new
from bot.admin.registry import UsageError
from bot.outbound.alerts import openid_tail
from commerce.customers.models import Customer
from commerce.promotions.models import Coupon, CouponKind, CustomerCoupon
from commerce.rules import as_utc, utcnow
from commerce.staff.models import AuditEntry
from tests.bot.conftest import OPERATOR, OWNER, SERVICE, STRANGER, ShopFactory, add_staff_by_chat
from tests.bot.driver import Shop, db

pytestmark = pytest.mark.sqlite_only  # staff commands through the chat: their use cases run on both databases in tests/commerce

CUSTOMER = "o_customer_77"


@pytest.fixture
async def staffed(make_shop: ShopFactory, db_url: str) -> Shop:
    shop = await add_staff_by_chat(await make_shop(db_url, staff={"owners": [OWNER]}))
    await shop.user(CUSTOMER).say("你好")  # a customer the shop knows
    return shop


async def _audit(shop: Shop, command: str) -> list[AuditEntry]:
    async with db(shop.client.app)() as session:
        return list((await session.scalars(
            select(AuditEntry).where(AuditEntry.command == command).order_by(AuditEntry.id)
        )).all())


async def _coupon(shop: Shop, code: str) -> Coupon | None:
    async with db(shop.client.app)() as session:
        return await session.scalar(select(Coupon).where(Coupon.code == code))


async def _held(shop: Shop, code: str, openid: str) -> int:
    async with db(shop.client.app)() as session:
        return await session.scalar(
            select(func.count()).select_from(CustomerCoupon)
            .join(Coupon, Coupon.id == CustomerCoupon.coupon_id)
            .join(Customer, Customer.id == CustomerCoupon.customer_id)
            .where(Coupon.code == code, Customer.openid == openid)
        ) or 0


async def test_create_an_amount_off_coupon(staffed: Shop) -> None:
    reply = await staffed.user(OPERATOR).say("/coupon new save20 off 20 over 100 days 30 limit 2 qty 500 title 满百减二十 双十一")
    assert "已创建优惠券 SAVE20「满百减二十 双十一」" in reply.text
    assert "满¥100.00减¥20.00" in reply.text and "每人限 2 张" in reply.text and "已发 0/500" in reply.text
    coupon = await _coupon(staffed, "SAVE20")
    assert coupon is not None
    assert (coupon.kind, coupon.amount_off_fen, coupon.threshold_fen, coupon.per_user_limit, coupon.total_quantity) == (
        "amount_off", 2000, 10000, 2, 500)
    assert coupon.valid_until is not None
    days = as_utc(coupon.valid_until) - utcnow()
    assert timedelta(days=29, hours=23) < days <= timedelta(days=30)
    (entry,) = await _audit(staffed, "coupon")
    assert (entry.actor, entry.role, entry.outcome, entry.before) == (OPERATOR, "operator", "ok", None)
    assert entry.after["code"] == "SAVE20" and entry.after["amount_off_fen"] == 2000
    assert entry.args[:2] == ["new", "save20"]


async def test_create_a_percent_off_coupon_with_a_cap(staffed: Shop) -> None:
    reply = await staffed.user(OWNER).say("/优惠券 新建 TEN pct 10 cap 50")
    assert "已创建优惠券 TEN「TEN」" in reply.text and "减10%（最多减¥50.00）" in reply.text and "长期有效" in reply.text
    coupon = await _coupon(staffed, "TEN")
    assert coupon is not None
    assert (coupon.kind, coupon.percent_off, coupon.cap_fen, coupon.threshold_fen, coupon.valid_until,
            coupon.per_user_limit, coupon.total_quantity) == ("percent_off", 10, 5000, 0, None, 1, None)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/coupon new", "参数不对"),
        ("/coupon new X1", "参数不对"),
        ("/coupon new SAVE off", "参数不对"),
        ("/coupon new SAVE off twenty", "参数不对"),
        ("/coupon new SAVE off 20 pct 10", "参数不对"),
        ("/coupon new SAVE off 20 cap 5", "参数不对"),
        ("/coupon new SAVE off 20 off 30", "参数不对"),
        ("/coupon new SAVE off 20 colour red", "参数不对"),
        ("/coupon new SAVE off 20 days 0", "参数不对"),
        ("/coupon new SAVE off 20 title", "参数不对"),
        ("/coupon new SAVE pct 100", "百分比需在 1 到 99 之间"),
        ("/coupon new SAVE off 0", "减免金额需在"),
        ("/coupon new S! off 5", "优惠券代码需为"),
        ("/coupon new 满50！ off 5", "汉字、字母、数字"),
        ("/coupon new SAVE off 5 limit 0", "数量需要在"),
        ("/coupon delete SAVE", "参数不对"),
        ("/coupon list all", "参数不对"),
    ],
)
async def test_create_refuses_wrong_arguments(sqlite_staffed: Shop, command: str, expected: str) -> None:
    reply = await sqlite_staffed.user(OWNER).say(command)
    assert expected in reply.text, reply.text
    if expected == "参数不对":
        assert "/coupon new" in reply.text
    async with db(sqlite_staffed.client.app)() as session:
        assert await session.scalar(select(func.count()).select_from(Coupon)) == 0


async def test_a_code_can_only_be_created_once(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    await owner.say("/coupon new SAVE20 off 20 over 100")
    assert "SAVE20 已被使用" in (await owner.say("/coupon new save20 pct 5")).text
    entries = await _audit(staffed, "coupon")
    assert [e.outcome for e in entries] == ["ok", "failed"] and entries[-1].after == {"error": "coupon_exists"}


async def test_issue_gives_a_customer_a_copy_up_to_the_limits(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    await owner.say("/coupon new SAVE20 off 20 over 100 limit 1 qty 2")
    reply = await owner.say(f"/coupon issue save20 {CUSTOMER}")
    assert f"已发给顾客…{openid_tail(CUSTOMER)} 一张 SAVE20" in reply.text and "他现在有 1 张" in reply.text and "已发 1/2" in reply.text
    assert await _held(staffed, "SAVE20", CUSTOMER) == 1
    assert "已领满优惠券 SAVE20（每人限 1 张）" in (await owner.say(f"/coupon 发放 SAVE20 {CUSTOMER}")).text
    assert await _held(staffed, "SAVE20", CUSTOMER) == 1

    other = "o_customer_88"
    await staffed.user(other).say("你好")
    await staffed.user(OPERATOR).say(f"/coupon issue SAVE20 {other}")
    third = "o_customer_99"
    await staffed.user(third).say("你好")
    assert "已经发完了（共 2 张）" in (await owner.say(f"/coupon issue SAVE20 {third}")).text
    assert await _held(staffed, "SAVE20", third) == 0
    coupon = await _coupon(staffed, "SAVE20")
    assert coupon is not None and coupon.issued_count == 2

    issued = [e for e in await _audit(staffed, "coupon") if e.args[0] in ("issue", "发放")]
    assert [e.outcome for e in issued] == ["ok", "failed", "ok", "failed"]
    assert (issued[0].actor, issued[0].before["held"], issued[0].after["held"]) == (OWNER, 0, 1)
    assert issued[2].actor == OPERATOR and issued[3].after == {"error": "coupon_exhausted"}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/coupon issue", "参数不对"),
        ("/coupon issue SAVE20", "参数不对"),
        ("/coupon issue SAVE20 o_x", "参数不对"),
        (f"/coupon issue SAVE20 {CUSTOMER} extra", "参数不对"),
        (f"/coupon issue NOPE {CUSTOMER}", "没有找到优惠券 NOPE"),
        ("/coupon issue SAVE20 o_nobody_here", "没有找到这位顾客"),
    ],
)
async def test_issue_refuses_wrong_arguments(sqlite_staffed: Shop, command: str, expected: str) -> None:
    await sqlite_staffed.user(CUSTOMER).say("你好")
    await sqlite_staffed.user(OWNER).say("/coupon new SAVE20 off 20 over 100")
    assert expected in (await sqlite_staffed.user(OWNER).say(command)).text
    assert await _held(sqlite_staffed, "SAVE20", CUSTOMER) == 0


async def test_list_shows_the_coupons_newest_first(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    assert "还没有优惠券" in (await owner.say("/coupon list")).text
    await owner.say("/coupon new SAVE20 off 20 over 100 qty 500")
    await owner.say("/coupon new TEN pct 10 cap 50 days 7")
    await owner.say(f"/coupon issue SAVE20 {CUSTOMER}")
    reply = await staffed.user(OPERATOR).say("/券 列表")
    assert reply.text.index("TEN") < reply.text.index("SAVE20")
    assert "SAVE20「SAVE20」满¥100.00减¥20.00" in reply.text and "已发 1/500" in reply.text
    assert "TEN「TEN」减10%（最多减¥50.00）；有效至" in reply.text


async def test_service_staff_and_strangers_may_not_touch_coupons(staffed: Shop) -> None:
    assert "您的角色不能使用 /coupon" in (await staffed.user(SERVICE).say("/coupon new FREE off 99")).text
    stranger = await staffed.user(STRANGER).say("/coupon new FREE off 99")
    assert "优惠券" not in stranger.text and "商品" in stranger.text  # just a search (results or none)
    assert await _coupon(staffed, "FREE") is None
    entries = await _audit(staffed, "coupon")
    assert [(e.actor, e.role, e.outcome) for e in entries] == [(SERVICE, "service", "refused"), (STRANGER, "", "refused")]
    assert "/coupon" not in (await staffed.user(SERVICE).say("/help")).text
    assert "/coupon" in (await staffed.user(OPERATOR).say("/help")).text


def test_parse_new_reads_yuan_exactly() -> None:
    fields = parse_new(["off", "19.99", "over", "99.9", "limit", "3"])
    assert (fields["kind"], fields["amount_off_fen"], fields["threshold_fen"], fields["per_user_limit"]) == (
        CouponKind.AMOUNT_OFF, 1999, 9990, 3)
    assert "title" not in fields and fields["valid_until"] is None
    assert parse_new(["满", "100", "减", "20", "标题", "满", "百", "减"])["title"] == "满 百 减"
    with pytest.raises(UsageError):
        parse_new(["over", "100"])


async def test_bug_issue_needed_an_openid_staff_never_see(sqlite_staffed: Shop) -> None:
    """Issue 15: alerts and lists show a customer as "顾客…_81093"; /coupon issue took only
    the whole openid. The number shown (with or without its label) names the customer."""
    shop = sqlite_staffed
    customer, lookalike = "oQ3bmjrPTlm6_81093", "oZ9xxPTlm6_x81093"
    await shop.user(customer).say("你好")
    await shop.user(lookalike).say("你好")
    owner = shop.user(OWNER)
    await owner.say("/coupon new SAVE20 off 20 over 100 limit 3")
    shown = openid_tail(customer)
    assert shown == "_81093"
    assert f"已发给顾客…{shown} 一张" in (await owner.say(f"/coupon issue SAVE20 {shown}")).text
    assert f"已发给顾客…{shown} 一张" in (await owner.say(f"/coupon issue SAVE20 顾客…{shown}")).text
    assert await _held(shop, "SAVE20", customer) == 2 and await _held(shop, "SAVE20", lookalike) == 0
    # "81093" ends both openids: refused, asking for more of it
    assert "不止一位顾客" in (await owner.say("/coupon issue SAVE20 81093")).text
    assert "没有找到这位顾客" in (await owner.say("/coupon issue SAVE20 _99999")).text
    # a stranger typing it just searches, and nothing is issued
    await shop.user(STRANGER).say(f"/coupon issue SAVE20 {shown}")
    assert await _held(shop, "SAVE20", customer) == 2


async def test_bug_a_merchant_could_not_start_a_coupon(sqlite_staffed: Shop) -> None:
    """Found playing a merchant's day: `/help coupon` showed only `/coupon new|issue|list`,
    `/coupon` alone said 参数不对, and the codes a merchant types first (满50减10, 周末)
    were refused as not ASCII."""
    shop = sqlite_staffed
    await shop.user(CUSTOMER).say("你好")
    owner = shop.user(OWNER)
    help_ = (await owner.say("/help coupon")).text
    assert "/coupon new 代码 off 减免 over 门槛" in help_ and "/coupon issue 代码 顾客编号" in help_
    assert "参数不对" not in help_
    assert "/coupon new 代码 pct 百分比" in (await owner.say("/help 优惠券")).text  # the group: one command
    assert "还没有优惠券" in (await owner.say("/coupon")).text

    created = await owner.say("/coupon new 满50减10 off 10 over 50")
    assert "已创建优惠券 满50减10「满50减10」" in created.text and "满¥50.00减¥10.00" in created.text
    assert "已创建优惠券 周末" in (await owner.say("/优惠券 新建 周末 off 5")).text
    assert "一张 周末" in (await owner.say(f"/coupon issue 周末 {CUSTOMER}")).text
    assert await _held(shop, "周末", CUSTOMER) == 1
    listed = (await owner.say("/coupon")).text
    assert listed.index("周末") < listed.index("满50减10")


async def test_help_shows_every_form_of_a_command_with_subcommands(sqlite_staffed: Shop) -> None:
    owner = sqlite_staffed.user(OWNER)
    assert "/flash new" in (await owner.say("/help flash")).text.split("\n", 1)[1]
    overview = (await owner.say("/help 订单")).text  # several commands: one line each
    assert "/ship 订单号" in overview and "参数不对" not in overview

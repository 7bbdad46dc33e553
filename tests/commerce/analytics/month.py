"""A seeded month of shop activity (November 2026, Shanghai time) for the dashboard's tests.

Rows are written directly (customers, orders paid on chosen days in chosen provinces, their
lines, refunds, group buys, referral bindings and `shop_events`), as the event recorder and
the order core would leave them, so each expected figure can be counted by hand from the
comments below. Moments are given in local time and stored in UTC (SQLite keeps wall
clocks). `seed_month` only flushes; the caller commits.

The period is 2026-11-01..2026-11-30 (the previous one 2026-10-02..2026-10-31); "today" is
2026-12-01. Customers: A B C D E F G H I (shoppers) and R (a referrer; D and E are bound
to R). Products: 苹果 ¥10 and 香蕉 ¥5 (category 鲜果), 铁观音 ¥128 (category 名茶).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.analytics.models import EventKind, ShopEvent
from commerce.catalog.models import Category, Product, ProductStatus, Variant
from commerce.customers.models import Customer
from commerce.groupbuys.models import GroupBuy, GroupCampaign, GroupStatus
from commerce.orders.models import Order, OrderLine, OrderStatus
from commerce.payments.models import Refund, RefundStatus

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
_seq = itertools.count(1)


def at(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A local moment in 2026, in UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=TZ).astimezone(UTC)


@dataclass(frozen=True)
class Month:
    customers: dict[str, int]  # letter -> id
    openids: dict[str, str]


async def seed_month(session: AsyncSession) -> Month:
    n = next(_seq)
    customers: dict[str, Customer] = {}
    for letter in "RABCDEFGHI":
        customers[letter] = Customer(openid=f"o_month{n}_{letter}")
        session.add(customers[letter])
    await session.flush()
    for bound in "DE":
        customers[bound].referrer_id = customers["R"].id
        customers[bound].referred_at = at(11, 1)
    ids = {letter: c.id for letter, c in customers.items()}

    fruit = Category(name=f"鲜果{n}", name_en="Fresh fruit")
    tea = Category(name=f"名茶{n}", name_en="Fine tea")
    products: dict[str, tuple[Product, int]] = {}
    for name, category, price in (("苹果", fruit, 1000), ("香蕉", fruit, 500), ("铁观音", tea, 12800)):
        product = Product(
            category=category, name=name, status=ProductStatus.ON_SALE.value,
            variants=[Variant(sku_code=f"M{n}-{name}", spec={"规格": "1份"}, price_fen=price, stock=100)],
        )
        session.add(product)
        products[name] = (product, price)
    await session.flush()

    orders: list[Order] = []

    def order(letter: str, paid: datetime | None, province: str, lines: dict[str, int]) -> Order:
        total = sum(products[name][1] * qty for name, qty in lines.items())
        placed = (paid or at(11, 4)) - timedelta(minutes=5)
        row = Order(
            order_no=f"M{n}-{len(orders) + 1:03d}", customer_id=ids[letter],
            status=(OrderStatus.PAID if paid else OrderStatus.PENDING_PAYMENT).value,
            goods_fen=total, payable_fen=total, paid_fen=total if paid else 0,
            address_name="张三", address_phone="13800138000", address_text=f"{province}某路1号",
            address_province=province, created_at=placed, expires_at=placed + timedelta(minutes=30),
            paid_at=paid, pay_provider="sandbox" if paid else "",
            lines=[
                OrderLine(product_id=products[name][0].id, variant_id=products[name][0].variants[0].id,
                          sku_code=f"M{n}-{name}", name=name, unit_price_fen=products[name][1], quantity=qty)
                for name, qty in lines.items()
            ],
        )
        session.add(row)
        orders.append(row)
        return row

    # November (the period): 8 paid orders, ¥336.00, 6 payers (A B C D E F)
    order("A", at(11, 2, 10), "浙江省", {"苹果": 2})  # 2000
    o2 = order("B", at(11, 3, 0, 30), "上海市", {"铁观音": 1})  # 12800; 2026-11-02 16:30 UTC is the 3rd here
    order("A", at(11, 10, 9), "浙江省", {"香蕉": 3})  # 1500: A again in week +1
    order("C", at(11, 2, 20), "广东省", {"苹果": 1})  # 1000
    o5 = order("D", at(11, 16, 12), "江苏省", {"苹果": 1, "香蕉": 2})  # 2000
    order("E", at(11, 30, 23, 59), "上海市", {"铁观音": 1})  # 12800
    order("F", at(11, 1, 0, 5), "北京市", {"香蕉": 1})  # 500 (F first paid in October)
    order("B", at(11, 24, 11), "上海市", {"苹果": 1})  # 1000: B again in week +3
    order("G", None, "上海市", {"苹果": 1})  # never paid: counted nowhere
    # after the period: C in week +4 (2026-11-30 16:10 UTC is 12-01 here)
    order("C", at(12, 1, 0, 10), "广东省", {"苹果": 1})
    # October (the previous period): F's first order
    order("F", at(10, 20, 10), "北京市", {"香蕉": 2})  # 1000
    await session.flush()

    session.add_all([
        Refund(refund_no=f"R{n}-1", order_id=o2.id, amount_fen=2800, status=RefundStatus.SUCCEEDED.value,
               actor="staff:x", created_at=at(11, 4, 9), completed_at=at(11, 4, 10)),
        # a late payment's refund and one not done: not refunds of revenue
        Refund(refund_no=f"RL{n}-2", order_id=o5.id, amount_fen=2000, status=RefundStatus.SUCCEEDED.value,
               actor="system", created_at=at(11, 17, 9), completed_at=at(11, 17, 10)),
        Refund(refund_no=f"R{n}-3", order_id=orders[0].id, amount_fen=500, status=RefundStatus.PENDING.value,
               actor="staff:x", created_at=at(11, 18, 9)),
    ])

    def event(kind: EventKind, letter: str, when: datetime, **columns: object) -> None:
        session.add(ShopEvent(kind=kind.value, customer_id=ids[letter], at=when, **columns))

    # visitors: Nov 1: A B; Nov 2: A C D E; Nov 3: A; Nov 15: R (6 in all); Oct 31: B
    for letter, when in (("A", at(11, 1, 9)), ("A", at(11, 1, 18)), ("B", at(11, 1, 20)),
                         ("A", at(11, 2, 9)), ("C", at(11, 2, 10)), ("D", at(11, 2, 11)),
                         ("E", at(11, 2, 23, 50)), ("A", at(11, 3, 0, 10)), ("R", at(11, 15, 8)),
                         ("B", at(10, 31, 23, 50))):
        event(EventKind.MESSAGE, letter, when)
    # the funnel: search 9 (A-I), card 8 (A-H), cart 7 (A-G), checkout 7 (A-G), paid 6
    for i, letter in enumerate("ABCDEFG"):
        event(EventKind.SEARCH, letter, at(11, 5 + i, 10), query="苹果", results=4)
    event(EventKind.SEARCH, "A", at(11, 6, 10), query="cherry", results=0)
    for when in (at(11, 7, 10), at(11, 8, 10)):
        event(EventKind.SEARCH, "H", when, query="榴莲", results=0)
    event(EventKind.SEARCH, "I", at(11, 9, 10), query="榴莲", results=0)
    for when in (at(11, 9, 11), at(11, 9, 12)):
        event(EventKind.SEARCH, "I", when, query="车厘子", results=0)
    event(EventKind.SEARCH, "H", at(10, 15, 10), query="榴莲", results=0)  # October
    for letter in "ABCDEFGH":
        event(EventKind.CARD, letter, at(11, 12, 10), product_id=products["苹果"][0].id)
    for letter in "ABCDEFG":
        event(EventKind.CART_ADD, letter, at(11, 12, 11), product_id=products["苹果"][0].id)
        event(EventKind.CART_ADD, letter, at(11, 12, 12), product_id=products["香蕉"][0].id)
        event(EventKind.CHECKOUT, letter, at(11, 12, 13))
    event(EventKind.CHECKOUT, "F", at(10, 20, 9))  # October
    # sharing: R shares 3 times and brings D and E (who pay 2 orders); A shares once and brings G
    for day in (14, 15, 16):
        event(EventKind.SHARE, "R", at(11, day, 9), product_id=products["苹果"][0].id)
    event(EventKind.SHARE, "A", at(11, 14, 10))
    event(EventKind.FOLLOW, "D", at(11, 15, 9), referrer_id=ids["R"])
    event(EventKind.FOLLOW, "E", at(11, 15, 10), referrer_id=ids["R"])
    event(EventKind.FOLLOW, "G", at(11, 15, 11), referrer_id=ids["A"])
    event(EventKind.SHARE, "R", at(10, 10, 9))  # October

    apple = products["苹果"][0]
    campaign = GroupCampaign(
        product_id=apple.id, variant_id=apple.variants[0].id, group_price_fen=800, group_size=2,
        time_limit_minutes=1440, starts_at=at(10, 1), ends_at=at(12, 31),
    )
    session.add(campaign)
    await session.flush()
    # November: 3 opened, 2 filled; one still forming (not opened); October: 1 opened, 1 filled
    for code, status, opened, filled in (
        ("1", GroupStatus.FILLED, at(11, 5), at(11, 6)),
        ("2", GroupStatus.FAILED, at(11, 10), None),
        ("3", GroupStatus.FILLED, at(11, 20), at(11, 21)),
        ("4", GroupStatus.FORMING, None, None),
        ("5", GroupStatus.FILLED, at(10, 25), at(10, 26)),
    ):
        session.add(GroupBuy(
            code=f"M{n}G{code}", campaign_id=campaign.id, leader_id=ids["A"], size=2, price_fen=800,
            status=status.value, created_at=opened or at(11, 25), opened_at=opened, filled_at=filled,
        ))
    await session.flush()
    return Month(customers=ids, openids={letter: c.openid for letter, c in customers.items()})

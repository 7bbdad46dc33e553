"""Shipping several orders at once: `/ship` with several lines, the bulk ship page (a CSV
upload behind a sealed link), tracking links for customers, and group seats that cannot
ship yet; through the real app on SQLite."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import select

from bot.keys import DELIVERY
from bot.web.shipping import make_ship_token
from commerce.groupbuys.models import GroupBuy
from commerce.orders.models import OrderStatus
from commerce.payments.records import record_payment
from commerce.staff.models import AuditEntry
from tests.bot.admin.test_orders import pay, texts, view
from tests.bot.conftest import OWNER, STRANGER
from tests.bot.driver import Shop, db
from tests.bot.test_group_chat import LEADER, _campaign, _order_no, _with_address
from tests.fakes import insert_order

LINK = re.compile(r"https://shop\.example\.com(/ship/[A-Za-z0-9_-]+)")


async def _paid_orders(shop: Shop, count: int) -> list[tuple[str, str]]:
    """(order number, openid) of `count` paid orders, each of another customer: the first
    paid through the sandbox's signed notification (staff are alerted), the others
    recorded as paid at once, in one transaction (fast)."""
    sessions = db(shop.client.app)
    placed = [await insert_order(sessions, openid=f"o_buyer_{n:04d}", quantity=1) for n in range(count)]
    await pay(shop, placed[0].order_no)
    async with sessions() as session:
        for order in placed[1:]:
            outcome = await record_payment(
                session, provider="sandbox", order_no=order.order_no, transaction_id=f"T{order.order_no}",
                amount_fen=order.payable_fen, paid_at=datetime.now(UTC), payload={},
            )
            assert outcome.result == "applied", outcome.result
        await session.commit()
    return [(order.order_no, order.openid) for order in placed]


async def _group_seat(shop: Shop) -> str:
    """A leader's paid seat of a group of three nobody joined yet (待成团 1/3)."""
    await _campaign(shop)
    leader = shop.user(LEADER)
    await _with_address(shop, leader)
    await leader.say("拼团")
    order_no = _order_no(await leader.say("1"))
    await pay(shop, order_no)
    return order_no


async def test_ten_orders_ship_from_one_csv_on_the_page_and_each_customer_gets_a_tracking_link(
    sqlite_staffed: Shop,
) -> None:
    shop = sqlite_staffed
    placed = await _paid_orders(shop, 10)
    seat = await _group_seat(shop)
    path = LINK.search((await shop.user(OWNER).say("/ship 批量")).text)
    assert path is not None
    page = await shop.client.get(path.group(1))
    assert page.status == 200 and 'type="file"' in await page.text()

    rows = ["订单号,快递公司,运单号"]
    rows += [f"{no},{['顺丰', 'ZTO', '中通快递'][n % 3]},SF{n:010d}" for n, (no, _) in enumerate(placed)]
    rows += [f"{seat},顺丰,SF9999999999", "SF2020010100000000,顺丰,SF8888888888", f"{placed[0][0]},顺丰,运单"]
    form = aiohttp.FormData()
    form.add_field("file", "\n".join(rows).encode("utf-8-sig"), filename="发货.csv", content_type="text/csv")
    answer = await shop.client.post(path.group(1), data=form)
    html = await answer.text()
    assert answer.status == 200
    assert 'data-shipped="10" data-refused="3"' in html, html
    assert html.count('class="shipped"') == 10
    assert "还没成团（1/3），成团后才能发货" in html  # the seat, with its reason
    assert "没有找到这个订单" in html and "运单号不对" in html
    await shop.client.app[DELIVERY].drain()  # the notices the upload's transaction wrote

    for n, (order_no, openid) in enumerate(placed):
        order = await view(shop, order_no)
        assert order.status == OrderStatus.SHIPPED and order.tracking_no == f"SF{n:010d}"
        told = [t for t in texts(shop, openid) if "已发货" in t]
        assert len(told) == 1, texts(shop, openid)
        com = ["shunfeng", "zhongtong", "zhongtong"][n % 3]
        assert f"https://www.kuaidi100.com/chaxun?com={com}&nu=SF{n:010d}" in told[0]
    assert (await view(shop, seat)).status == OrderStatus.PAID
    assert not [t for t in texts(shop, LEADER) if "已发货" in t]

    again = await shop.client.post(path.group(1), data=form)  # the same file twice ships nothing twice
    assert 'data-shipped="0" data-refused="13"' in await again.text()
    await shop.client.app[DELIVERY].drain()
    assert all(len([t for t in texts(shop, o) if "已发货" in t]) == 1 for _, o in placed)
    async with db(shop.client.app)() as session:
        uploads = (await session.scalars(select(AuditEntry).where(AuditEntry.command == "ship_upload"))).all()
    assert [(u.actor, u.outcome, len(u.after["shipped"])) for u in uploads] == [(OWNER, "ok", 10), (OWNER, "failed", 0)]


async def test_ship_several_orders_in_one_command_and_a_waiting_seat_is_refused_with_its_reason(
    sqlite_staffed: Shop,
) -> None:
    shop = sqlite_staffed
    (a, a_id), (b, b_id), (c, c_id) = await _paid_orders(shop, 3)
    seat = await _group_seat(shop)
    alert = [t for t in texts(shop, OWNER) if seat in t]
    assert alert and "待成团 (1/3)" in alert[0] and "/ship" not in alert[0]  # no invitation to ship it
    assert "/ship" in next(t for t in texts(shop, OWNER) if a in t)
    owner = shop.user(OWNER)

    wide_b = b[2:].translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})  # a full-width keyboard's digits
    lines = await owner.say(f"/ship\n{a} 顺丰 SF1000000001\n{seat} 圆通 YT1000000002\n{wide_b}　韵达 YD1000000003")
    assert "已发货 2 单，未发货 1 单" in lines.text, lines.text
    assert f"✗ 第 3 行 {seat}：拼团" in lines.text and "还没成团（1/3），成团后才能发货" in lines.text
    assert (await view(shop, a)).carrier == "顺丰" and (await view(shop, b)).tracking_no == "YD1000000003"
    assert (await view(shop, seat)).status == OrderStatus.PAID

    one_carrier = await owner.say(f"/ship 申通 {c} STO1000000004 {a} STO1000000005")
    assert "已发货 1 单，未发货 1 单" in one_carrier.text and "不能这样操作" in one_carrier.text
    told = [t for t in texts(shop, c_id) if "已发货" in t]
    assert len(told) == 1 and "申通快递 STO1000000004" in told[0] and "com=shentong&nu=STO1000000004" in told[0]
    detail = await shop.user(b_id).say("订单")
    detail = await shop.user(b_id).say("1")
    assert "物流：韵达快递 YD1000000003" in detail.text and "com=yunda&nu=YD1000000003" in detail.text
    assert "已发货 1 单" not in (await owner.say(f"/ship {seat} 顺丰 SF1")).text  # one order: usage as before

    stranger = await shop.user(STRANGER).say(f"/ship\n{seat} 顺丰 SF1000000009\n{c} 顺丰 SF1000000010")
    assert "已发货" not in stranger.text and "/ship/" not in (await shop.user(STRANGER).say("/ship 批量")).text
    assert (await view(shop, seat)).status == OrderStatus.PAID

    # two friends fill the group: the last payment's alert names every seat that may ship now
    async with db(shop.client.app)() as session:
        code = await session.scalar(select(GroupBuy.code))
    friends = []
    for openid in ("o_friend_0001", "o_friend_0002"):
        friend = shop.user(openid)
        await _with_address(shop, friend)
        await friend.say(str(code))
        friends.append(_order_no(await friend.say("参团")))
        await pay(shop, friends[-1])
    (filled,) = [t for t in texts(shop, OWNER) if friends[-1] in t]
    assert f"拼团 {code} 已成团，这 3 单现在可以发货" in filled and seat in filled and friends[0] in filled
    assert any(friends[0] in t and "待成团 (2/3)" in t for t in texts(shop, OWNER))  # the second seat still waited
    shipped = await owner.say(f"/ship 顺丰 {seat} SF1000000011 {friends[0]} SF1000000012")
    assert "已发货 2 单" in shipped.text and "未发货" not in shipped.text, shipped.text


async def test_the_ship_page_refuses_strangers_altered_and_expired_links(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    key, now = shop.config.signing_key, datetime.now(UTC)
    good = make_ship_token(key=key, openid=OWNER, expires_at=now + timedelta(minutes=5))
    assert (await shop.client.get(f"/ship/{good}")).status == 200
    stranger = make_ship_token(key=key, openid=STRANGER, expires_at=now + timedelta(minutes=5))
    expired = make_ship_token(key=key, openid=OWNER, expires_at=now - timedelta(seconds=1))
    altered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    form = aiohttp.FormData()
    form.add_field("file", b"SF2020010100000000,SF,SF1", filename="a.csv")
    for token, status in ((stranger, 403), (altered, 403), (expired, 410), ("not-a-token", 404)):
        assert (await shop.client.get(f"/ship/{token}")).status == status, token
        assert (await shop.client.post(f"/ship/{token}", data=form)).status == status, token
    empty = await shop.client.post(f"/ship/{good}", data=aiohttp.FormData({"other": "x"}))
    assert empty.status == 400 and "请选择要上传的文件" in await empty.text()
    pasted = await shop.client.post(f"/ship/{good}", data=aiohttp.FormData({"text": "SF2020010100000000\t顺丰\tSF12345"}))
    assert pasted.status == 200 and 'data-refused="1"' in await pasted.text()  # rows pasted from a spreadsheet
    binary = aiohttp.FormData()
    binary.add_field("file", b"\xff\xfe\x00\x00" * 10, filename="a.xlsx")
    assert (await shop.client.post(f"/ship/{good}", data=binary)).status == 400

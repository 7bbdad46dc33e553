"""The group-buy journey through the real app: a leader starts and pays, one friend scans
the invite, another types the code, both pay, the group fills and all three are told."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.wechat.scenes import GroupInvite
from commerce.catalog.models import Variant
from commerce.customers.models import Customer
from commerce.groupbuys import campaigns as group_campaigns
from commerce.groupbuys.models import GroupBuy
from commerce.orders.models import Order
from commerce.rules import ShopRules, utcnow
from tests.bot.admin.test_orders import pay
from tests.bot.driver import ChatUser, Shop, db
from tests.commerce.factories import make_address

LEADER, SCANNER, TYPER = "o_leader_0001", "o_scanner_002", "o_typer_00003"


async def _campaign(shop: Shop) -> None:
    async with db(shop.client.app)() as session:
        variant = await session.scalar(select(Variant).order_by(Variant.id).limit(1))
        assert variant is not None
        await group_campaigns.create_campaign(
            session,
            variant_id=variant.id,
            group_price_fen=max(1, variant.price_fen // 2),
            group_size=3,
            starts_at=utcnow() - timedelta(hours=1),
            ends_at=utcnow() + timedelta(days=3),
            rules=ShopRules(),
        )
        await session.commit()


async def _with_address(shop: Shop, user: ChatUser) -> None:
    await user.say("帮助")  # the customer exists once they wrote
    async with db(shop.client.app)() as session:
        customer_id = await session.scalar(
            select(Customer.id).where(Customer.openid == user.openid)
        )
        assert customer_id is not None
        await make_address(session, customer_id)
        await session.commit()


def _order_no(card) -> str:  # type: ignore[no-untyped-def]
    assert card.kind == "news", card
    return card.articles[0].description.split("订单号 ")[1].split()[0]


async def test_three_customers_fill_a_group(staffed: Shop) -> None:
    shop = staffed
    await _campaign(shop)
    leader, scanner, typer = shop.user(LEADER), shop.user(SCANNER), shop.user(TYPER)
    for user in (leader, scanner, typer):
        await _with_address(shop, user)
    listing = await leader.say("拼团")
    assert "1." in listing.text and "拼团价" in listing.text
    leader_order = _order_no(await leader.say("1"))
    await pay(shop, leader_order)
    async with db(shop.client.app)() as session:
        code = await session.scalar(select(GroupBuy.code))
    assert code is not None
    # the invite: a card to forward, leading to the group's page, with the code
    [invite] = [m for m in shop.outbox.for_user(LEADER) if m.kind == "news"]
    [card] = invite.articles
    assert card.url.endswith(f"/g/{code}") and code in card.description and "开团成功" in card.title
    assert card.picurl.startswith("http")  # the product's picture

    card = await scanner.event("SCAN", key=GroupInvite(code).pack(), Ticket="t")
    assert code in card.text and "1/3" in card.text
    scanner_order = _order_no(await scanner.say("参团"))
    typed = await typer.say(code)
    assert "参团" in typed.text
    typer_order = _order_no(await typer.say("参团"))
    again = await typer.say(f"参团 {code}")
    assert "参团" in again.text  # the card again; joining twice is refused below
    assert "已经在这个团" in (await typer.say("参团")).text

    await pay(shop, scanner_order)
    await pay(shop, typer_order)
    async with db(shop.client.app)() as session:
        group = await session.scalar(select(GroupBuy))
        assert group is not None and group.status == "filled" and group.paid_count == 3
        statuses = set(
            (await session.scalars(select(Order.status).where(Order.group_id == group.id))).all()
        )
        assert statuses == {"paid"}
    for openid in (LEADER, SCANNER, TYPER):
        assert any("拼团成功" in m.text for m in shop.outbox.for_user(openid)), openid


async def test_a_search_at_the_group_address_step_parks_the_group_and_group_goes_on(staffed: Shop) -> None:
    """A friend without an address is asked for one; a search meanwhile keeps the seat
    being taken (parked, as checkout is), and "拼团" takes it back where it was left."""
    await _campaign(staffed)
    friend = staffed.user("o_group_stray")
    await friend.say("拼团")
    assert "收货" in (await friend.say("1")).text  # no address yet: asked for
    found = await friend.say("香蕉")
    assert "香蕉" in found.text and "回复「拼团」继续" in found.text
    assert "继续刚才的拼团" in (await friend.say("拼团")).text
    lost = await friend.say("qwxz")  # nothing found, not an address: the step says what it needs
    assert "正在拼团" in lost.text, lost.text
    assert "138****8000" in (await friend.say(ADDRESS)).text
    await friend.say("苹果")
    back = await friend.say("拼团")
    assert "继续刚才的拼团" in back.text and "138****8000" in back.text  # the typed address kept
    assert _order_no(await friend.say("确认"))


ADDRESS = "张三 13800138000 上海市浦东新区世纪大道100号"


async def test_a_friend_joins_by_a_code_said_in_words_or_typed_in_full_width(staffed: Shop) -> None:
    """Friends paste the code inside a sentence, or a phone keyboard types it in full width:
    each opens the group (then "参团" joins it); a mistyped code in words says no such group,
    never a product search."""
    await _campaign(staffed)
    leader = staffed.user(LEADER)
    await _with_address(staffed, leader)
    await leader.say("拼团")
    await pay(staffed, _order_no(await leader.say("1")))
    async with db(staffed.client.app)() as session:
        code = await session.scalar(select(GroupBuy.code))
    assert code is not None
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in code)
    for said in (f"我要参团 {full_width}", f"朋友叫我参团 码是{code.lower()}", full_width, f"拼团码：{code} 怎么加入"):
        friend = staffed.user(f"o_words_{abs(hash(said)) % 10**6:06d}")
        card = await friend.say(said)
        assert f"拼团 {code}" in card.text and "1/3" in card.text, (said, card.text)
        assert "收货" in (await friend.say("参团")).text  # no address yet: asked for, the seat kept
    typo = await staffed.user("o_words_typo").say("我要参团 ABCDEF")
    assert "没有找到" in typo.text and "ABCDEF" in typo.text and "商品" not in typo.text, typo.text


async def test_a_leader_asking_for_the_group_code_gets_the_group_to_forward(staffed: Shop) -> None:
    """"拼团码是多少", "我的团码呢", "怎么分享给朋友" from a leader: the open group's card
    (code, the group's page), never "I can't answer that"; with no group, how to start one
    (and "怎么分享给朋友" is then the invite, as before)."""
    await _campaign(staffed)
    leader = staffed.user(LEADER)
    await _with_address(staffed, leader)
    none = await leader.say("拼团码是多少")
    assert "没有进行中的拼团" in none.text and "回复「拼团」" in none.text, none.text
    invite = await leader.say("怎么分享给朋友")
    assert "邀请码" in invite.text, invite.text
    await leader.say("拼团")
    order_no = _order_no(await leader.say("1"))
    unpaid = await leader.say("我的团码呢")
    assert "还没付款" in unpaid.text, unpaid.text
    await pay(staffed, order_no)
    async with db(staffed.client.app)() as session:
        code = await session.scalar(select(GroupBuy.code))
    assert code is not None
    await leader.say("香蕉")
    for words in ("拼团码是多少", "我的团码呢", "怎么分享给朋友"):
        card = await leader.say(words)
        assert card.kind == "news", (words, card)
        [article] = card.articles
        assert code in article.title and article.url.endswith(f"/g/{code}"), (words, article)
        assert f"参团 {code}" in article.description, (words, article)

"""Reviews (买家秀) through the real app: a customer confirms receipt, is invited through the
outbox, rates 5 with words and a photo and earns the review points once; the next
customer's card shows ★5.0(1) and the product page the photo; staff hide it (audited) and
the card no longer counts it; a stranger's /reviews is refused; bad ratings are answered."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from commerce.loyalty.models import PointsEntry
from commerce.reviews.models import Review, ReviewPhoto
from commerce.staff.models import AuditEntry
from tests.bot.admin.test_orders import pay, place_order, texts
from tests.bot.conftest import OWNER, STRANGER, WorldFactory
from tests.bot.driver import Shop, db
from tests.bot.test_shopping_chat import _open
from tests.commerce.media.pictures import photo

pytestmark = pytest.mark.sqlite_only  # the conversation is checked; the SQL is plain

CUSTOMER, NEXT = "o_reviewer_01", "o_next_buyer_2"
PHOTO = "https://mmbiz.qpic.cn/review/banana.jpg"


async def _review_points(shop: Shop) -> list[int]:
    async with db(shop.client.app)() as session:
        found = await session.scalars(select(PointsEntry.delta).where(PointsEntry.reason == "review"))
        return list(found.all())


async def test_a_received_order_is_reviewed_with_a_photo_once_and_the_next_customer_sees_it(
    sqlite_staffed: Shop,
) -> None:
    shop = sqlite_staffed
    user, owner = shop.user(CUSTOMER), shop.user(OWNER)
    order_no = await place_order(shop, user)
    assert "还没有可以评价的订单" in (await user.say("评价")).text  # nothing received yet
    await pay(shop, order_no)
    await owner.say(f"/ship {order_no} 顺丰 SF1234567890")
    await user.say("订单")
    await user.say("1")
    received = await user.say("确认收货")
    assert "已确认收货" in received.text and "1-5" in received.text, received.text
    (invite,) = [t for t in texts(shop, CUSTOMER) if "「评价」" in t]  # through the outbox, once
    assert order_no in invite and "10 积分" in invite, invite

    bad = await user.say("6")
    assert "「6」不是评分" in bad.text and "1 到 5" in bad.text, bad.text
    assert "收到，★★★★★" in (await user.say("5")).text
    assert "照片" in (await user.say("香蕉很甜，包装也好")).text  # words are the review's, not thanks or a search
    kept = await user.send(user.xml("image", pic_url=PHOTO, media_id="media-1"))
    assert "第 1 张照片" in kept.text, kept.text
    posted = await user.say("完成")
    assert "评价已发布" in posted.text and "1 张照片" in posted.text and "10 积分" in posted.text, posted.text
    assert await _review_points(shop) == [10]

    await user.say("订单")
    assert "回复「评价」" not in (await user.say("1")).text  # reviewed: the detail no longer invites one
    again = await user.say("评价")
    assert "已经评价过了" in again.text, again.text
    await user.say("取消")
    assert "还没有可以评价的订单" in (await user.say("评价")).text  # away from the order: none left to review
    assert await _review_points(shop) == [10]  # once per order

    card = await _open(shop.user(NEXT), "香蕉", "香蕉")
    first_line = card.articles[0].description.splitlines()[0]
    assert first_line.endswith("★5.0(1)"), first_line
    page = await (await shop.client.get(f"/products/{card.articles[0].url.rsplit('/', 1)[1]}")).text()
    assert PHOTO in page and "香蕉很甜" in page

    stranger = await shop.user(STRANGER).say("/reviews")
    assert "最近的评价" not in stranger.text and "香蕉很甜" not in stranger.text
    listed = (await owner.say("/reviews")).text
    async with db(shop.client.app)() as session:
        review_id = await session.scalar(select(Review.id))
    assert f"#{review_id} ★★★★★" in listed and "香蕉很甜" in listed and "已隐藏" not in listed, listed
    assert "已隐藏" in (await owner.say(f"/reviews hide {review_id}")).text
    assert "【已隐藏】" in (await owner.say("/reviews")).text
    hidden_card = await _open(shop.user(NEXT), "香蕉", "香蕉")
    assert "★" not in hidden_card.articles[0].description, hidden_card.articles[0].description
    assert "已恢复显示" in (await owner.say(f"/reviews show {review_id}")).text
    async with db(shop.client.app)() as session:
        moves = (
            await session.execute(
                select(AuditEntry.actor, AuditEntry.outcome, AuditEntry.after)
                .where(AuditEntry.command == "reviews")
                .order_by(AuditEntry.id)
            )
        ).all()
        refused = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.actor == STRANGER)
        )
    assert [m.after["hidden"] for m in moves if m.after] == [True, False]
    assert refused, "the stranger's attempt is in the audit log"


async def test_words_that_are_no_rating_get_a_clear_reply(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    user = shop.user(CUSTOMER)
    order_no = await place_order(shop, user)
    await pay(shop, order_no)
    await shop.user(OWNER).say(f"/ship {order_no} 顺丰 SF1234567890")
    assert "已确认收货" in (await user.say("东西收到了")).text
    listed = await user.say("返回")  # as on the order's screen: the list, not a rating
    assert "我的订单" in listed.text and "已完成" in listed.text and "不是评分" not in listed.text, listed.text
    assert "回复「评价」" in (await user.say("1")).text  # received, not reviewed: the detail says how
    asked = await user.say("评价")
    assert order_no in asked.text and "1-5" in asked.text, asked.text
    for said in ("abc", "0", "4.5", "十"):
        reply = await user.say(said)
        assert "不是评分" in reply.text and "取消" in reply.text, (said, reply.text)
    assert "收到，★" in (await user.say("好评")).text
    left = await user.say("取消")
    assert "不是评分" not in left.text and "评价已发布" not in left.text, left.text
    assert await _review_points(shop) == []
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(func.count()).select_from(Review)) == 0


async def test_a_review_photo_is_kept_in_the_shops_media_store(make_world: WorldFactory, sqlite_url: str) -> None:
    """With WeChat credentials the picture is fetched by its MediaId and served by the shop."""
    world = await make_world(sqlite_url, staff={"owners": [OWNER]})
    shop = world.shop
    user = shop.user(CUSTOMER)
    order_no = await place_order(shop, user)
    await pay(shop, order_no)
    await shop.user(OWNER).say(f"/ship {order_no} 顺丰 SF1234567890")
    assert "已确认收货" in (await user.say("东西收到了")).text
    await user.say("4")
    await user.say("跳过")
    media_id = world.wechat.add_media(photo())
    kept = await user.send(user.xml("image", pic_url=f"http://mmbiz.qpic.cn/{media_id}", media_id=media_id))
    assert "第 1 张照片" in kept.text, kept.text
    assert "评价已发布" in (await user.say("完成")).text
    async with db(shop.client.app)() as session:
        url = await session.scalar(select(ReviewPhoto.pic_url))
    assert url is not None and url.startswith("/media/"), url
    assert (await shop.client.get(url)).status == 200

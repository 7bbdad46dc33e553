"""Group buys, referrals and points as customers and staff see them, through the real app:
the points' latest movements on "me", the first share's points on "invite", the referrer
told of a friend bound through their invite, a group seat waiting in the staff's order
views, and the staff's help by heading."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bot.keys import SERVICES
from bot.wechat.scenes import GroupInvite
from commerce.groupbuys.models import GroupBuy
from tests.bot.admin.test_orders import pay, place_order, texts
from tests.bot.conftest import OWNER, SERVICE, ShopFactory
from tests.bot.driver import Shop, db
from tests.bot.test_group_chat import _campaign, _order_no, _with_address

pytestmark = pytest.mark.sqlite_only  # the words are checked, not the database

BUYER = "o_points_buyer1"
REFERRER = "o_referrer_007"
LEADER = "o_leader_00042"
ME_MAX_CHARS = 600  # "me" stays far below WeChat's 2,048-byte text reply


async def test_me_shows_the_latest_points_and_invite_the_first_share(staffed: Shop) -> None:
    rules = staffed.client.app[SERVICES].rules
    buyer = staffed.user(BUYER)
    paid = await pay(staffed, await place_order(staffed, buyer))
    bought = paid.paid_fen // 100 * rules.points_per_yuan

    first = await buyer.say("邀请")
    assert f"首次分享 +{rules.points_first_share} 积分" in first.text, first.text
    assert "你的邀请码：" in first.text and "分享链接：http" in first.text, first.text
    again = await buyer.say("邀请")
    assert "首次分享" not in again.text, again.text  # the points came once

    me = await buyer.say("我的")
    total = bought + rules.points_first_share
    assert (
        f"积分：{total}（最近：+{rules.points_first_share} 首次分享 · +{bought} 购物）" in me.text
    ), me.text
    assert len(me.text) < ME_MAX_CHARS, len(me.text)

    english = await buyer.say("me")
    assert f"(latest: +{rules.points_first_share} first share · +{bought} purchase)" in english.text
    assert len(english.text) < ME_MAX_CHARS, len(english.text)
    invite = await buyer.say("invite")
    assert "Your invite code:" in invite.text and "Share this link: http" in invite.text
    assert "First share" not in invite.text, invite.text


async def test_a_newcomer_without_points_sees_none_and_earns_on_the_first_invite(
    staffed: Shop,
) -> None:
    rules = staffed.client.app[SERVICES].rules
    newcomer = staffed.user("o_newcomer_042")
    me = await newcomer.say("me")
    assert "Points: 0\n" in me.text and "latest" not in me.text, me.text
    invite = await newcomer.say("invite")
    assert f"🎉 First share: +{rules.points_first_share} points" in invite.text, invite.text


def _told_of_friends(shop: Shop, openid: str) -> list[str]:
    return [t for t in texts(shop, openid) if "好友通过你的邀请关注了本店" in t]


async def test_the_referrer_is_told_once_per_friend_and_counted_to_the_badge(
    make_shop: ShopFactory, db_url: str
) -> None:
    shop = await make_shop(db_url, scheduler={"enabled": False})
    rules = shop.client.app[SERVICES].rules
    reply = await shop.user(REFERRER).say("邀请")
    code = reply.text.split("你的邀请码：")[1].split()[0]

    friend = shop.user("o_friend_00001")
    await friend.event("subscribe", f"qrscene_v1.r.{code}", Ticket="t")
    [told] = _told_of_friends(shop, REFERRER)
    assert f"{rules.referral_binding.days} 天内 TA 的订单（拼团除外）你都能得 5% 佣金" in told, told
    assert "你已邀请 1 位好友，再邀请 4 位即可获得「推荐达人」徽章" in told, told
    assert "o_friend" not in told  # the friend stays anonymous

    # a re-follow binds nobody again, and tells nobody again
    await friend.event("unsubscribe", create_time=int(time.time()) + 1)
    await friend.event("subscribe", f"qrscene_v1.r.{code}", create_time=int(time.time()) + 2)
    assert len(_told_of_friends(shop, REFERRER)) == 1

    for n in range(2, 6):
        await shop.user(f"o_friend_0000{n}").event("subscribe", f"qrscene_v1.r.{code}", Ticket="t")
    told_all = _told_of_friends(shop, REFERRER)
    assert len(told_all) == 5 and "你已邀请 5 位好友。" in told_all[-1], told_all
    sent = texts(shop, REFERRER)
    badge = [i for i, t in enumerate(sent) if "推荐达人" in t and "获得徽章" in t]
    assert len(badge) == 1 and sent.index(told_all[-1]) < badge[0]  # the friend, then the badge


@pytest.mark.parametrize(
    ("locale", "waiting", "detail"),
    [
        ("zh", "待成团 (1/3)", "待成团 (1/3)，成团后才能发货"),
        ("en", "waiting for group (1 of 3)", "waiting for group (1 of 3), ships once it fills"),
    ],
)
async def test_staff_see_a_paid_seat_waiting_for_its_group(
    make_shop: ShopFactory, db_url: str, locale: str, waiting: str, detail: str
) -> None:
    shop = await make_shop(
        db_url, staff={"owners": [OWNER]}, shop={"locale": locale}, scheduler={"enabled": False}
    )
    await _campaign(shop)
    leader = shop.user(LEADER)
    await _with_address(shop, leader)
    await leader.say("拼团")
    order_no = _order_no(await leader.say("1"))
    owner = shop.user(OWNER)
    unpaid = await owner.say("/orders")
    assert order_no in unpaid.text and waiting not in unpaid.text  # not paid: not a seat yet
    await pay(shop, order_no)

    listing = await owner.say("/orders")
    assert f"{order_no} " in listing.text and waiting in listing.text, listing.text
    one = await owner.say(f"/order {order_no}")
    assert detail in one.text, one.text

    # a new follower through the leader's group invite is the leader's referral: told too
    async with db(shop.client.app)() as session:
        code = await session.scalar(select(GroupBuy.code))
    assert code is not None
    await shop.user("o_group_friend1").event(
        "subscribe", f"qrscene_{GroupInvite(code).pack()}", Ticket="t"
    )
    assert len(_told_of_friends(shop, LEADER)) == 1, texts(shop, LEADER)  # the leader wrote zh


async def test_staff_help_lists_group_buys_and_referrals_under_headings(
    staffed: Shop, make_shop: ShopFactory, sqlite_url: str
) -> None:
    overview = (await staffed.user(OWNER).say("/help")).text
    assert "拼团：/campaign（拼团活动） /group（拼团） /groups（拼团列表）" in overview, overview
    assert "推荐与提现：/referrals（推荐） /withdrawal（提现）" in overview, overview
    assert overview.index("订单：") < overview.index("拼团：") < overview.index("推荐与提现：")
    service = (await staffed.user(SERVICE).say("/help")).text
    assert "拼团：" in service and "推荐与提现" not in service  # payouts are for managers
    groups = (await staffed.user(OWNER).say("/help 拼团")).text
    assert "/groups [open" in groups and "/campaign new" in groups, groups
    payouts = (await staffed.user(OWNER).say("/help 推荐")).text
    assert "/referrals" in payouts and "/withdrawal approve" in payouts, payouts

    english = await make_shop(sqlite_url, staff={"owners": [OWNER]}, shop={"locale": "en"})
    overview = (await english.user(OWNER).say("/help")).text
    assert "Group buys: /campaign /group /groups" in overview, overview
    assert "Referrals and withdrawals: /referrals /withdrawal" in overview, overview
    assert "/withdrawal approve" in (await english.user(OWNER).say("/help referrals")).text

"""The customer's account in chat: "邀请 / invite", "我的 / me", "会员 / member", "提现 / withdraw", and the follow welcome.

Stateless handlers (no dialog: each answer is complete in one reply):

- invite: the customer's referral code (given on first ask), share link and, when the
  shop has a WeChat client, their permanent QR code; the first ask counts as a first
  share for points, which that reply announces.
- me: membership (level, what is left to spend for the next, total spent, usable coupons;
  for a customer who is no member, the invitation), points (and their last few
  movements), badges, referrals, commission frozen (with the date it frees), available,
  withdrawing and paid out.
- member ("会员"): the same for a member; for anyone else it starts the registration
  (bot/dialogs/member.py), as "注册会员" / "绑定手机" always do.
- withdraw [AMOUNT]: asks staff to pay out all that is available, or AMOUNT yuan;
  managers are alerted.
- `welcome(ctx, scene)`, called on a follow: binds a new follower who came through a
  referral QR to its owner (or through a group invite to the group's leader) and gives
  the welcome coupon; what happened is returned for the welcome text, and the referrer is told (after the
  commit, once: a follower is bound once) with their referral count towards the badge.
  A scan by a follower binds nobody.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.admin.catalog import parse_yuan
from bot.admin.registry import UsageError
from bot.chat.context import Context
from bot.chat.keywords import normalize
from bot.chat.replies import Reply, Text
from bot.chat.router import Keyword, Regex, Router
from bot.dialogs.common import error_reply
from bot.outbound.alerts import MANAGERS, openid_tail
from bot.wechat.scenes import GroupInvite, ReferralInvite
from commerce.analytics import events
from commerce.balance import balance_of
from commerce.customers import customers
from commerce.errors import ErrorCode, ShopError
from commerce.loyalty import badges, points
from commerce.membership import account as membership
from commerce.messaging import notices
from commerce.messaging.notifications import Notification
from commerce.promotions import coupons
from commerce.referrals import commission, referrals
from commerce.rules import utcnow

router = Router()

POINTS_SHOWN = 3  # the latest points movements on "me": a reminder, not a statement

# "提现 50", "提现50元", "withdraw 12.5" (no amount: the "withdraw" keyword, everything available);
# anything else after the word ("提现 -5", "提现 abc", 14 digits) is an amount we cannot read
WITHDRAW_AMOUNT = r"(?is)(?:申请提现|提现|withdraw|cash out)\s*[:：]?\s*(.+)"
AMOUNT_SHOWN = 20  # an unreadable amount echoed back: 10 KB of it is not


def _told_first(session: Any, first: Sequence[Notification]) -> None:
    """`first` ahead of what the unit of work queued so far (badges and the like)."""
    queued = [*first, *notices.take_queued(session)]
    for n in queued:
        notices.queue(session, openid=n.openid, template=n.template, data=n.data)


async def _tell_referrer(
    ctx: Context, session: Any, *, referrer_id: int | None, code: str
) -> list[Notification]:
    """The message for the referrer who just gained a friend (none when unknown)."""
    if referrer_id is None:
        referrer_id = await referrals.referrer_by_code(session, code)
    if referrer_id is None:
        return []
    openid = await customers.openid_of(session, referrer_id)
    if openid is None:
        return []
    rules = ctx.services.rules
    data = {
        "referrals": await referrals.referral_count(session, customer_id=referrer_id),
        "badge_at": referrals.FIVE_REFERRALS,
        "rate_bp": rules.commission_rate_bp,
        "binding_days": rules.referral_binding.days,
        "group_orders": rules.commission_on_group_orders,
        "points": rules.points_referral,
    }
    return [Notification(openid=openid, template="referral_bound", data=data)]


async def welcome(ctx: Context, scene: object) -> dict[str, Any]:
    """A follow: bind through a referral scene and give the welcome coupon (see the module doc)."""
    code = scene.code if isinstance(scene, ReferralInvite) else ""
    async with ctx.uow() as uow:
        session = uow.session
        leader = None
        if isinstance(scene, GroupInvite):  # a friend's group invite: bound to its leader
            leader = await referrals.group_leader(session, group_code=scene.group_code)
        result = await referrals.welcome_new_follower(
            session,
            customer_id=ctx.customer_id,
            now=uow.now,
            rules=uow.rules,
            code=code,
            referrer_id=leader,
        )
        told = (
            await _tell_referrer(ctx, session, referrer_id=leader, code=code)
            if result.referred  # bound just now: a follower is bound once, so told once
            else []
        )
        _told_first(session, told)
    return {"referred": result.referred, "coupon_title": result.coupon_title}


@router.route(Keyword("invite"))
async def invite(ctx: Context) -> Reply:
    rules = ctx.services.rules
    async with ctx.uow() as uow:
        code, first = await referrals.invite_code(uow.session, customer_id=ctx.customer_id)
        share_points = 0
        if first:  # the first time they ask for their invite: a first share (points)
            share_points = await points.award_first_share(
                uow.session, customer_id=ctx.customer_id, rules=rules, now=uow.now
            )
    scene = ReferralInvite(code)
    link = ctx.services.invites.share_link(scene)
    ctx.record(events.share(ctx.customer_id))  # their invite link, handed to them to send
    qr_url = await ctx.services.invites.image_url(scene, permanent=True)  # "" without a WeChat client
    return Text(
        "referral_invite",
        {
            "code": code,
            "link": link,
            "qr_url": qr_url,
            "rate_bp": rules.commission_rate_bp,
            "binding_days": rules.referral_binding.days,
            "share_points": share_points,
            "group_orders": rules.commission_on_group_orders,
        },
    )


@router.route(Keyword("member"))
async def member(ctx: Context) -> Reply:
    """"会员": a member sees their account (level first); anyone else is asked for a phone."""
    async with ctx.uow() as uow:
        standing = await membership.standing(uow.session, customer_id=ctx.customer_id, rules=uow.rules)
    if standing.member:
        return await _account(ctx)
    return await ctx.services.dialogs.member.begin(ctx)


@router.route(Keyword("register"))
async def register(ctx: Context) -> Reply:
    """"注册会员" / "绑定手机": the phone and its code (a member is told they are one)."""
    async with ctx.uow() as uow:
        standing = await membership.standing(uow.session, customer_id=ctx.customer_id, rules=uow.rules)
    if standing.member:
        return error_reply(ShopError(ErrorCode.ALREADY_MEMBER, phone_tail=standing.phone_tail))
    return await ctx.services.dialogs.member.begin(ctx)


def member_data(standing: membership.MemberStanding, *, coupons_usable: int) -> dict[str, Any]:
    """The membership lines of "我的" (templates/messages/*/account.j2)."""
    level, ahead, would_be = standing.level, standing.next_level, standing.would_be
    return {
        "is_member": standing.member,
        "phone_tail": standing.phone_tail,
        "level_name": level.name if level else "",
        "discount_bp": level.discount_bp if level else 0,
        "total_spent_fen": standing.total_spent_fen,
        "next_level": ahead.name if ahead else "",
        "next_discount_bp": ahead.discount_bp if ahead else 0,
        "to_next_fen": standing.to_next_fen,
        "would_be": would_be.name if would_be else "",
        "coupons_usable": coupons_usable,
    }


@router.route(Keyword("me"))
async def me(ctx: Context) -> Reply:
    return await _account(ctx)


async def _account(ctx: Context) -> Reply:
    """"我的": membership, points, badges, referrals and commission."""
    async with ctx.uow() as uow:
        session = uow.session
        got = await commission.balances(
            session, customer_id=ctx.customer_id, rules=ctx.services.rules
        )
        points_balance = await points.balance(session, ctx.customer_id)
        moves = await points.history(session, customer_id=ctx.customer_id, limit=POINTS_SHOWN)
        earned = await badges.badges_of(session, customer_id=ctx.customer_id)
        standing = await membership.standing(session, customer_id=ctx.customer_id, rules=uow.rules)
        usable = await coupons.usable_count(session, customer_id=ctx.customer_id, now=uow.now)
        stored = await balance_of(session, ctx.customer_id)
    return Text(
        "account",
        {
            **member_data(standing, coupons_usable=usable),
            "points": int(points_balance or 0),
            "balance_fen": stored.balance_fen,
            "balance_bonus_fen": stored.bonus_fen,
            "balance_held_fen": stored.held_fen,
            "moves": [{"delta": m.delta, "reason": m.reason} for m in moves],
            "badges": earned,
            "referrals": got.referrals,
            "frozen_fen": got.frozen_fen,
            "frozen_until": got.frozen_until,
            "frozen_waiting": got.frozen_waiting,
            "available_fen": got.available_fen,
            "withdrawing_fen": got.withdrawing_fen,
            "paid_out_fen": got.paid_out_fen,
            "min_fen": ctx.services.rules.withdrawal_min_fen,
        },
    )


@router.route(Keyword("withdraw"))
async def withdraw_all(ctx: Context) -> Reply:
    return await _withdraw(ctx, None)


def _written_in(match: re.Match[str]) -> str:
    """Chinese when the command has a Chinese character, else English (as a keyword tells)."""
    return "zh" if any("\u4e00" <= c <= "\u9fff" for c in match.group(0)) else "en"


@router.route(Regex(WITHDRAW_AMOUNT, locale=_written_in))
async def withdraw_amount(ctx: Context, match: re.Match[str]) -> Reply:
    typed = normalize(match.group(1))
    if not typed:  # "提现 ．．．": only punctuation, as the bare keyword
        return await _withdraw(ctx, None)
    try:
        amount = parse_yuan(typed.replace("yuan", "").strip())
    except (UsageError, ShopError):
        shown = typed if len(typed) <= AMOUNT_SHOWN else typed[:AMOUNT_SHOWN] + "…"
        return Text("withdraw_amount_invalid", {"amount": shown})
    return await _withdraw(ctx, amount)


async def _withdraw(ctx: Context, amount_fen: int | None) -> Reply:
    try:
        async with ctx.uow() as uow:
            session = uow.session
            request = await commission.request_withdrawal(
                session,
                customer_id=ctx.customer_id,
                amount_fen=amount_fen,
                now=utcnow(),
                rules=ctx.services.rules,
            )
            alert = {"withdrawal_id": request.id, "amount_fen": request.amount_fen, "customer": openid_tail(ctx.openid)}
            await ctx.services.alerts.queue(session, "alert_withdrawal", alert, MANAGERS)  # committed with it
    except ShopError as exc:
        return error_reply(exc)
    return Text(
        "withdrawal_requested", {"amount_fen": request.amount_fen, "withdrawal_id": request.id}
    )

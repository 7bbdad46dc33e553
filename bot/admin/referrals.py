"""Referral commands: top referrers and pending withdrawals; approve or reject a withdrawal.

    /referrals
    /withdrawal approve ID TRANSFER_REF
    /withdrawal reject ID REASON

Payouts are manual transfers in this issue: staff pay the customer outside the shop,
then approve the withdrawal with the transfer's reference, which is recorded (and
audited). The customer is told either way, after the commit.
"""

from __future__ import annotations

from typing import Any

from bot.admin.registry import MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.outbound.alerts import openid_tail
from commerce.referrals import commission, referrals
from commerce.referrals.commission import WithdrawalView
from commerce.rules import utcnow

TOP = 10
PENDING = 20
ACTIONS = {
    "approve": "approve",
    "ok": "approve",
    "paid": "approve",
    "同意": "approve",
    "通过": "approve",
    "reject": "reject",
    "拒绝": "reject",
    "驳回": "reject",
}


def withdrawal_data(view: WithdrawalView) -> dict[str, Any]:
    return {
        "id": view.id,
        "customer": openid_tail(view.openid),
        "amount_fen": view.amount_fen,
        "status": str(view.status),
        "created_at": view.created_at,
        "transfer_ref": view.transfer_ref,
        "note": view.note,
    }


@REGISTRY.command("referrals", "推荐", "分销", roles=MANAGERS, group="referrals")
async def list_referrals(actx: AdminContext) -> Outcome:
    """/referrals: the top referrers (referrals, commission earned) and the pending withdrawals."""
    if actx.args:
        raise UsageError
    async with actx.ctx.uow() as uow:
        session = uow.session
        top = await referrals.top_referrers(session, limit=TOP)
        pending = await commission.pending_withdrawals(session, limit=PENDING)
    return Outcome(
        Text(
            "admin/referrals",
            {
                "top": [
                    {
                        "customer": openid_tail(t.openid),
                        "code": t.referral_code,
                        "referrals": t.referrals,
                        "earned_fen": t.earned_fen,
                    }
                    for t in top
                ],
                "pending": [withdrawal_data(w) for w in pending],
            },
        )
    )


def withdrawal_id_of(word: str) -> int:
    word = word.lstrip("#")
    if not (word.isascii() and word.isdigit()) or not 1 <= int(word) <= 2**31 - 1:
        raise UsageError
    return int(word)


@REGISTRY.command("withdrawal", "提现", roles=MANAGERS, group="referrals", commas=2)
async def decide_withdrawal(actx: AdminContext) -> Outcome:
    """/withdrawal approve ID TRANSFER_REF | /withdrawal reject ID REASON."""
    action = ACTIONS.get(actx.arg(0).lower())
    if action is None:
        raise UsageError
    withdrawal_id = withdrawal_id_of(actx.arg(1))
    now = utcnow()
    async with actx.ctx.uow() as uow:
        session = uow.session
        if action == "approve":
            if len(actx.args) != 3:
                raise UsageError
            view, (before, after) = await commission.approve_withdrawal(
                session,
                withdrawal_id=withdrawal_id,
                staff_openid=actx.actor,
                transfer_ref=actx.arg(2),
                now=now,
            )
        else:
            view, (before, after) = await commission.reject_withdrawal(
                session,
                withdrawal_id=withdrawal_id,
                staff_openid=actx.actor,
                reason=actx.rest(2),
                now=now,
            )
    told = bool(uow.sent_ids)  # the referrer's notice is in the outbox with the decision
    return Outcome(
        Text("admin/withdrawal_decided", {**withdrawal_data(view), "told": told}), before, after
    )

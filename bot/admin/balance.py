"""Stored-balance commands: the top-up plans and balance withdrawals.

    /topup list                      the plans ("pay 100 get 110")
    /topup set PAY BONUS             add a plan, or change its bonus (yuan); restated, then confirmed
    /topup remove PAY                take a plan away; restated, then confirmed
    /balancewithdrawal approve ID TRANSFER_REF | reject ID REASON

Plans change what customers are offered from then on (a top-up already chosen keeps its
plan). Every change is audited with before and after (the registry does it); only
managers run these, strangers are refused like any other staff command.
"""

from __future__ import annotations

from typing import Any

from bot.admin.orders import parse_amount
from bot.admin.referrals import ACTIONS, withdrawal_id_of
from bot.admin.registry import ALL_ARGS, MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from commerce import money
from commerce.balance import topups, withdrawals
from commerce.balance.topups import PlanView
from commerce.errors import ErrorCode, ShopError
from commerce.rules import utcnow


def _plan(p: PlanView | None) -> dict[str, Any] | None:
    return (
        None
        if p is None
        else {"pay_fen": p.pay_fen, "bonus_fen": p.bonus_fen, "receive_fen": p.receive_fen}
    )


def _bonus(word: str) -> int:
    try:
        return money.parse_yuan(word, max_fen=topups.MAX_PLAN_FEN)
    except money.MoneyError:
        raise UsageError from None


@REGISTRY.command("topup", "充值", "储值", roles=MANAGERS, group="balance", confirm=True, commas=ALL_ARGS)
async def topup(actx: AdminContext) -> Outcome:
    """/topup list | /topup set PAY BONUS | /topup remove PAY."""
    action = actx.arg(0).lower() if actx.args else "list"
    if action in ("list", "列表"):
        async with actx.ctx.uow() as uow:
            plans = await topups.list_plans(uow.session)
        return Outcome(Text("admin/topup_plans", {"plans": [_plan(p) for p in plans]}))
    if action in ("set", "设置") and len(actx.args) == 3:
        pay, bonus = parse_amount(actx.arg(1)), _bonus(actx.arg(2))
        topups.check_plan(pay, bonus)
        if not actx.confirmed:
            async with actx.ctx.uow() as uow:
                before = next(
                    (p for p in await topups.list_plans(uow.session) if p.pay_fen == pay), None
                )
            data = {"action": "set", "before": _plan(before), "after": _plan(PlanView(pay, bonus))}
            return Outcome(Text("admin/topup_confirm", data), confirm_first=True)
        async with actx.ctx.uow() as uow:
            was, now = await topups.set_plan(uow.session, pay_fen=pay, bonus_fen=bonus)
        return Outcome(
            Text("admin/topup_done", {"action": "set", "after": _plan(now)}), _plan(was), _plan(now)
        )
    if action in ("remove", "删除") and len(actx.args) == 2:
        pay = parse_amount(actx.arg(1))
        if not actx.confirmed:
            async with actx.ctx.uow() as uow:
                plans = await topups.list_plans(uow.session)
            found = next((p for p in plans if p.pay_fen == pay), None)
            if found is None:
                raise ShopError(ErrorCode.TOPUP_PLAN_NOT_FOUND, plans=[p.pay_fen for p in plans])
            data = {"action": "remove", "before": _plan(found), "after": None}
            return Outcome(Text("admin/topup_confirm", data), confirm_first=True)
        async with actx.ctx.uow() as uow:
            removed = await topups.remove_plan(uow.session, pay_fen=pay)
        return Outcome(
            Text("admin/topup_done", {"action": "remove", "after": _plan(removed)}),
            _plan(removed),
            None,
        )
    raise UsageError


@REGISTRY.command("balancewithdrawal", "余额提现", roles=MANAGERS, group="balance", commas=2)
async def decide_withdrawal(actx: AdminContext) -> Outcome:
    """/balancewithdrawal approve ID TRANSFER_REF | /balancewithdrawal reject ID REASON."""
    action = ACTIONS.get(actx.arg(0).lower())
    if action is None:
        raise UsageError
    withdrawal_id = withdrawal_id_of(actx.arg(1))
    if action == "approve" and len(actx.args) != 3:
        raise UsageError
    text = actx.arg(2) if action == "approve" else actx.rest(2)
    async with actx.ctx.uow() as uow:
        before, after = await withdrawals.decide_withdrawal(
            uow.session,
            withdrawal_id=withdrawal_id,
            paid=action == "approve",
            staff_openid=actx.actor,
            text=text,
            now=utcnow(),
        )
    data = {
        "id": after.id,
        "amount_fen": after.amount_fen,
        "status": after.status,
        "transfer_ref": after.transfer_ref,
        "note": after.note,
    }
    return Outcome(
        Text("admin/balance_withdrawal_decided", data),
        {"status": before.status, "amount_fen": before.amount_fen},
        {"status": after.status, "transfer_ref": after.transfer_ref, "note": after.note},
    )

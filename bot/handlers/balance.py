"""Stored balance in chat: "余额 / balance", "充值 / top up [AMOUNT]", "余额提现 AMOUNT".

Stateless handlers (each answer complete in one reply):
- balance: what can be spent, the bonus part of it (not withdrawable), what unpaid
  orders hold and what waits for staff as a withdrawal; how to top up and to pay with it.
- top up: the shop's plans ("充值 100" picks the plan paying 100 yuan); a plan picked
  answers with a card to the top-up page, where it is paid through the payment service
  (`bot.web.topup`); the balance is credited when the provider's notification arrives.
- 余额提现 [AMOUNT]: cash balance (never bonus) asked back; staff are alerted and decide
  with `/balancewithdrawal` (`bot.admin.balance`). "提现" alone stays the commission's.
"""

from __future__ import annotations

import re
import unicodedata

from bot.admin.catalog import parse_yuan
from bot.admin.registry import UsageError
from bot.chat.context import Context
from bot.chat.keywords import normalize
from bot.chat.replies import Card, News, Reply, Text
from bot.chat.router import Keyword, Regex, Router
from bot.dialogs.common import error_reply
from bot.outbound.alerts import MANAGERS, openid_tail
from bot.web.paylink import topup_url
from commerce.balance import ledger, topups, withdrawals
from commerce.errors import ShopError

router = Router()

TOPUP_AMOUNT = (  # "充值 100", "充100块", "我想充值２００", "top up 50"
    r"(?is)^\s*(?:我要|我想|想|要)?(?:充值|余额充值|储值|充|top ?up|recharge)\s*[:：]?\s*(\d{1,6}(?:\.\d{1,2})?)"
    r"\s*(?:元|块钱?|yuan)?(?:吧|的)?\s*$"
)
BALANCE_WITHDRAW = r"(?is)^\s*(?:余额提现|提现余额|withdraw balance)\s*[:：]?\s*(.*)$"
AMOUNT_SHOWN = 20


def _written_in(match: re.Match[str]) -> str:
    return "zh" if any("\u4e00" <= c <= "\u9fff" for c in match.group(0)) else "en"


@router.route(Keyword("balance"))
async def balance(ctx: Context) -> Reply:
    async with ctx.uow() as uow:
        got = await ledger.balance_of(uow.session, ctx.customer_id)
        plans = await topups.list_plans(uow.session)
    return Text(
        "balance",
        {
            "balance_fen": got.balance_fen,
            "cash_fen": got.cash_fen,
            "bonus_fen": got.bonus_fen,
            "held_fen": got.held_fen,
            "withdrawing_fen": got.withdrawing_fen,
            "has_plans": bool(plans),
        },
    )


@router.route(Keyword("topup"))
async def topup_plans(ctx: Context) -> Reply:
    return await _plans(ctx)


async def _plans(ctx: Context) -> Text:
    """The shop's top-up plans and the customer's balance."""
    async with ctx.uow() as uow:
        plans = await topups.list_plans(uow.session)
        got = await ledger.balance_of(uow.session, ctx.customer_id)
    return Text(
        "topup_plans",
        {
            "plans": [
                {"pay_fen": p.pay_fen, "bonus_fen": p.bonus_fen, "receive_fen": p.receive_fen}
                for p in plans
            ],
            "balance_fen": got.balance_fen,
        },
    )


@router.route(Regex(TOPUP_AMOUNT, locale=_written_in))
async def topup(ctx: Context, match: re.Match[str]) -> Reply:
    try:
        pay_fen = parse_yuan(unicodedata.normalize("NFKC", match.group(1)))  # "充值 １００": full-width digits
        async with ctx.uow() as uow:
            started = await topups.start_topup(
                uow.session, customer_id=ctx.customer_id, pay_fen=pay_fen, now=uow.now
            )
    except UsageError:  # an amount that is no amount: the plans there are
        return await _plans(ctx)
    except ShopError as exc:
        return error_reply(exc)
    url = topup_url(ctx.services.config, started.topup_no, ctx.openid, started.expires_at)
    data = {
        "topup_no": started.topup_no,
        "pay_fen": started.pay_fen,
        "bonus_fen": started.bonus_fen,
        "expires_at": started.expires_at,
    }
    return News((Card("topup_card", data, url=url),))


@router.route(Regex(BALANCE_WITHDRAW, locale=_written_in))
async def withdraw_balance(ctx: Context, match: re.Match[str]) -> Reply:
    typed = normalize(match.group(1))
    amount: int | None = None
    if typed:
        try:
            amount = parse_yuan(typed.replace("yuan", "").replace("元", "").strip())
        except (UsageError, ShopError):
            shown = typed if len(typed) <= AMOUNT_SHOWN else typed[:AMOUNT_SHOWN] + "…"
            return Text("withdraw_amount_invalid", {"amount": shown})
    try:
        async with ctx.uow() as uow:
            request = await withdrawals.request_withdrawal(
                uow.session, customer_id=ctx.customer_id, amount_fen=amount, now=uow.now
            )
            alert = {
                "withdrawal_id": request.id,
                "amount_fen": request.amount_fen,
                "customer": openid_tail(ctx.openid),
            }
            await ctx.services.alerts.queue(
                uow.session, "alert_balance_withdrawal", alert, MANAGERS
            )
    except ShopError as exc:
        return error_reply(exc)
    return Text(
        "balance_withdrawal_requested",
        {"amount_fen": request.amount_fen, "withdrawal_id": request.id},
    )

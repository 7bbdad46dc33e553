"""Review moderation: the latest reviews, hidden ones marked; hide one or show it again.

    /reviews
    /reviews hide N
    /reviews show N

Hiding takes the review off its products' pages and out of their ratings (the cards'
★), showing puts it back; both are audited with the review before and after. Neither
is confirmed first: each undoes the other, and the customer is not told.
"""

from __future__ import annotations

from bot.admin.registry import ALL_ARGS, MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.outbound.alerts import openid_tail
from commerce.reviews import actions as reviews

LIST_SIZE = 15
ACTIONS = {"hide": True, "隐藏": True, "屏蔽": True, "show": False, "显示": False, "恢复": False}


def _review_id(word: str) -> int:
    word = word.lstrip("#")
    if not (word.isascii() and word.isdigit()) or not 1 <= int(word) <= 2**31 - 1:
        raise UsageError
    return int(word)


@REGISTRY.command("reviews", "评价", roles=MANAGERS, group="reviews", commas=ALL_ARGS)
async def moderate_reviews(actx: AdminContext) -> Outcome:
    """/reviews: the latest reviews; /reviews hide N | show N."""
    if not actx.args:
        async with actx.ctx.uow() as uow:
            latest = await reviews.recent_reviews(uow.session, limit=LIST_SIZE)
        rows = [{**reviews.review_data(r), "customer": openid_tail(r.openid)} for r in latest]
        return Outcome(Text("admin/reviews", {"reviews": rows}))
    if len(actx.args) != 2 or actx.arg(0).lower() not in ACTIONS:
        raise UsageError
    hidden, review_id = ACTIONS[actx.arg(0).lower()], _review_id(actx.arg(1))
    async with actx.ctx.uow() as uow:
        view, (before, after) = await reviews.set_hidden(uow.session, review_id=review_id, hidden=hidden)
    changed = before != after
    data = {**reviews.review_data(view), "changed": changed, "customer": openid_tail(view.openid)}
    return Outcome(Text("admin/review_moderated", data), before, after)

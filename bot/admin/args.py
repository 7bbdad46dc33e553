"""Arguments several staff commands share."""

from __future__ import annotations

import re
import unicodedata

from bot.admin.registry import AdminContext, UsageError
from bot.dialogs.common import unit_of_work
from commerce.customers.customers import CUSTOMER_TAIL_MIN, find_openid
from commerce.errors import ErrorCode, ShopError

# how alerts and lists show a customer: "顾客…_81093" (Chinese), "customer …_81093" (English)
_SHOWN_AS = re.compile(r"^(?:顾客|用户|customer)?[#:：\s]*(?:…|\.\.\.)?", re.IGNORECASE)


def _customer_ref(word: str) -> tuple[str, bool]:
    """(what names the customer, whether it can only be the end of an openid: typed as
    alerts show it, "顾客…_81093", "…_81093", or digits or "_" first as no openid starts)."""
    typed = unicodedata.normalize("NFKC", word).strip()
    ref = _SHOWN_AS.sub("", typed).removeprefix("...").removeprefix("…")
    if not CUSTOMER_TAIL_MIN <= len(ref) <= 64 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in ref):
        raise UsageError
    return ref, ref != typed or ref[0].isdigit() or ref[0] == "_"


async def customer_openid(actx: AdminContext, word: str) -> str:
    """The openid a staff member named: the whole openid, or its end as alerts show it
    ("81093", "_81093", "顾客…_81093"). A whole openid nobody has is passed on as typed
    (the command's own use case decides: /staff add takes someone who never wrote);
    an end nobody has is CUSTOMER_NOT_FOUND, one several share CUSTOMER_AMBIGUOUS."""
    ref, only_an_end = _customer_ref(word)
    async with unit_of_work(actx.ctx) as session:
        openid = await find_openid(session, ref=ref)
    if openid is None and only_an_end:
        raise ShopError(ErrorCode.CUSTOMER_NOT_FOUND, customer=ref)
    return openid if openid is not None else ref

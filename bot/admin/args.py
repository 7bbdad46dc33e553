"""Arguments several staff commands share."""

from __future__ import annotations

import re
import unicodedata

from bot.admin.registry import AdminContext, UsageError
from bot.dialogs.common import unit_of_work
from commerce.customers.customers import CUSTOMER_TAIL_MIN, find_openid

# how alerts and lists show a customer: "顾客…_81093" (Chinese), "customer …_81093" (English)
_SHOWN_AS = re.compile(r"^(?:顾客|用户|customer)?[#:：\s]*(?:…|\.\.\.)?", re.IGNORECASE)


def _customer_ref(word: str) -> str:
    ref = _SHOWN_AS.sub("", unicodedata.normalize("NFKC", word).strip())
    ref = ref.removeprefix("...").removeprefix("…")
    if not CUSTOMER_TAIL_MIN <= len(ref) <= 64 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in ref):
        raise UsageError
    return ref


async def customer_openid(actx: AdminContext, word: str) -> str:
    """The openid a staff member named: the whole openid, or its end as alerts show it
    ("81093", "_81093", "顾客…_81093"). An end nobody has is passed on as typed (the
    command's own use case says the customer is not found); an end several share is refused."""
    ref = _customer_ref(word)
    async with unit_of_work(actx.ctx) as session:
        openid = await find_openid(session, ref=ref)
    return openid if openid is not None else ref

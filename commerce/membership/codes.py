"""Becoming a member: a mainland mobile number confirmed with a one-time SMS code.

    code = await request_code(session, customer_id=..., phone="13812345678", now=..., key=...)
    # after the commit, outside the transaction: the SMS provider sends `code.code`
    result = await confirm_code(session, customer_id=..., typed="123456", now=..., key=..., rules=...)

The code (6 digits, `secrets`) is kept only as an HMAC-SHA256 under the shop's key with a
salt of its own, expires after `CODE_TTL`, and takes `MAX_TRIES` wrong answers before it
is spent. A phone and a customer each get a code at most once per `RESEND_AFTER` and
`DAILY_MAX` times in 24 hours (the `sms_codes` rows are the counter). One phone is one
member: a phone confirmed by another customer is refused (PHONE_TAKEN), when the code is
asked for and again when it is confirmed.

The code itself is returned once, to be sent, and is never logged: `IssuedCode` leaves it
out of its `repr`, and nothing here writes it anywhere but its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.errors import ErrorCode, ShopError
from commerce.membership import levels
from commerce.membership.models import Member, SmsCode
from commerce.rules import MemberLevel, ShopRules, as_utc

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=5)
RESEND_AFTER = timedelta(seconds=60)  # per phone and per customer
DAILY_MAX = 5  # codes per phone, and per customer, in any 24 hours
MAX_TRIES = 5  # wrong codes before the code is spent

# a mainland mobile number: 11 digits from 13x to 19x, optionally +86 / 0086 / 86 first,
# with the spaces and dashes people type
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_SEPARATORS = re.compile(r"[\s\-－—()（）]+")


def normalize_phone(text: str) -> str | None:
    """The 11 digits of a mainland mobile number ("+86 138-1234-5678" → "13812345678"), or None."""
    digits = _SEPARATORS.sub("", text.strip().translate(_FULLWIDTH))
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == 11 + len(prefix):
            digits = digits[len(prefix):]
            break
    return digits if _MOBILE.match(digits) else None


_FULLWIDTH = str.maketrans("０１２３４５６７８９＋", "0123456789+")


def phone_tail(phone: str) -> str:
    return phone[-4:]


def _digest(key: bytes, salt: str, phone: str, code: str) -> str:
    return hmac.new(key, f"{salt}|{phone}|{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code_id: int
    phone: str
    expires_at: datetime
    code: str = field(repr=False)  # sent once, never logged

    @property
    def minutes(self) -> int:
        return int(CODE_TTL.total_seconds() // 60)


async def _member_phone(session: AsyncSession, customer_id: int) -> str | None:
    return await session.scalar(select(Member.phone).where(Member.customer_id == customer_id))


async def request_code(
    session: AsyncSession, *, customer_id: int, phone: str, now: datetime, key: bytes
) -> IssuedCode:
    """A new code for `phone` (its hash stored; the code returned to be sent after the commit).

    PHONE_INVALID (not a mainland mobile), ALREADY_MEMBER (details: phone_tail),
    PHONE_TAKEN, CODE_TOO_SOON (details: wait_seconds), CODE_LIMIT (details: max)."""
    now = as_utc(now)
    normal = normalize_phone(phone)
    if normal is None:
        raise ShopError(ErrorCode.PHONE_INVALID, reason="mobile")
    # one request of a customer at a time (two taps at once must not both pass the limits): a
    # no-op UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite) before the reads
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(total_spent_fen=Customer.total_spent_fen)
        .execution_options(synchronize_session=False)
    )
    own = await _member_phone(session, customer_id)
    if own is not None:
        raise ShopError(ErrorCode.ALREADY_MEMBER, phone_tail=phone_tail(own))
    if await session.scalar(select(Member.id).where(Member.phone == normal)) is not None:
        raise ShopError(ErrorCode.PHONE_TAKEN)
    mine = or_(SmsCode.phone == normal, SmsCode.customer_id == customer_id)
    last = await session.scalar(select(func.max(SmsCode.sent_at)).where(mine))
    if last is not None and now - as_utc(last) < RESEND_AFTER:
        wait = RESEND_AFTER - (now - as_utc(last))
        raise ShopError(ErrorCode.CODE_TOO_SOON, wait_seconds=max(1, int(wait.total_seconds() + 0.999)))
    day = now - timedelta(hours=24)
    for who in (SmsCode.phone == normal, SmsCode.customer_id == customer_id):
        count = await session.scalar(select(func.count()).select_from(SmsCode).where(who, SmsCode.sent_at > day))
        if (count or 0) >= DAILY_MAX:
            raise ShopError(ErrorCode.CODE_LIMIT, max=DAILY_MAX)
    # an earlier code of this customer's is spent by the new one
    await session.execute(
        update(SmsCode)
        .where(SmsCode.customer_id == customer_id, SmsCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_hex(8)
    row = SmsCode(
        customer_id=customer_id, phone=normal, salt=salt, code_hash=_digest(key, salt, normal, code),
        sent_at=now, expires_at=now + CODE_TTL, tries=0,
    )
    session.add(row)
    await session.flush()
    return IssuedCode(code_id=row.id, phone=normal, expires_at=row.expires_at, code=code)


async def withdraw_code(session: AsyncSession, *, code_id: int) -> None:
    """The provider did not send the code: it is forgotten, and counts for no limit."""
    await session.execute(delete(SmsCode).where(SmsCode.id == code_id).execution_options(synchronize_session=False))


Outcome = Literal["joined", "wrong", "expired", "too_many", "no_code", "taken", "already"]


@dataclass(frozen=True, slots=True)
class CodeCheck:
    outcome: Outcome
    phone_tail: str = ""
    tries_left: int = 0
    level: MemberLevel | None = None  # joined: the level their spending so far reached
    total_spent_fen: int = 0


async def confirm_code(
    session: AsyncSession, *, customer_id: int, typed: str, now: datetime, key: bytes, rules: ShopRules
) -> CodeCheck:
    """Check a typed code against the customer's latest one; right: they are a member now,
    at the level their spending so far reached. A wrong code counts a try (kept: the caller
    commits whatever the outcome)."""
    now = as_utc(now)
    own = await _member_phone(session, customer_id)
    if own is not None:
        return CodeCheck("already", phone_tail=phone_tail(own))
    row = await session.scalar(
        select(SmsCode)
        .where(SmsCode.customer_id == customer_id, SmsCode.used_at.is_(None))
        .order_by(SmsCode.sent_at.desc(), SmsCode.id.desc())
        .limit(1)
        .with_for_update()
    )
    if row is None:
        return CodeCheck("no_code")
    if as_utc(row.expires_at) <= now:
        row.used_at = now
        return CodeCheck("expired", phone_tail=phone_tail(row.phone))
    if row.tries >= MAX_TRIES:
        row.used_at = now
        return CodeCheck("too_many", phone_tail=phone_tail(row.phone))
    typed = typed.strip().translate(_FULLWIDTH)
    if not hmac.compare_digest(_digest(key, row.salt, row.phone, typed), row.code_hash):
        row.tries += 1
        left = MAX_TRIES - row.tries
        if left <= 0:
            row.used_at = now
            return CodeCheck("too_many", phone_tail=phone_tail(row.phone))
        return CodeCheck("wrong", phone_tail=phone_tail(row.phone), tries_left=left)
    row.used_at = now
    await session.flush()
    try:
        async with session.begin_nested():  # another customer confirmed this phone meanwhile
            session.add(Member(customer_id=customer_id, phone=row.phone, joined_at=now))
    except IntegrityError:
        return CodeCheck("taken", phone_tail=phone_tail(row.phone))
    changed = await levels.refresh_level(session, customer_id=customer_id, rules=rules)
    total = int(await session.scalar(select(Customer.total_spent_fen).where(Customer.id == customer_id)) or 0)
    return CodeCheck(
        "joined", phone_tail=phone_tail(row.phone), level=changed[1] if changed else None, total_spent_fen=total
    )

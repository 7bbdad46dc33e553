"""Messages a unit of work decided to send: outbox rows written in its own transaction.

A core function that learns, inside a transaction, that a customer must hear something
(their order is paid, their group filled, a badge earned) calls
`queue(session, openid=..., template=..., data=...)`. Nothing leaves the process there:
the transaction may still roll back, and no message is sent while rows are locked.

When the session commits, `write_queued` (a `before_commit` hook that
`commerce.wiring.shop_sessions` installs on every shop session) turns the queue into
outbox rows *in that same transaction*: the notice and its cause are committed together
or not at all. A row is born leased to its writer for `NOTICE_HEAD_START`, so the writer's
dispatcher (`commerce.uow`) sends it at once after the commit while the scheduler's
`deliver_outbox` keeps its hands off; if the process dies between the commit and the
send, the head start runs out and `deliver_outbox` sends it within seconds (a killed
worker's "支付成功" is not two minutes late). A head start that runs out while the
writer is merely slow costs nothing but a race both sides are ready for: the first
`begin_send` wins and the other finds the row taken. Either way it is sent at most
once: an attempt takes the row with a conditional UPDATE (`outbox.begin_send`), and a
send whose outcome is unknown is never repeated (`commerce.messaging.outbox`).

A notice row holds the template name and its data, not rendered text: the bot renders it
in the customer's language when it delivers (`payload = {"notice": {...}}`). Data must
be plain values (str, int, float, bool, None, lists, dicts, datetimes and dates); a
value that cannot be stored raises at `queue`, where the mistake is, not at the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from commerce.messaging.models import OutboxMessage, OutboxStatus
from commerce.messaging.notifications import Notification

log = logging.getLogger(__name__)

_QUEUED = "storefront.notices"
_FOLLOW_UPS = "storefront.notices.follow_ups"
_WRITTEN = "storefront.notices.written"
SESSION_CLOCK = "storefront.clock"  # a callable returning an aware datetime (the uow's clock)
NOTICE_LEASE = timedelta(minutes=2)  # an attempt's lease (sending): far longer than a WeChat call
NOTICE_HEAD_START = timedelta(seconds=5)  # a new row's writer's head start before deliver_outbox may send it
EVENT_LIMIT = 40


# ---- queueing ---------------------------------------------------------------------------------


def queue(
    session: AsyncSession | Session,
    *,
    openid: str,
    template: str,
    data: Mapping[str, Any],
    follow_up: bool = False,
) -> None:
    """Tell `openid` `template` with `data` when (and only if) this transaction commits.

    `follow_up`: written after every other notice of the transaction, whenever it was
    queued (a review's invitation comes after "your order completed itself", although the
    order's move queued it first)."""
    encode(data)  # refused here, where the mistake is, not at the commit
    notice = Notification(openid, template, dict(data))
    if follow_up:
        session.info.setdefault(_FOLLOW_UPS, []).append(notice)
    else:
        _queued(session).append(notice)


def take_queued(session: AsyncSession | Session) -> list[Notification]:
    """The notices queued so far, removed (to merge or reword them before the commit)."""
    return list(session.info.pop(_QUEUED, [])) + list(session.info.pop(_FOLLOW_UPS, []))


def _queued(session: AsyncSession | Session) -> list[Notification]:
    queued: list[Notification] = session.info.setdefault(_QUEUED, [])
    return queued


def take(session: AsyncSession | Session) -> list[Notification]:
    """After the commit: what it wrote to the outbox (or, on a session without the hook,
    what was queued), removed from the session."""
    written = [n for n, _row in session.info.pop(_WRITTEN, [])]
    return written + take_queued(session)


def take_written_ids(session: AsyncSession | Session) -> list[int]:
    """After the commit: the ids of the outbox rows it wrote, for the dispatcher."""
    return [row.id for _n, row in session.info.pop(_WRITTEN, []) if row.id is not None]


def discard(session: AsyncSession | Session) -> None:
    """Forget what was queued and written (the transaction rolled back and will be retried)."""
    session.info.pop(_QUEUED, None)
    session.info.pop(_FOLLOW_UPS, None)
    session.info.pop(_WRITTEN, None)


# ---- the commit hook --------------------------------------------------------------------------


def install(session_class: type[Session]) -> None:
    """Write queued notices to the outbox when a session of `session_class` commits."""
    if not event.contains(session_class, "before_commit", write_queued):
        event.listen(session_class, "before_commit", write_queued)


def write_queued(session: Session) -> None:
    """`before_commit`: each queued notice becomes a pending outbox row in this transaction."""
    queued = take_queued(session)
    if not queued:
        return
    clock = session.info.get(SESSION_CLOCK)
    now = clock() if callable(clock) else datetime.now(UTC)
    written = session.info.setdefault(_WRITTEN, [])
    for notice in queued:
        row = OutboxMessage(
            openid=notice.openid,
            event=notice.template[:EVENT_LIMIT],
            payload={"notice": {"template": notice.template, "data": encode(notice.data)}},
            template=None,
            status=OutboxStatus.PENDING.value,
            channel="",
            attempts=0,
            next_attempt_at=now + NOTICE_HEAD_START,
            last_error="",
            delivery_status="",
            created_at=now,
        )
        session.add(row)
        written.append((notice, row))


def notice_of(payload: Mapping[str, Any]) -> Notification | None:
    """The notice an outbox row's payload holds (decoded), or None for a rendered message."""
    raw = payload.get("notice")
    if not isinstance(raw, Mapping):
        return None
    return Notification("", str(raw.get("template", "")), decode(raw.get("data") or {}))


# ---- plain values in JSON ---------------------------------------------------------------------

_DATETIME = "$datetime"
_DATE = "$date"
_DICT = "$dict"  # a dict of the caller's that would read as a tag
_TAGS = (_DATETIME, _DATE, _DICT)


def encode(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as JSON-safe values; datetimes and dates are tagged so that `decode` restores them."""
    return {str(k): _encode(v, str(k)) for k, v in data.items()}


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return _encode(value.value, where)
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    if isinstance(value, Mapping):
        encoded = {str(k): _encode(v, f"{where}.{k}") for k, v in value.items()}
        return {_DICT: encoded} if len(encoded) == 1 and next(iter(encoded)) in _TAGS else encoded
    if isinstance(value, list | tuple):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"notice data {where!r}: {type(value).__name__} cannot be kept in the outbox")


def decode(data: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _decode(v) for k, v in data.items()}


def _decode(value: Any) -> Any:
    if isinstance(value, Mapping):
        if len(value) == 1 and _DATETIME in value:
            return datetime.fromisoformat(str(value[_DATETIME]))
        if len(value) == 1 and _DATE in value:
            return date.fromisoformat(str(value[_DATE]))
        if len(value) == 1 and _DICT in value:
            return {str(k): _decode(v) for k, v in value[_DICT].items()}
        return {str(k): _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value

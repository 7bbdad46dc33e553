"""The audit log of staff actions: who, what, when, with what outcome, before and after.

Every admin write in the commerce core returns a `Change`, a (before, after) pair of
plain JSON-safe dicts (None for "did not exist" / "does not exist any more"), which the
bot passes to `record` together with who asked and what they typed. Refused attempts
(a stranger trying a command, a validation error) are recorded too, with no change.
Nothing here commits.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.rules import as_utc, utcnow
from commerce.staff.models import AuditEntry

Change = tuple[dict[str, Any] | None, dict[str, Any] | None]

OUTCOMES = frozenset({"ok", "refused", "failed", "cancelled", "expired"})
MAX_LIMIT = 200


@dataclass(frozen=True)
class AuditView:
    id: int
    actor: str
    role: str
    command: str
    args: list[Any] | dict[str, Any]
    outcome: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


def jsonable(value: Any) -> Any:
    """`value` made of JSON types only: datetimes and dates as ISO text, enums as their
    value, Decimals as text, tuples and sets as lists, dataclasses as dicts."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [jsonable(v) for v in items]
    return str(value)


ARG_TEXT_LIMIT = 200  # characters kept of one argument: a 10 KB paste is not evidence
ARGS_LIMIT = 20  # arguments kept of one command


def _clip_args(args: Any) -> Any:
    """What staff typed, bounded: long texts cut (marked with …), at most ARGS_LIMIT items."""
    if isinstance(args, str):
        return args if len(args) <= ARG_TEXT_LIMIT else args[: ARG_TEXT_LIMIT - 1] + "…"
    if isinstance(args, list):
        return [_clip_args(a) for a in args[:ARGS_LIMIT]]
    if isinstance(args, dict):
        return {k: _clip_args(v) for k, v in list(args.items())[:ARGS_LIMIT]}
    return args


def snapshot(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else jsonable(dict(value))


async def record(
    session: AsyncSession,
    *,
    actor: str,
    role: str,
    command: str,
    args: list[Any] | dict[str, Any],
    outcome: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Write one entry. `role` is "" for someone who is not staff; `outcome` one of OUTCOMES.

    Texts longer than their columns are cut (the log must never fail the action)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
    session.add(
        AuditEntry(
            actor=actor[:64],
            role=str(role)[:16],
            command=command[:32],
            args=_clip_args(jsonable(args if isinstance(args, list | dict) else list(args))),
            outcome=outcome,
            before=snapshot(before),
            after=snapshot(after),
            created_at=as_utc(now or utcnow()),
        )
    )
    await session.flush()


async def latest(
    session: AsyncSession, *, limit: int = 20, actor: str | None = None
) -> list[AuditView]:
    """The newest entries first (at most MAX_LIMIT), optionally only one actor's."""
    query = select(AuditEntry)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    rows = await session.scalars(
        query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).limit(
            max(1, min(limit, MAX_LIMIT))
        )
    )
    return [
        AuditView(
            id=row.id,
            actor=row.actor,
            role=row.role,
            command=row.command,
            args=row.args,
            outcome=row.outcome,
            before=row.before,
            after=row.after,
            created_at=as_utc(row.created_at),
        )
        for row in rows
    ]

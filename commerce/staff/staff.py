"""Staff: who may run the shop from the chat, in which role, and their invites.

Two sources: the config's allow-list of owners (`owners`, passed in by the caller,
always OWNER and never changed from the chat) and the `staff_members` table. A config
owner who mutes alerts gets a row too, only to hold the flag: such a row is marked
(`added_by == CONFIG_HOLDER`) and grants nothing by itself, so taking someone off the
config's list really takes their rights away.

An invite is a one-time code with a role and an expiry; the person who sends it to the
account becomes staff. Redeeming reveals nothing: an unknown, used or expired code is
just None. Nothing here commits.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.db import rowcount
from commerce.db import upsert_insert as _insert
from commerce.errors import ErrorCode, ShopError
from commerce.rules import as_utc, utcnow
from commerce.staff.audit import Change, jsonable
from commerce.staff.models import StaffInvite, StaffMember, StaffRole

INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1: nothing to misread
INVITE_LENGTH = 8
CONFIG_HOLDER = "(config)"  # added_by of a row that only holds a config owner's alert flag
ROLE_ORDER = {StaffRole.OWNER: 0, StaffRole.OPERATOR: 1, StaffRole.SERVICE: 2}
ALL_ROLES: frozenset[StaffRole] = frozenset(StaffRole)
NAME_MAX = 32
OPENID_MAX = 64


@dataclass(frozen=True)
class StaffView:
    openid: str
    role: StaffRole
    name: str
    alerts_muted: bool
    from_config: bool




def _grants(row: StaffMember, owners: Collection[str]) -> bool:
    """Whether a row makes its openid staff (a flag holder only while still in the config)."""
    return row.added_by != CONFIG_HOLDER or row.openid in owners


def _snapshot(row: StaffMember) -> dict[str, Any]:
    return {
        "openid": row.openid,
        "role": row.role,
        "name": row.name,
        "alerts_muted": row.alerts_muted,
    }


def _view(row: StaffMember) -> StaffView:
    return StaffView(
        openid=row.openid,
        role=StaffRole(row.role),
        name=row.name,
        alerts_muted=row.alerts_muted,
        from_config=False,
    )


def _config_view(openid: str, row: StaffMember | None) -> StaffView:
    return StaffView(
        openid=openid,
        role=StaffRole.OWNER,
        name=row.name if row is not None else "",
        alerts_muted=row.alerts_muted if row is not None else False,
        from_config=True,
    )


def _check_openid(openid: str) -> str:
    openid = (openid or "").strip()
    if not 1 <= len(openid) <= OPENID_MAX or any(c.isspace() for c in openid):
        raise ShopError(ErrorCode.OPENID_INVALID, max_length=OPENID_MAX)
    return openid


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if len(name) > NAME_MAX:
        raise ShopError(ErrorCode.NAME_INVALID, field="name", min_length=0, max_length=NAME_MAX)
    return name


async def _row(session: AsyncSession, openid: str) -> StaffMember | None:
    return await session.scalar(
        select(StaffMember)
        .where(StaffMember.openid == openid)
        .execution_options(populate_existing=True)
    )


async def _staff_row(session: AsyncSession, openid: str, owners: Collection[str]) -> StaffMember:
    """The DB row that makes `openid` staff; STAFF_IN_CONFIG for a config owner."""
    if openid in owners:
        raise ShopError(ErrorCode.STAFF_IN_CONFIG, openid=openid)
    row = await _row(session, openid)
    if row is None or not _grants(row, owners):
        raise ShopError(ErrorCode.STAFF_NOT_FOUND, openid=openid)
    return row


async def _check_not_last_owner(
    session: AsyncSession, row: StaffMember, owners: Collection[str]
) -> None:
    """Refuse to remove or demote the only owner there is (nobody could manage staff)."""
    if row.role != StaffRole.OWNER.value or owners:
        return
    others = await session.scalar(
        select(func.count())
        .select_from(StaffMember)
        .where(
            StaffMember.role == StaffRole.OWNER.value,
            StaffMember.id != row.id,
            StaffMember.added_by != CONFIG_HOLDER,
        )
    )
    if not others:
        raise ShopError(ErrorCode.LAST_OWNER, openid=row.openid)


# ---- who is staff -------------------------------------------------------------------


async def staff_role(
    session: AsyncSession, *, openid: str, owners: Collection[str]
) -> StaffRole | None:
    """Config owners are OWNER; others have their row's role; everyone else None."""
    if openid in owners:
        return StaffRole.OWNER
    row = await session.execute(
        select(StaffMember.role, StaffMember.added_by).where(StaffMember.openid == openid)
    )
    found = row.first()
    if found is None or found.added_by == CONFIG_HOLDER:
        return None
    return StaffRole(found.role)


async def staff_roles(session: AsyncSession, *, owners: Collection[str]) -> dict[str, StaffRole]:
    """Everyone who is staff, by openid, as `staff_role` sees each: the config owners as
    OWNER, then the table's rows (but the config holder's). One query for the whole
    (small) staff, so a worker need not ask again for every customer who writes."""
    roles: dict[str, StaffRole] = {}
    for openid, role, added_by in await session.execute(
        select(StaffMember.openid, StaffMember.role, StaffMember.added_by)
    ):
        if added_by != CONFIG_HOLDER:
            roles[openid] = StaffRole(role)
    roles.update(dict.fromkeys(owners, StaffRole.OWNER))
    return roles


async def list_staff(session: AsyncSession, *, owners: Collection[str]) -> list[StaffView]:
    """Config owners first (in config order), then the others by role and seniority."""
    rows = (await session.scalars(select(StaffMember).order_by(StaffMember.id))).all()
    by_openid = {row.openid: row for row in rows}
    config = [_config_view(o, by_openid.get(o)) for o in dict.fromkeys(owners)]
    others = sorted(
        (row for row in rows if row.openid not in owners and _grants(row, owners)),
        key=lambda row: (ROLE_ORDER.get(StaffRole(row.role), 9), row.id),
    )
    return config + [_view(row) for row in others]


async def alert_recipients(
    session: AsyncSession,
    *,
    owners: Collection[str],
    roles: Collection[StaffRole] = ALL_ROLES,
) -> list[str]:
    """Openids of the staff in `roles` who have not muted alerts (config owners first)."""
    wanted = {StaffRole(r) for r in roles}
    return [
        view.openid
        for view in await list_staff(session, owners=owners)
        if view.role in wanted and not view.alerts_muted
    ]


# ---- changing staff -----------------------------------------------------------------


async def add_staff(
    session: AsyncSession,
    *,
    openid: str,
    role: StaffRole,
    added_by: str,
    name: str = "",
    owners: Collection[str] = (),
) -> tuple[StaffView, Change]:
    """Make `openid` staff. STAFF_EXISTS if they are (STAFF_IN_CONFIG: a config owner)."""
    openid = _check_openid(openid)
    role = StaffRole(role)
    name = _check_name(name)
    if openid in owners:
        raise ShopError(ErrorCode.STAFF_IN_CONFIG, openid=openid)
    inserted = await session.scalar(
        _insert(session, StaffMember)
        .values(
            openid=openid,
            role=role.value,
            name=name,
            alerts_muted=False,
            added_by=added_by[:64],
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(StaffMember.id)
    )
    if inserted is None:
        # a leftover flag holder of a former config owner becomes a real row; else it exists
        converted = await session.execute(
            update(StaffMember)
            .where(StaffMember.openid == openid, StaffMember.added_by == CONFIG_HOLDER)
            .values(role=role.value, name=name or StaffMember.name, added_by=added_by[:64])
            .execution_options(synchronize_session=False)
        )
        if rowcount(converted) != 1:
            existing = await _row(session, openid)
            raise ShopError(
                ErrorCode.STAFF_EXISTS,
                openid=openid,
                role=existing.role if existing is not None else "",
            )
    row = await _row(session, openid)
    assert row is not None
    return _view(row), (None, _snapshot(row) | {"added_by": row.added_by})


async def remove_staff(session: AsyncSession, *, openid: str, owners: Collection[str]) -> Change:
    """Take `openid` off the staff. STAFF_NOT_FOUND; STAFF_IN_CONFIG for a config owner;
    LAST_OWNER when this is the only owner and the config names none."""
    row = await _staff_row(session, openid, owners)
    await _check_not_last_owner(session, row, owners)
    before = _snapshot(row)
    await session.delete(row)
    await session.flush()
    return before, None


async def change_role(
    session: AsyncSession, *, openid: str, role: StaffRole, owners: Collection[str]
) -> Change:
    """Give a staff member another role. STAFF_NOT_FOUND, STAFF_IN_CONFIG, LAST_OWNER."""
    role = StaffRole(role)
    row = await _staff_row(session, openid, owners)
    if role != StaffRole.OWNER:
        await _check_not_last_owner(session, row, owners)
    before = _snapshot(row)
    row.role = role.value
    await session.flush()
    return before, _snapshot(row)


async def set_staff_name(
    session: AsyncSession, *, openid: str, name: str, owners: Collection[str]
) -> Change:
    """Rename a staff member (config owners get a flag-holder row for it)."""
    name = _check_name(name)
    row = await _own_row(session, openid=openid, owners=owners)
    before = _snapshot(row)
    row.name = name
    await session.flush()
    return before, _snapshot(row)


async def set_alerts_muted(
    session: AsyncSession, *, openid: str, muted: bool, owners: Collection[str]
) -> Change:
    """Mute or unmute alerts for a staff member (config owners included)."""
    row = await _own_row(session, openid=openid, owners=owners)
    before = _snapshot(row)
    row.alerts_muted = bool(muted)
    await session.flush()
    return before, _snapshot(row)


async def _own_row(session: AsyncSession, *, openid: str, owners: Collection[str]) -> StaffMember:
    """The row holding a staff member's own settings; created for a config owner."""
    if openid not in owners:
        return await _staff_row(session, openid, owners)
    row = await _row(session, openid)
    if row is None:
        await session.execute(
            _insert(session, StaffMember)
            .values(
                openid=openid,
                role=StaffRole.OWNER.value,
                name="",
                alerts_muted=False,
                added_by=CONFIG_HOLDER,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing()
        )
        row = await _row(session, openid)
        assert row is not None
    return row


# ---- invites --------------------------------------------------------------------------


def _new_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))


def normalize_code(code: str) -> str:
    """What the person typed, as stored: no spaces or dashes, upper case."""
    return "".join(c for c in (code or "") if c not in " -\t").upper()


async def create_invite(
    session: AsyncSession,
    *,
    role: StaffRole,
    created_by: str,
    ttl: timedelta = timedelta(hours=24),
    now: datetime | None = None,
) -> StaffInvite:
    """A new one-time invite code for `role`, valid for `ttl`."""
    role = StaffRole(role)
    if ttl <= timedelta(0):
        raise ValueError(f"ttl must be positive, got {ttl}")
    now = as_utc(now or utcnow())
    for _attempt in range(10):
        invite_id = await session.scalar(
            _insert(session, StaffInvite)
            .values(
                code=_new_code(),
                role=role.value,
                created_by=created_by[:64],
                created_at=now,
                expires_at=now + ttl,
            )
            .on_conflict_do_nothing()
            .returning(StaffInvite.id)
        )
        if invite_id is not None:
            invite = await session.get(StaffInvite, invite_id)
            assert invite is not None
            return invite
    raise RuntimeError("could not allocate a unique invite code")


async def redeem_invite(
    session: AsyncSession,
    *,
    code: str,
    openid: str,
    now: datetime | None = None,
    owners: Collection[str] = (),
) -> StaffView | None:
    """Make `openid` staff with the invite's role, once. None for an unknown, used or
    expired code, and for someone who is staff already (the invite stays unused)."""
    now = as_utc(now or utcnow())
    code = normalize_code(code)
    if len(code) != INVITE_LENGTH or not openid or len(openid) > OPENID_MAX:
        return None
    if openid in owners:
        return None
    existing = await _row(session, openid)
    if existing is not None and _grants(existing, owners):
        return None
    claimed = await session.execute(
        update(StaffInvite)
        .where(
            StaffInvite.code == code,
            StaffInvite.used_by.is_(None),
            StaffInvite.expires_at > now,
        )
        .values(used_by=openid, used_at=now)
        .returning(StaffInvite.id, StaffInvite.role, StaffInvite.created_by)
        .execution_options(synchronize_session=False)
    )
    invite = claimed.first()
    if invite is None:
        return None
    try:
        view, _change = await add_staff(
            session,
            openid=openid,
            role=StaffRole(invite.role),
            added_by=invite.created_by,
            owners=owners,
        )
    except ShopError:  # became staff meanwhile (another code, same moment): keep this code
        await session.execute(
            update(StaffInvite)
            .where(StaffInvite.id == invite.id)
            .values(used_by=None, used_at=None)
            .execution_options(synchronize_session=False)
        )
        return None
    return view


async def revoke_invite(session: AsyncSession, *, code: str, now: datetime | None = None) -> Change:
    """Make an unused invite unusable (it expires now). INVITE_INVALID when there is none."""
    now = as_utc(now or utcnow())
    invite = await session.scalar(
        select(StaffInvite)
        .where(StaffInvite.code == normalize_code(code))
        .execution_options(populate_existing=True)
    )
    if invite is None or invite.used_by is not None or as_utc(invite.expires_at) <= now:
        raise ShopError(ErrorCode.INVITE_INVALID, invite_code=normalize_code(code))
    before = {"code": invite.code, "role": invite.role, "expires_at": invite.expires_at}
    invite.expires_at = now
    await session.flush()
    return jsonable(before), jsonable(before | {"expires_at": now})

"""Staff: roles from the config and the database, management, invites, alert flags."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commerce.errors import ErrorCode
from commerce.staff import staff
from commerce.staff.models import StaffInvite, StaffMember, StaffRole
from commerce.wiring import shop_sessions
from tests.commerce.orders.test_queries import expect_error, run

R = StaffRole
OWNERS = ("boss",)
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return shop_sessions(engine)


async def add(
    sessions: async_sessionmaker[AsyncSession], openid: str, role: StaffRole, name: str = ""
) -> staff.StaffView:
    view, _change = await run(
        sessions, staff.add_staff, openid=openid, role=role, added_by="boss", name=name
    )
    return view


async def role_of(
    sessions: async_sessionmaker[AsyncSession], openid: str, owners: tuple[str, ...] = OWNERS
) -> StaffRole | None:
    return await run(sessions, staff.staff_role, openid=openid, owners=owners)


async def rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(StaffMember)) or 0)


# ---- roles and listing ---------------------------------------------------------------------


async def test_config_owners_database_staff_and_strangers(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add(sessions, "op-1", R.OPERATOR)
    assert await role_of(sessions, "boss") == R.OWNER
    assert await role_of(sessions, "op-1") == R.OPERATOR
    assert await role_of(sessions, "stranger") is None
    assert await role_of(sessions, "boss", owners=()) is None  # off the config: nothing left


async def test_add_staff_returns_the_view_and_the_change(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    view, (before, after) = await run(
        sessions, staff.add_staff, openid="cs-1", role=R.SERVICE, added_by="boss", name=" 小王 "
    )
    assert view == staff.StaffView(
        openid="cs-1", role=R.SERVICE, name="小王", alerts_muted=False, from_config=False
    )
    assert before is None
    assert after == {
        "openid": "cs-1",
        "role": "service",
        "name": "小王",
        "alerts_muted": False,
        "added_by": "boss",
    }


async def test_add_staff_refuses_duplicates_config_owners_and_bad_input(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add(sessions, "op-1", R.OPERATOR)
    details = await expect_error(
        ErrorCode.STAFF_EXISTS,
        run(sessions, staff.add_staff, openid="op-1", role=R.SERVICE, added_by="boss"),
    )
    assert details["role"] == "operator"
    await expect_error(
        ErrorCode.STAFF_IN_CONFIG,
        run(sessions, staff.add_staff, openid="boss", role=R.SERVICE, added_by="x", owners=OWNERS),
    )
    for openid in ("", "a b", "x" * 65):
        await expect_error(
            ErrorCode.OPENID_INVALID,
            run(sessions, staff.add_staff, openid=openid, role=R.SERVICE, added_by="boss"),
        )
    await expect_error(
        ErrorCode.NAME_INVALID,
        run(sessions, staff.add_staff, openid="n", role=R.SERVICE, added_by="b", name="名" * 33),
    )
    assert await role_of(sessions, "op-1") == R.OPERATOR and await rows(sessions) == 1


async def test_list_staff_config_owners_first_then_by_role(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add(sessions, "cs-1", R.SERVICE)
    await add(sessions, "op-1", R.OPERATOR)
    await add(sessions, "owner-2", R.OWNER, name="老板娘")
    listed = await run(sessions, staff.list_staff, owners=("boss", "boss-2"))
    assert [(v.openid, v.role, v.from_config) for v in listed] == [
        ("boss", R.OWNER, True),
        ("boss-2", R.OWNER, True),
        ("owner-2", R.OWNER, False),
        ("op-1", R.OPERATOR, False),
        ("cs-1", R.SERVICE, False),
    ]
    assert listed[2].name == "老板娘"


# ---- removing and changing ---------------------------------------------------------------


async def test_remove_staff(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add(sessions, "op-1", R.OPERATOR, name="小李")
    before, after = await run(sessions, staff.remove_staff, openid="op-1", owners=OWNERS)
    assert before == {"openid": "op-1", "role": "operator", "name": "小李", "alerts_muted": False}
    assert after is None
    assert await role_of(sessions, "op-1") is None
    await expect_error(
        ErrorCode.STAFF_NOT_FOUND, run(sessions, staff.remove_staff, openid="op-1", owners=OWNERS)
    )


async def test_config_owners_cannot_be_removed_or_changed_from_the_chat(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await expect_error(
        ErrorCode.STAFF_IN_CONFIG, run(sessions, staff.remove_staff, openid="boss", owners=OWNERS)
    )
    await expect_error(
        ErrorCode.STAFF_IN_CONFIG,
        run(sessions, staff.change_role, openid="boss", role=R.SERVICE, owners=OWNERS),
    )
    assert await role_of(sessions, "boss") == R.OWNER


async def test_change_role(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add(sessions, "cs-1", R.SERVICE)
    before, after = await run(
        sessions, staff.change_role, openid="cs-1", role=R.OPERATOR, owners=OWNERS
    )
    assert (before["role"], after["role"]) == ("service", "operator")
    assert await role_of(sessions, "cs-1") == R.OPERATOR
    await expect_error(
        ErrorCode.STAFF_NOT_FOUND,
        run(sessions, staff.change_role, openid="nobody", role=R.OWNER, owners=OWNERS),
    )


async def test_the_last_owner_cannot_be_removed_or_demoted_without_config_owners(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add(sessions, "owner-1", R.OWNER)
    await expect_error(
        ErrorCode.LAST_OWNER, run(sessions, staff.remove_staff, openid="owner-1", owners=())
    )
    await expect_error(
        ErrorCode.LAST_OWNER,
        run(sessions, staff.change_role, openid="owner-1", role=R.OPERATOR, owners=()),
    )
    # with a config owner, or a second owner, it is fine
    await run(sessions, staff.change_role, openid="owner-1", role=R.OPERATOR, owners=OWNERS)
    await run(sessions, staff.change_role, openid="owner-1", role=R.OWNER, owners=OWNERS)
    await add(sessions, "owner-2", R.OWNER)
    await run(sessions, staff.remove_staff, openid="owner-1", owners=())
    assert await role_of(sessions, "owner-1", owners=()) is None


# ---- invites ---------------------------------------------------------------------------------


async def invite(
    sessions: async_sessionmaker[AsyncSession], role: StaffRole = R.OPERATOR, **kwargs: object
) -> StaffInvite:
    return await run(sessions, staff.create_invite, role=role, created_by="boss", **kwargs)


async def redeem(
    sessions: async_sessionmaker[AsyncSession], code: str, openid: str, now: datetime = NOW
) -> staff.StaffView | None:
    return await run(sessions, staff.redeem_invite, code=code, openid=openid, now=now)


async def test_an_invite_code_looks_right_and_is_unique(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    codes = set()
    for _ in range(30):
        created = await invite(sessions, now=NOW)
        assert len(created.code) == 8 and set(created.code) <= set(staff.INVITE_ALPHABET)
        assert created.role == "operator" and created.created_by == "boss"
        assert created.expires_at.replace(tzinfo=UTC) == NOW + timedelta(hours=24)
        codes.add(created.code)
    assert len(codes) == 30


async def test_an_invite_makes_staff_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    created = await invite(sessions, R.SERVICE, now=NOW)
    view = await redeem(
        sessions, f" {created.code.lower()[:4]} {created.code.lower()[4:]} ", "new-1"
    )
    assert view == staff.StaffView(
        openid="new-1", role=R.SERVICE, name="", alerts_muted=False, from_config=False
    )
    assert await role_of(sessions, "new-1") == R.SERVICE
    assert await redeem(sessions, created.code, "new-2") is None  # one time only
    assert await role_of(sessions, "new-2") is None
    async with sessions() as session:
        stored = await session.scalar(select(StaffInvite).where(StaffInvite.code == created.code))
        assert stored is not None and stored.used_by == "new-1"
        member = await session.scalar(select(StaffMember).where(StaffMember.openid == "new-1"))
        assert member is not None and member.added_by == "boss"


async def test_unknown_and_expired_invites_reveal_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await invite(sessions, now=NOW, ttl=timedelta(hours=1))
    assert await redeem(sessions, "ZZZZZZZZ", "x") is None
    assert await redeem(sessions, "", "x") is None
    assert await redeem(sessions, created.code, "x", now=NOW + timedelta(hours=1)) is None
    assert await role_of(sessions, "x") is None
    assert await redeem(sessions, created.code, "x", now=NOW + timedelta(minutes=59)) is not None


async def test_staff_cannot_redeem_and_the_invite_stays_usable(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add(sessions, "op-1", R.OPERATOR)
    created = await invite(sessions, R.OWNER, now=NOW)
    assert await redeem(sessions, created.code, "op-1") is None
    assert await role_of(sessions, "op-1") == R.OPERATOR  # no promotion by invite
    assert (await redeem(sessions, created.code, "new-1")) is not None


async def test_one_invite_redeemed_at_once_by_many_makes_one_staff_member(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await invite(sessions, now=NOW)
    results = await asyncio.gather(*(redeem(sessions, created.code, f"n-{i}") for i in range(8)))
    assert len([r for r in results if r is not None]) == 1
    assert await rows(sessions) == 1


async def test_a_bad_ttl_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(ValueError):
        await invite(sessions, ttl=timedelta(0))


async def test_revoke_invite(sessions: async_sessionmaker[AsyncSession]) -> None:
    created = await invite(sessions, now=NOW)
    before, after = await run(
        sessions, staff.revoke_invite, code=created.code, now=NOW + timedelta(minutes=1)
    )
    assert before["code"] == after["code"] == created.code
    assert after["expires_at"] == (NOW + timedelta(minutes=1)).isoformat()
    assert await redeem(sessions, created.code, "x", now=NOW + timedelta(minutes=2)) is None
    await expect_error(
        ErrorCode.INVITE_INVALID, run(sessions, staff.revoke_invite, code=created.code)
    )


# ---- alerts --------------------------------------------------------------------------------


async def test_alerts_muting_and_recipients(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add(sessions, "op-1", R.OPERATOR)
    await add(sessions, "cs-1", R.SERVICE)
    recipients = await run(sessions, staff.alert_recipients, owners=OWNERS)
    assert recipients == ["boss", "op-1", "cs-1"]

    before, after = await run(
        sessions, staff.set_alerts_muted, openid="op-1", muted=True, owners=OWNERS
    )
    assert (before["alerts_muted"], after["alerts_muted"]) == (False, True)
    assert await run(sessions, staff.alert_recipients, owners=OWNERS) == ["boss", "cs-1"]
    assert await run(
        sessions, staff.alert_recipients, owners=OWNERS, roles=[R.SERVICE, R.OPERATOR]
    ) == ["cs-1"]
    await expect_error(
        ErrorCode.STAFF_NOT_FOUND,
        run(sessions, staff.set_alerts_muted, openid="nobody", muted=True, owners=OWNERS),
    )


async def test_a_config_owner_mutes_alerts_through_a_row_that_grants_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before, after = await run(
        sessions, staff.set_alerts_muted, openid="boss", muted=True, owners=OWNERS
    )
    assert (before["alerts_muted"], after["alerts_muted"], after["role"]) == (False, True, "owner")
    assert await run(sessions, staff.alert_recipients, owners=OWNERS) == []
    [listed] = await run(sessions, staff.list_staff, owners=OWNERS)
    assert listed.from_config and listed.alerts_muted and await rows(sessions) == 1

    # taken off the config's list: the flag's row makes them nothing
    assert await role_of(sessions, "boss", owners=()) is None
    assert await run(sessions, staff.list_staff, owners=()) == []
    await expect_error(
        ErrorCode.STAFF_NOT_FOUND, run(sessions, staff.remove_staff, openid="boss", owners=())
    )
    # and they can be made staff again like anyone else
    view, _ = await run(
        sessions, staff.add_staff, openid="boss", role=R.SERVICE, added_by="owner-2", owners=()
    )
    assert view.role == R.SERVICE and await role_of(sessions, "boss", owners=()) == R.SERVICE

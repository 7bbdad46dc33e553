"""Member levels by total spent: which level a total reaches, what is left to the next,
the levels in force (staff's, else the shop rules'), and keeping each member's level on
their customer row, where checkout reads it.

The pure part (`level_for`, `next_level`) works on `commerce.rules.MemberLevel` values;
the rest reads and writes in the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Customer
from commerce.errors import ErrorCode, ShopError
from commerce.membership.models import Member, MemberLevelRow
from commerce.rules import MemberLevel, ShopRules

MAX_DISCOUNT_BP = 5000  # a level takes at most 50% off (a typo of "80" is refused, not applied)
MAX_THRESHOLD_FEN = 10**11  # ¥1 billion
NAME_MAX = 16
NO_LEVEL = MemberLevel("", 0, 0)  # a member below every threshold


def ordered(levels: Sequence[MemberLevel]) -> tuple[MemberLevel, ...]:
    """By threshold, then name (two levels at one threshold: the first by name wins)."""
    return tuple(sorted(levels, key=lambda lv: (lv.threshold_fen, lv.name)))


def level_for(total_fen: int, levels: Sequence[MemberLevel]) -> MemberLevel:
    """The highest level whose threshold `total_fen` reaches (`NO_LEVEL` below them all)."""
    reached = NO_LEVEL
    for level in ordered(levels):
        if total_fen >= level.threshold_fen:
            reached = level
    return reached


def next_level(total_fen: int, levels: Sequence[MemberLevel]) -> tuple[MemberLevel, int] | None:
    """The next level up and the fen still to spend for it; None at the top."""
    for level in ordered(levels):
        if level.threshold_fen > total_fen:
            return level, level.threshold_fen - total_fen
    return None


async def current_levels(session: AsyncSession, rules: ShopRules) -> tuple[MemberLevel, ...]:
    """The levels in force: those staff set (`set_level`), else the shop rules' defaults."""
    rows = (await session.scalars(select(MemberLevelRow))).all()
    if not rows:
        return ordered(rules.member_levels)
    return ordered([_level(r) for r in rows])


@dataclass(frozen=True, slots=True)
class LevelChange:
    before: MemberLevel | None  # None: a new level
    after: MemberLevel
    levels: tuple[MemberLevel, ...]  # all of them, after
    members_moved: int  # members whose level or discount changed with it


def check_level(name: str, threshold_fen: int, discount_bp: int) -> MemberLevel:
    """A level staff typed, or LEVEL_INVALID (details: field, max values)."""
    name = name.strip()
    if not name or len(name) > NAME_MAX or any(c.isspace() or not c.isprintable() for c in name):
        raise ShopError(ErrorCode.LEVEL_INVALID, field="name", max_length=NAME_MAX)
    if not 0 <= threshold_fen <= MAX_THRESHOLD_FEN:
        raise ShopError(ErrorCode.LEVEL_INVALID, field="threshold", max_fen=MAX_THRESHOLD_FEN)
    if not 0 <= discount_bp <= MAX_DISCOUNT_BP:
        raise ShopError(ErrorCode.LEVEL_INVALID, field="discount", max_bp=MAX_DISCOUNT_BP)
    return MemberLevel(name, threshold_fen, discount_bp)


async def set_level(
    session: AsyncSession, *, name: str, threshold_fen: int, discount_bp: int, rules: ShopRules
) -> LevelChange:
    """Add or change the level `name`; the first change copies the rules' levels in first,
    so the others stay. Every member's level is worked out again in the same transaction."""
    level = check_level(name, threshold_fen, discount_bp)
    await _own_levels(session, rules)
    row = await session.scalar(select(MemberLevelRow).where(MemberLevelRow.name == level.name).with_for_update())
    before = None if row is None else _level(row)
    if row is None:
        session.add(MemberLevelRow(name=level.name, threshold_fen=level.threshold_fen, discount_bp=level.discount_bp))
    else:
        row.threshold_fen, row.discount_bp = level.threshold_fen, level.discount_bp
    await session.flush()
    levels = await current_levels(session, rules)
    moved = await relevel_members(session, levels)
    return LevelChange(before, level, levels, moved)


@dataclass(frozen=True, slots=True)
class LevelRemoval:
    removed: MemberLevel
    levels: tuple[MemberLevel, ...]  # those left
    members_moved: int  # members whose level or discount changed with it


async def remove_level(session: AsyncSession, *, name: str, rules: ShopRules) -> LevelRemoval:
    """Remove the level `name`; its members fall to the level their total spent reaches
    without it (or none), in the same transaction. Refused as `removable` says."""
    await _own_levels(session, rules)
    rows = (await session.scalars(select(MemberLevelRow).with_for_update())).all()
    removed = _removable(name, [_level(r) for r in rows])
    await session.execute(delete(MemberLevelRow).where(MemberLevelRow.name == removed.name))
    levels = await current_levels(session, rules)
    moved = await relevel_members(session, levels)
    return LevelRemoval(removed, levels, moved)


async def removable(session: AsyncSession, *, name: str, rules: ShopRules) -> tuple[MemberLevel, int]:
    """The level `name` as it stands and how many members hold it now, before staff confirm
    its removal: LEVEL_NOT_FOUND (details: name, known) when there is no such level,
    LEVEL_LAST for the only one left (with no levels the shop's defaults would count again:
    change it with `set_level` instead). Reads only."""
    level = _removable(name, await current_levels(session, rules))
    members = await session.scalar(
        select(func.count()).select_from(Member).join(Customer, Customer.id == Member.customer_id)
        .where(Customer.member_level == level.name)
    )
    return level, int(members or 0)


def _removable(name: str, levels: Sequence[MemberLevel]) -> MemberLevel:
    found = next((lv for lv in levels if lv.name == name.strip()), None)
    if found is None:
        raise ShopError(ErrorCode.LEVEL_NOT_FOUND, name=name.strip(), known=[lv.name for lv in ordered(levels)])
    if len(levels) == 1:
        raise ShopError(ErrorCode.LEVEL_LAST, name=found.name)
    return found


async def _own_levels(session: AsyncSession, rules: ShopRules) -> None:
    """The shop's own levels from now on: the first change copies the rules' levels in,
    so the others stay as they were."""
    if await session.scalar(select(MemberLevelRow.id).limit(1)) is None:
        session.add_all(MemberLevelRow(name=lv.name, threshold_fen=lv.threshold_fen, discount_bp=lv.discount_bp)
                        for lv in rules.member_levels)
        await session.flush()


def _level(row: MemberLevelRow) -> MemberLevel:
    return MemberLevel(row.name, row.threshold_fen, row.discount_bp)


async def relevel_members(session: AsyncSession, levels: Sequence[MemberLevel]) -> int:
    """Every member's level and discount from their total spent, one UPDATE per band of
    total; the count of members whose level or discount changed."""
    members = select(Member.customer_id).scalar_subquery()
    bands = ordered(levels)
    moved = 0
    edges = [*(lv.threshold_fen for lv in bands), None]
    lowest = bands[0].threshold_fen if bands else None
    if lowest is None or lowest > 0:  # below every threshold: a member without a level
        moved += await _set_band(session, members, NO_LEVEL, 0, lowest)
    for level, upper in zip(bands, edges[1:], strict=True):
        moved += await _set_band(session, members, level, level.threshold_fen, upper)
    return moved


async def _set_band(session: AsyncSession, members: object, level: MemberLevel, low: int, high: int | None) -> int:
    where = [Customer.id.in_(members), Customer.total_spent_fen >= low]  # type: ignore[arg-type]
    if high is not None:
        where.append(Customer.total_spent_fen < high)
    changed = (Customer.member_level != level.name) | (Customer.member_discount_bp != level.discount_bp)
    result = await session.execute(
        update(Customer)
        .where(*where, changed)
        .values(member_level=level.name, member_discount_bp=level.discount_bp)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def refresh_level(
    session: AsyncSession, *, customer_id: int, rules: ShopRules
) -> tuple[MemberLevel, MemberLevel] | None:
    """A member's level from their total spent now: (before, after), or None for a customer
    who is no member (their total is kept all the same, for when they join)."""
    if await session.scalar(select(Member.id).where(Member.customer_id == customer_id)) is None:
        return None
    row = (
        await session.execute(
            select(Customer.total_spent_fen, Customer.member_level, Customer.member_discount_bp)
            .where(Customer.id == customer_id)
            .execution_options(populate_existing=True)
        )
    ).one()
    levels = await current_levels(session, rules)
    after = level_for(int(row[0]), levels)
    before = next((lv for lv in levels if lv.name == row[1]), MemberLevel(row[1], 0, int(row[2])))
    if (after.name, after.discount_bp) != (row[1], int(row[2])):
        await session.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(member_level=after.name, member_discount_bp=after.discount_bp)
            .execution_options(synchronize_session=False)
        )
    return before, after

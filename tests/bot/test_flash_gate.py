"""The Redis gate's Lua script, and the in-process gate of a shop without Redis, are
`commerce.promotions.flash_sales.decide`, counting what they let through."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.flash_gate import MemoryFlashGate, RedisFlashGate
from commerce.promotions.flash_sales import FlashGate, GateState, Verdict, decide


@pytest.fixture(params=["redis", "memory"])
async def gate(request: pytest.FixtureRequest) -> AsyncIterator[MemoryFlashGate | RedisFlashGate]:
    """The Lua script on a real Redis, and the gate in process."""
    if request.param == "memory":
        yield MemoryFlashGate()
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisFlashGate(redis)
    finally:
        await redis.aclose()


async def test_the_gate_decides_as_the_pure_rule_over_random_grabs(gate: MemoryFlashGate | RedisFlashGate) -> None:
    await _decides_as_the_pure_rule(gate)


def _o(customer: int) -> str:
    return f"o_gate_{customer}"


async def _decides_as_the_pure_rule(gate: FlashGate) -> None:
    assert await gate.decide(sale_id=7, version=0, customer=_o(1), limit=2) is None  # nothing loaded yet
    units, limit = 8, 2
    held: dict[int, int] = {3: 1}
    paid: dict[int, int] = {4: 1}
    await gate.load(GateState(7, 1, units - 2, {_o(3): 1, _o(4): 1}, (_o(3),)))  # version 1
    assert await gate.decide(sale_id=7, version=0, customer=_o(1), limit=limit) is None  # another version
    rng = random.Random(16)
    seen: set[Verdict] = set()
    version = 1
    for _ in range(150):
        customer, draw = rng.randint(1, 5), rng.random()
        if draw < 0.2 and held.get(customer):  # the database refused a winner after all
            await gate.give_back(sale_id=7, customer=_o(customer))
            held[customer] -= 1
            continue
        if draw < 0.4 and held.get(customer):  # paid: the sale's version grows, the gate is reloaded
            held[customer] -= 1
            paid[customer] = paid.get(customer, 0) + 1
            version += 1
            taken = {c: held.get(c, 0) + paid.get(c, 0) for c in set(held) | set(paid)}
            left = units - sum(taken.values())
            holders = tuple(sorted(_o(c) for c, n in held.items() if n))
            await gate.load(GateState(7, version, left, {_o(c): n for c, n in taken.items() if n}, holders))
            continue
        left = units - sum(held.values()) - sum(paid.values())
        taken = held.get(customer, 0) + paid.get(customer, 0)
        expected = decide(left=left, taken=taken, holding=held.get(customer, 0) > 0, limit=limit)
        assert await gate.decide(sale_id=7, version=version, customer=_o(customer), limit=limit) == expected
        seen.add(expected)
        if expected == Verdict.WON:
            held[customer] = held.get(customer, 0) + 1
    assert seen == set(Verdict)  # every answer was met
    # a reload never goes back to an older version; sold out closes the gate
    await gate.load(GateState(7, 0, units, {}, ()))
    assert await gate.decide(sale_id=7, version=0, customer=_o(9), limit=limit) is None
    await gate.sold_out(sale_id=7)
    assert await gate.decide(sale_id=7, version=version, customer=_o(9), limit=limit) == Verdict.SOLD_OUT


async def _a_message_is_decided_once(gate: MemoryFlashGate | RedisFlashGate) -> None:
    await gate.load(GateState(8, 1, 1, {}, ()))

    async def ask(customer: int, key: str, version: int = 1) -> Verdict | None:
        return await gate.decide_message(sale_id=8, version=version, customer=_o(customer), limit=1, key=key)

    assert await ask(1, "m:1") == Verdict.WON
    assert await ask(1, "m:1") == Verdict.WON  # its retry: the verdict kept, not "holding"
    assert await ask(1, "m:2") == Verdict.HOLDING  # another message of the winner: its turn answers
    assert await ask(2, "m:3") == Verdict.SOLD_OUT
    await gate.load(GateState(8, 2, 1, {}, ()))  # the unit came back (the winner's order expired)
    assert await ask(2, "m:3", version=2) == Verdict.SOLD_OUT  # the retry keeps its answer
    assert await ask(2, "m:4", version=2) == Verdict.WON  # a new message takes the unit
    assert await ask(3, "m:5", version=1) is None  # asked with an older version: load the sale first


async def test_a_message_is_decided_once(gate: MemoryFlashGate | RedisFlashGate) -> None:
    await _a_message_is_decided_once(gate)


async def test_a_second_load_of_the_same_version_keeps_what_the_gate_counted(
    gate: MemoryFlashGate | RedisFlashGate,
) -> None:
    await _a_second_load_keeps_the_count(gate)


async def _a_second_load_keeps_the_count(gate: MemoryFlashGate | RedisFlashGate) -> None:
    """At a sale's start every worker finds the gate empty and loads it from the database.
    The second load came after the first worker's winners had been counted, and counted the
    units afresh: with 2 workers, 133 buyers were let through for 100 units (the database's
    UPDATE turned the rest away, each after a whole turn). The reconciling reload replaces."""
    state = GateState(9, 1, 2, {}, ())  # 2 units, nobody has one yet
    await gate.load(state)
    assert await gate.decide(sale_id=9, version=1, customer=_o(1), limit=1) == Verdict.WON
    await gate.load(state)  # the other worker's load, from the same read of the database
    assert await gate.decide(sale_id=9, version=1, customer=_o(2), limit=1) == Verdict.WON
    assert await gate.decide(sale_id=9, version=1, customer=_o(3), limit=1) == Verdict.SOLD_OUT
    assert await gate.decide(sale_id=9, version=1, customer=_o(1), limit=1) == Verdict.HOLDING
    # the scheduler's reload: customer 2's grab rolled back, the database holds one unit taken
    await gate.load(GateState(9, 1, 1, {_o(1): 1}, (_o(1),)), replace=True)
    assert await gate.decide(sale_id=9, version=1, customer=_o(3), limit=1) == Verdict.WON

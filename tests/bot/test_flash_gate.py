"""The Redis gate's Lua script is `commerce.promotions.flash_sales.decide`, counting what it lets through."""

from __future__ import annotations

import random

from redis.asyncio import Redis

from bot.flash_gate import RedisFlashGate
from commerce.promotions.flash_sales import GateState, Verdict, decide


async def test_the_script_decides_as_the_pure_rule_over_random_grabs(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    gate = RedisFlashGate(redis)
    try:
        assert await gate.decide(sale_id=7, version=0, customer_id=1, limit=2) is None  # nothing loaded yet
        units, limit = 8, 2
        held: dict[int, int] = {3: 1}
        paid: dict[int, int] = {4: 1}
        await gate.load(GateState(7, 1, units - 2, {3: 1, 4: 1}, (3,)))  # version 1
        assert await gate.decide(sale_id=7, version=0, customer_id=1, limit=limit) is None  # another version
        rng = random.Random(16)
        seen: set[Verdict] = set()
        version = 1
        for _ in range(150):
            customer, draw = rng.randint(1, 5), rng.random()
            if draw < 0.2 and held.get(customer):  # the database refused a winner after all
                await gate.give_back(sale_id=7, customer_id=customer)
                held[customer] -= 1
                continue
            if draw < 0.4 and held.get(customer):  # paid: the sale's version grows, the gate is reloaded
                held[customer] -= 1
                paid[customer] = paid.get(customer, 0) + 1
                version += 1
                taken = {c: held.get(c, 0) + paid.get(c, 0) for c in set(held) | set(paid)}
                left = units - sum(taken.values())
                holders = tuple(sorted(c for c, n in held.items() if n))
                await gate.load(GateState(7, version, left, {c: n for c, n in taken.items() if n}, holders))
                continue
            left = units - sum(held.values()) - sum(paid.values())
            taken = held.get(customer, 0) + paid.get(customer, 0)
            expected = decide(left=left, taken=taken, holding=held.get(customer, 0) > 0, limit=limit)
            assert await gate.decide(sale_id=7, version=version, customer_id=customer, limit=limit) == expected
            seen.add(expected)
            if expected == Verdict.WON:
                held[customer] = held.get(customer, 0) + 1
        assert seen == set(Verdict)  # every answer was met
        # a reload never goes back to an older version; sold out closes the gate
        await gate.load(GateState(7, 0, units, {}, ()))
        assert await gate.decide(sale_id=7, version=0, customer_id=9, limit=limit) is None
        await gate.sold_out(sale_id=7)
        assert await gate.decide(sale_id=7, version=version, customer_id=9, limit=limit) == Verdict.SOLD_OUT
    finally:
        await redis.aclose()

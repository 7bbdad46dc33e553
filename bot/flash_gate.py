"""The flash-sale gate in Redis: one Lua script decides a grab, so only winners reach the database.

Per sale, three keys (one hash slot: `{sale id}`): `meta` (units `left`, the sale's
`ver`sion it was loaded from), `n` (customer openid: units held or paid), `h` (customers
holding an unpaid unit). Customers are named by openid so that the webhook's edge
(`bot.flash_edge`) decides a grab before anything reads the database. The GRAB script is
`commerce.promotions.flash_sales.decide` in Lua, counting the unit when it is won; a missing or other version answers "reload", and
the core loads the database's state (`LOAD`, which never goes back to an older version,
and replaces the same version only when asked: the scheduler's reconciling reload) and
asks again. The database's conditional UPDATE stays the source of truth: a winner it
refuses is given back (`GIVE_BACK`) or closes the gate (`SOLD_OUT`), and the scheduler
reloads every running sale's keys (`open_close_flash_sales`), which undoes the count of a
grab whose transaction rolled back after the script.

Redis down or slow costs the shared count, never the answer: each worker decides with its
own gate in process meanwhile (below), and the database's UPDATE decides among its winners.

Without Redis, `MemoryFlashGate` is the same decision in process: exact for one worker,
and with several each lets through at most the units it last read, the database's UPDATE
deciding among them; its `sold_out` is how a worker remembers a sale sold out (per
version: a unit coming back raises the version, and the gate is loaded again).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from bot.redis_link import RedisLink
from commerce.promotions.flash_sales import FlashGate, GateState, Verdict, decide

PREFIX = "storefront:flash:o:"  # ":o:": the keys name customers by openid
TTL_SECONDS = 3 * 24 * 3600
KEPT_SECONDS = 300  # a message's verdict, for WeChat's retries (all within ~15 s)

GRAB = """
local ver = redis.call('HGET', KEYS[1], 'ver')
if (not ver) or ver ~= ARGV[1] then return 'reload' end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return 'holding' end
local n = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if n >= tonumber(ARGV[3]) then return 'limit' end
local left = tonumber(redis.call('HGET', KEYS[1], 'left') or '0')
if left <= 0 then return 'sold_out' end
redis.call('HINCRBY', KEYS[1], 'left', -1)
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('SADD', KEYS[3], ARGV[2])
return 'won'
"""

# The same for a message at the webhook's edge (bot.flash_edge), in one round trip: the
# verdict is kept under the message's key (KEYS[4], in the sale's hash slot), so that
# WeChat's retries of it get the same verdict and are not counted twice; "holding" is not
# kept (its turn answers, and the inbox de-duplicates its retries).
# ARGV: version, customer, limit, seconds the verdict is kept
GRAB_MESSAGE = """
local kept = redis.call('GET', KEYS[4])
if kept then return kept end
local ver = redis.call('HGET', KEYS[1], 'ver')
if (not ver) or ver ~= ARGV[1] then return 'reload' end
local verdict = 'won'
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then
  return 'holding'
elseif tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') >= tonumber(ARGV[3]) then
  verdict = 'limit'
elseif tonumber(redis.call('HGET', KEYS[1], 'left') or '0') <= 0 then
  verdict = 'sold_out'
else
  redis.call('HINCRBY', KEYS[1], 'left', -1)
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('SADD', KEYS[3], ARGV[2])
end
redis.call('SET', KEYS[4], verdict, 'EX', ARGV[4])
return verdict
"""

# ARGV: version, left, ttl, the number of (customer, count) pairs, the pairs, then the holders
LOAD = """
local ver = redis.call('HGET', KEYS[1], 'ver')
if ver and (tonumber(ver) > tonumber(ARGV[1]) or (tonumber(ver) == tonumber(ARGV[1]) and ARGV[5] == '0')) then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'ver', ARGV[1], 'left', ARGV[2])
local pairs = tonumber(ARGV[4])
for i = 0, pairs - 1 do
  redis.call('HSET', KEYS[2], ARGV[6 + 2 * i], ARGV[7 + 2 * i])
end
for i = 6 + 2 * pairs, #ARGV do
  redis.call('SADD', KEYS[3], ARGV[i])
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 1
"""

GIVE_BACK = """
if not redis.call('HGET', KEYS[1], 'ver') then return 0 end
redis.call('HINCRBY', KEYS[1], 'left', 1)
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') > 0 then redis.call('HINCRBY', KEYS[2], ARGV[1], -1) end
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"""

SOLD_OUT = """
if redis.call('HGET', KEYS[1], 'ver') then redis.call('HSET', KEYS[1], 'left', 0) end
return 1
"""


def sale_keys(sale_id: int) -> list[str]:
    base = f"{PREFIX}{{{sale_id}}}:"
    return [base + "meta", base + "n", base + "h"]


def _word(answer: object) -> str:
    return answer.decode() if isinstance(answer, bytes) else str(answer)


class RedisFlashGate:
    """`commerce.promotions.flash_sales.FlashGate` on Redis (scripts above)."""

    def __init__(self, redis: Redis) -> None:
        self._grab = redis.register_script(GRAB)
        self._load = redis.register_script(LOAD)
        self._give_back = redis.register_script(GIVE_BACK)
        self._sold_out = redis.register_script(SOLD_OUT)
        self._grab_message = redis.register_script(GRAB_MESSAGE)

    async def decide(self, *, sale_id: int, version: int, customer: str, limit: int) -> Verdict | None:
        word = _word(await self._grab(keys=sale_keys(sale_id), args=[version, customer, limit]))
        return None if word == "reload" else Verdict(word)

    async def decide_message(
        self, *, sale_id: int, version: int, customer: str, limit: int, key: str
    ) -> Verdict | None:
        """`decide` for the message `key`, once: its retries get the verdict kept (not holding)."""
        keys = [*sale_keys(sale_id), f"{PREFIX}{{{sale_id}}}:m:{key}"]
        word = _word(await self._grab_message(keys=keys, args=[version, customer, limit, KEPT_SECONDS]))
        return None if word == "reload" else Verdict(word)

    async def load(self, state: GateState, *, replace: bool = False) -> None:
        pairs = [value for item in sorted(state.taken.items()) for value in item]
        args = [state.version, state.left, TTL_SECONDS, len(state.taken), int(replace), *pairs, *state.holding]
        await self._load(keys=sale_keys(state.sale_id), args=args)

    async def give_back(self, *, sale_id: int, customer: str) -> None:
        await self._give_back(keys=sale_keys(sale_id), args=[customer])

    async def sold_out(self, *, sale_id: int) -> None:
        await self._sold_out(keys=sale_keys(sale_id), args=[])


@dataclass(slots=True)
class _Sale:
    version: int
    left: int
    taken: dict[str, int] = field(default_factory=dict)
    holding: set[str] = field(default_factory=set)


class MemoryFlashGate:
    """The GRAB/LOAD/GIVE_BACK/SOLD_OUT scripts in process, for a shop without Redis."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._sales: dict[int, _Sale] = {}
        self._kept: OrderedDict[tuple[int, str], tuple[float, Verdict]] = OrderedDict()
        self._clock = clock

    async def decide_message(
        self, *, sale_id: int, version: int, customer: str, limit: int, key: str
    ) -> Verdict | None:
        now = self._clock()
        while self._kept and now - next(iter(self._kept.values()))[0] >= KEPT_SECONDS:
            self._kept.popitem(last=False)
        kept = self._kept.get((sale_id, key))
        if kept is not None:
            return kept[1]
        verdict = await self.decide(sale_id=sale_id, version=version, customer=customer, limit=limit)
        if verdict is not None and verdict != Verdict.HOLDING:
            self._kept[(sale_id, key)] = (now, verdict)
        return verdict

    async def decide(self, *, sale_id: int, version: int, customer: str, limit: int) -> Verdict | None:
        sale = self._sales.get(sale_id)
        if sale is None or sale.version != version:
            return None
        taken = sale.taken.get(customer, 0)
        verdict = decide(left=sale.left, taken=taken, holding=customer in sale.holding, limit=limit)
        if verdict == Verdict.WON:
            sale.left -= 1
            sale.taken[customer] = taken + 1
            sale.holding.add(customer)
        return verdict

    async def load(self, state: GateState, *, replace: bool = False) -> None:
        known = self._sales.get(state.sale_id)
        if known is not None and (known.version > state.version or (known.version == state.version and not replace)):
            return  # never back to an older version; the same one only to replace it
        self._sales[state.sale_id] = _Sale(state.version, state.left, dict(state.taken), set(state.holding))

    async def give_back(self, *, sale_id: int, customer: str) -> None:
        sale = self._sales.get(sale_id)
        if sale is None:
            return
        sale.left += 1
        if sale.taken.get(customer, 0) > 0:
            sale.taken[customer] -= 1
        sale.holding.discard(customer)

    async def sold_out(self, *, sale_id: int) -> None:
        sale = self._sales.get(sale_id)
        if sale is not None:
            sale.left = 0


class WonAtTheEdge:
    """The gate a turn uses for a grab its message already won at the webhook's edge
    (`bot.flash_edge`): the unit is counted, so the question is answered WON without
    asking again (asked again, the gate would say the customer holds one); the rest is
    the shop's gate."""

    def __init__(self, gate: FlashGate) -> None:
        self._gate = gate

    async def decide(self, *, sale_id: int, version: int, customer: str, limit: int) -> Verdict | None:
        return Verdict.WON

    async def load(self, state: GateState, *, replace: bool = False) -> None:
        await self._gate.load(state, replace=replace)

    async def give_back(self, *, sale_id: int, customer: str) -> None:
        await self._gate.give_back(sale_id=sale_id, customer=customer)

    async def sold_out(self, *, sale_id: int) -> None:
        await self._gate.sold_out(sale_id=sale_id)


class FallbackFlashGate:
    """The Redis gate while Redis answers; while it does not, this worker's own gate in
    process (`MemoryFlashGate`, loaded from the database as it is asked): each worker lets
    through at most the units it read, and the database's UPDATE decides among them. (Every
    grab going to the database instead is what turned a Redis slowed by a rush into a flood
    of whole turns.)"""

    def __init__(self, shared: RedisFlashGate, link: RedisLink, local: MemoryFlashGate | None = None) -> None:
        self._shared = shared
        self._link = link
        self._local = local or MemoryFlashGate()

    async def decide_message(
        self, *, sale_id: int, version: int, customer: str, limit: int, key: str
    ) -> Verdict | None:
        return await self._link.attempt(
            "flash_gate",
            lambda: self._shared.decide_message(sale_id=sale_id, version=version, customer=customer, limit=limit,
                                                key=key),
            lambda: self._local.decide_message(sale_id=sale_id, version=version, customer=customer, limit=limit,
                                               key=key),
        )

    async def decide(self, *, sale_id: int, version: int, customer: str, limit: int) -> Verdict | None:
        return await self._link.attempt(
            "flash_gate",
            lambda: self._shared.decide(sale_id=sale_id, version=version, customer=customer, limit=limit),
            lambda: self._local.decide(sale_id=sale_id, version=version, customer=customer, limit=limit),
        )

    async def load(self, state: GateState, *, replace: bool = False) -> None:
        await self._link.attempt(
            "flash_gate", lambda: self._shared.load(state, replace=replace),
            lambda: self._local.load(state, replace=replace),
        )

    async def give_back(self, *, sale_id: int, customer: str) -> None:
        await self._link.attempt(
            "flash_gate", lambda: self._shared.give_back(sale_id=sale_id, customer=customer),
            lambda: self._local.give_back(sale_id=sale_id, customer=customer),
        )

    async def sold_out(self, *, sale_id: int) -> None:
        await self._link.attempt(
            "flash_gate", lambda: self._shared.sold_out(sale_id=sale_id), lambda: self._local.sold_out(sale_id=sale_id)
        )

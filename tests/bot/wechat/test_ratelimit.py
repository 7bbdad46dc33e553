"""Per-user rate limiting: the limiters (memory with a fake clock, Redis shared) and the real app."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bot.wechat.protocol import Inbound
from bot.wechat.ratelimit import MemoryRateLimiter, RedisRateLimiter, Verdict, is_counted
from tests.bot.conftest import ShopFactory
from tests.bot.driver import Shop

A, W, S = Verdict.ALLOW, Verdict.WARN, Verdict.SILENCE


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- memory limiter


async def hits(limiter: MemoryRateLimiter | RedisRateLimiter, key: str, n: int) -> list[Verdict]:
    return [await limiter.hit(key) for _ in range(n)]


async def test_memory_limiter_allows_the_limit_then_warns_once_then_is_silent() -> None:
    limiter = MemoryRateLimiter(limit=3, clock=FakeClock())
    assert await hits(limiter, "u1", 6) == [A, A, A, W, S, S]


async def test_memory_limiter_counts_each_user_apart() -> None:
    limiter = MemoryRateLimiter(limit=2, clock=FakeClock())
    assert await hits(limiter, "u1", 3) == [A, A, W]
    assert await hits(limiter, "u2", 2) == [A, A]


async def test_memory_limiter_window_slides() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(limit=2, window=60, clock=clock)
    assert await limiter.hit("u") is A  # t=1000
    clock.now += 30
    assert await limiter.hit("u") is A  # t=1030
    assert await hits(limiter, "u", 2) == [W, S]
    clock.now = 1059.9
    assert await limiter.hit("u") is S  # the first message is still in the window
    clock.now = 1060.0
    assert await limiter.hit("u") is A  # it left: one slot
    assert await limiter.hit("u") is W  # a new window of refusals gets its own warning
    clock.now = 1090.0
    assert await limiter.hit("u") is A


async def test_memory_limiter_forgets_idle_users() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(limit=1, window=60, clock=clock)
    for n in range(100):
        await limiter.hit(f"user{n}")
    assert len(limiter) == 100
    clock.now += 61
    await limiter.hit("someone")
    assert len(limiter) == 1


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        MemoryRateLimiter(limit=0)


@pytest.mark.parametrize(
    ("kind", "event", "counted"),
    [
        ("text", None, True),
        ("image", None, True),
        ("event", "click", True),
        ("event", "unsubscribe", False),
        ("event", "subscribe", False),
        ("event", "templatesendjobfinish", False),
        ("event", "view", False),
    ],
)
def test_which_messages_count(kind: str, event: str | None, counted: bool) -> None:
    msg = Inbound(openid="o", account="gh", kind=kind, create_time=1, event=event)
    assert is_counted(msg) is counted


# --------------------------------------------------------------------------- Redis limiter


async def test_redis_limiter_is_shared_by_two_instances(redis_url: str) -> None:
    clock = FakeClock(6000.0)  # the start of a minute
    async with Redis.from_url(redis_url) as one_client, Redis.from_url(redis_url) as other_client:
        one = RedisRateLimiter(one_client, limit=3, clock=clock)
        other = RedisRateLimiter(other_client, limit=3, clock=clock)
        got = [await one.hit("u"), await other.hit("u"), await one.hit("u"), await other.hit("u"), await one.hit("u")]
        assert got == [A, A, A, W, S]
        assert await other.hit("someone else") is A
        clock.now += 60  # the next minute starts over
        assert await hits(one, "u", 4) == [A, A, A, W]
        ttl = await one_client.ttl(f"storefront:ratelimit:u:{int(clock.now // 60)}")
        assert 0 < ttl <= 65


# --------------------------------------------------------------------------- the real app


@pytest.fixture
async def limited_shop(make_shop: ShopFactory, sqlite_url: str) -> Shop:
    return await make_shop(sqlite_url, server={"messages_per_minute": 3}, scheduler={"enabled": False})


async def test_the_fourth_message_gets_one_polite_reply_then_silence(limited_shop: Shop) -> None:
    user = limited_shop.user("o_flooder")
    first_xml = user.xml("text", content="苹果")
    first = await user.send(first_xml)
    assert "烟台红富士苹果" in first.text
    assert (await user.say("帮助")).kind == "text"
    assert (await user.say("苹果")).kind == "text"
    fourth = await user.say("苹果")
    assert fourth.kind == "text" and "稍等一分钟" in fourth.text
    assert (await user.say("苹果")).kind == "none"
    assert (await user.say("苹果")).kind == "none"
    # a retry of an allowed message is not counted and gets its original reply
    retried = await user.send(first_xml)
    assert retried.text == first.text
    # another customer is not affected
    assert "烟台红富士苹果" in (await limited_shop.user("o_other").say("苹果")).text
    body = await (await limited_shop.client.get("/metrics")).text()
    assert 'storefront_rate_limited_messages_total{verdict="warn"} 1.0' in body
    assert 'storefront_rate_limited_messages_total{verdict="silence"} 2.0' in body


async def test_a_retry_of_the_refused_message_is_not_counted_again(limited_shop: Shop) -> None:
    user = limited_shop.user("o_flooder")
    for _ in range(3):
        await user.say("苹果")
    fourth_xml = user.xml("text", content="苹果")
    fourth = await user.send(fourth_xml)
    assert "稍等一分钟" in fourth.text
    assert (await user.send(fourth_xml)).text == fourth.text  # same answer, not silence


async def test_system_events_are_never_limited_nor_counted(limited_shop: Shop) -> None:
    user = limited_shop.user("o_flooder")
    for n in range(5):
        await user.event("TEMPLATESENDJOBFINISH", create_time=1_700_000_000 + n, Status="success")
    for _ in range(3):
        assert (await user.say("苹果")).kind == "text"
    assert "稍等一分钟" in (await user.say("苹果")).text
    # an unsubscribe of a limited customer is still processed (no polite reply, no refusal)
    assert (await user.event("unsubscribe")).kind == "none"
    body = await (await limited_shop.client.get("/metrics")).text()
    assert 'storefront_rate_limited_messages_total{verdict="silence"}' not in body


async def test_the_polite_reply_speaks_english_to_an_english_customer(limited_shop: Shop) -> None:
    user = limited_shop.user("o_english")
    await user.say("english")
    for _ in range(2):
        await user.say("help")
    reply = await user.say("help")
    assert "a little fast" in reply.text, reply.text


async def test_staff_have_their_own_limit_above_the_customers(make_shop: ShopFactory, sqlite_url: str) -> None:
    """Issue 15: staff shared the customers' 30 a minute; running the shop takes more."""
    shop = await make_shop(sqlite_url, staff={"owners": ["o_boss"]}, scheduler={"enabled": False})
    assert shop.config.server.messages_per_minute == 30  # the shipped default
    boss, customer = shop.user("o_boss"), shop.user("o_busy_customer")
    for n in range(40):
        reply = await boss.say("/help")
        assert reply.kind == "text" and "稍等一分钟" not in reply.text, n
    replies = [await customer.say("帮助") for _ in range(32)]
    assert not any("稍等一分钟" in r.text for r in replies[:30])
    assert "稍等一分钟" in replies[30].text and replies[31].kind == "none"  # told once, then silence


async def test_staff_limit_is_configured_apart(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(
        sqlite_url, staff={"owners": ["o_boss"]}, server={"messages_per_minute": 2, "staff_messages_per_minute": 3},
        scheduler={"enabled": False},
    )
    boss = shop.user("o_boss")
    assert [(await boss.say("/help")).kind for _ in range(3)] == ["text"] * 3
    assert "稍等一分钟" in (await boss.say("/help")).text
    # a stranger typing the same command is a customer: counted against the customers' limit
    stranger = shop.user("o_stranger")
    assert [(await stranger.say("/help")).kind for _ in range(2)] == ["text"] * 2
    assert "稍等一分钟" in (await stranger.say("/help")).text


async def test_zero_turns_the_limit_off(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, server={"messages_per_minute": 0}, scheduler={"enabled": False})
    user = shop.user()
    for _ in range(5):
        assert (await user.say("苹果")).kind == "text"


async def test_the_app_counts_in_redis_when_configured(make_shop: ShopFactory, sqlite_url: str, redis_url: str) -> None:
    shop = await make_shop(
        sqlite_url, server={"messages_per_minute": 2}, redis={"url": redis_url}, scheduler={"enabled": False}
    )
    user = shop.user("o_flooder")
    assert [(await user.say("苹果")).kind for _ in range(4)] == ["text", "text", "text", "none"]
    async with Redis.from_url(redis_url) as redis:
        keys = [k async for k in redis.scan_iter("storefront:ratelimit:o_flooder:*")]
    assert len(keys) == 1


# ---- the global outbound send-rate gate ----------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.25
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_send_gate_lets_n_a_second_through_and_makes_the_rest_wait() -> None:
    from bot.wechat.ratelimit import SendRateGate

    clock = _Clock()
    gate = SendRateGate(3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await gate.wait()
    assert clock.slept == []
    await gate.wait()  # the fourth in the same second waits for the next one
    assert clock.slept == [pytest.approx(0.75)] and int(clock.now) == 1001
    assert SendRateGate(0).per_second == 0
    await SendRateGate(0).wait()  # off


async def test_send_gate_is_shared_through_redis(redis_url: str) -> None:
    from redis.asyncio import Redis

    from bot.wechat.ratelimit import SendRateGate

    clock = _Clock()
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        a = SendRateGate(2, redis=first, clock=clock, sleep=clock.sleep)
        b = SendRateGate(2, redis=second, clock=clock, sleep=clock.sleep)
        await a.wait()
        await b.wait()
        assert clock.slept == []
        await a.wait()  # the third send of this second, whichever worker asks, waits
        assert len(clock.slept) == 1
    finally:
        await first.aclose()
        await second.aclose()


async def test_refused_messages_are_counted_as_rate_limited_not_replied(limited_shop: Shop) -> None:
    """The rate limit is the first step of the message chain: what it answers reaches the
    inbox as refused, and the requests metric says so."""
    user = limited_shop.user("o_flooder")
    for _ in range(5):
        await user.say("苹果")
    body = await (await limited_shop.client.get("/metrics")).text()
    assert 'storefront_requests_total{kind="text",outcome="replied"} 3.0' in body
    assert 'storefront_requests_total{kind="text",outcome="rate_limited"} 2.0' in body

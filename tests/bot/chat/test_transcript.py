"""The recent-conversation record: both stores keep the same bounded, expiring lines, and
a turn leaves only tidy lines (no links, no staff commands, one short line each)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.chat.render import Rendered, RenderedArticle
from bot.chat.transcript import (
    KEEP_SECONDS,
    MAX_CHARS,
    MAX_LINES,
    Line,
    MemoryTranscriptStore,
    RedisTranscriptStore,
    Transcripts,
    TranscriptStore,
    one_line,
    tidy,
    turn_lines,
)
from bot.wechat.protocol import Inbound

NOW = 1_800_000_000.0
TOKEN = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEy"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


StoreFactory = Callable[..., TranscriptStore]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Builds the store under test (`max_lines`, `clock`); the Redis one on a real Redis."""
    if request.param == "memory":
        yield lambda **options: MemoryTranscriptStore(**options)
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    yield lambda **options: RedisTranscriptStore(redis, **options)
    await redis.aclose()


def _line(text: str, *, at: float = NOW, speaker: str = "customer") -> Line:
    return Line(at, "customer" if speaker == "customer" else "shop", text)


def _msg(kind: str = "text", text: str = "", **extra: Any) -> Inbound:
    return Inbound(openid="o_transcript_1", account="gh_x", kind=kind, create_time=int(NOW), text=text, **extra)


# ---- the stores ----------------------------------------------------------------------------


async def test_lines_come_back_oldest_first_per_customer(make_store: StoreFactory) -> None:
    store = make_store(clock=Clock())
    await store.append("o1", [_line("苹果"), _line("找到 3 件", speaker="shop")])
    await store.append("o2", [_line("香蕉")])
    await store.append("o1", [_line("1"), _line("[图文] 红富士", speaker="shop")])
    assert [(line.speaker, line.text) for line in await store.recent("o1")] == [
        ("customer", "苹果"), ("shop", "找到 3 件"), ("customer", "1"), ("shop", "[图文] 红富士"),
    ]
    assert [line.text for line in await store.recent("o2")] == ["香蕉"]
    assert await store.recent("o3") == []


async def test_only_the_last_lines_are_kept(make_store: StoreFactory) -> None:
    store = make_store(clock=Clock())
    for turn in range(MAX_LINES):  # two lines a turn: twice the bound
        await store.append("o1", [_line(f"q{turn}"), _line(f"a{turn}", speaker="shop")])
    kept = await store.recent("o1")
    assert len(kept) == MAX_LINES
    assert kept[0].text == f"q{MAX_LINES // 2}" and kept[-1].text == f"a{MAX_LINES - 1}"


async def test_a_line_is_kept_for_two_days_only(make_store: StoreFactory) -> None:
    clock = Clock()
    store = make_store(clock=clock)
    await store.append("o1", [_line("old", at=NOW - KEEP_SECONDS - 1), _line("new", at=NOW - 60)])
    assert [line.text for line in await store.recent("o1")] == ["new"]
    clock.now = NOW + KEEP_SECONDS
    assert await store.recent("o1") == []


async def test_redis_keeps_one_list_per_customer_that_expires(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        store = RedisTranscriptStore(redis, max_lines=3)
        await store.append("o1", [_line("a"), _line("b"), _line("c"), _line("d")])
        key = "storefront:transcript:o1"
        assert await redis.llen(key) == 3
        assert 0 < await redis.ttl(key) <= KEEP_SECONDS
        await redis.lpush(key, b"{not a line")
        assert [line.text for line in await store.recent("o1")] == ["c", "d"]  # unreadable: dropped, bound kept
    finally:
        await redis.aclose()


async def test_memory_forgets_the_customer_heard_from_longest_ago() -> None:
    store = MemoryTranscriptStore(max_customers=2, clock=Clock())
    await store.append("o1", [_line("one")])
    await store.append("o2", [_line("two")])
    await store.append("o1", [_line("one again")])
    await store.append("o3", [_line("three")])
    assert len(store) == 2
    assert await store.recent("o2") == []
    assert [line.text for line in await store.recent("o1")] == ["one", "one again"]


def test_a_line_reads_back_and_a_broken_one_is_none() -> None:
    line = _line("你好 \"quoted\"", speaker="shop")
    assert Line.loads(line.dumps()) == line
    assert line.record() == {"at": "2027-01-15T08:00:00+00:00", "from": "shop", "text": '你好 "quoted"'}
    for broken in ("", "[1, 2]", '["x", "shop", "t"]', '[1, "staff", "t"]', "{}"):
        assert Line.loads(broken) is None, broken


# ---- what a turn leaves -------------------------------------------------------------------


def test_a_line_is_one_short_line_without_links_or_phone_numbers() -> None:
    reply = f"请付款：https://shop.example.com/pay/{TOKEN}\n\n邀请链接 https://shop.example.com/r/AB12 。"
    tidied = tidy(reply)
    assert TOKEN not in tidied and "http" not in tidied
    assert one_line(tidied) == "请付款：[支付链接] / 邀请链接 [链接] 。"
    assert tidy(f"付不了 /pay/{TOKEN} 怎么办") == "付不了 [支付链接] 怎么办"
    assert tidy("张三 13800138000 上海，订单 202612041380013800") == "张三 138****8000 上海，订单 202612041380013800"
    for typed in ("138 0013 8000", "+86 138-0013-8000", "+8613800138000", "电话13800138000"):
        assert "0013" not in tidy(typed) and "138****8000" in tidy(typed), typed
    cut = tidy("很" * (MAX_CHARS - 10) + f" https://shop.example.com/pay/{TOKEN}")
    assert TOKEN[:8] not in cut  # a link cut in two is still a link
    long = tidy("很" * (MAX_CHARS * 2))
    assert len(long) == MAX_CHARS and long.endswith("…")


def test_a_turn_is_the_customers_words_then_the_shops_reply() -> None:
    lines = turn_lines(_msg(text="苹果"), Rendered("text", text="找到 3 件「苹果」"), at=NOW)
    assert [(line.at, line.speaker, line.text) for line in lines] == [
        (NOW, "customer", "苹果"), (NOW, "shop", "找到 3 件「苹果」"),
    ]


@pytest.mark.parametrize(
    ("msg", "said"),
    [
        (_msg("image"), "[图片]"),
        (_msg("voice", text="我要苹果"), "[语音: 我要苹果]"),
        (_msg("voice"), "[语音]"),
        (_msg("location", fields={"Label": "世纪大道"}), "[位置: 世纪大道]"),
        (_msg("event", event="click", event_key="MENU_CART"), "[菜单: MENU_CART]"),
        (_msg("event", event="subscribe"), "[关注]"),
    ],
)
def test_what_is_not_words_is_a_marker(msg: Inbound, said: str) -> None:
    (customer, _shop) = turn_lines(msg, Rendered("text", text="好的"), at=NOW)
    assert customer.text == said


def test_a_card_is_kept_by_its_titles_and_silence_not_at_all() -> None:
    card = RenderedArticle(title="订单待支付 ¥25.40", description="订单号 1", picurl="", url=f"https://x/pay/{TOKEN}")
    (_said, shop) = turn_lines(_msg(text="确认"), Rendered("news", articles=(card,)), at=NOW)
    assert shop.text == "[图文] 订单待支付 ¥25.40"
    assert [line.speaker for line in turn_lines(_msg("event", event="view"), Rendered("silence"), at=NOW)] == []
    assert [line.speaker for line in turn_lines(_msg(text="在吗"), Rendered("silence"), at=NOW)] == ["customer"]


@pytest.mark.parametrize("command", ["/stats", "／订单", "  /order 123"])
def test_a_staff_command_is_not_recorded(command: str) -> None:
    assert turn_lines(_msg(text=command), Rendered("text", text="今日订单 5"), at=NOW) == ()


# ---- a failing store ------------------------------------------------------------------------


class BrokenStore:
    async def append(self, openid: str, lines: object) -> None:
        raise ConnectionError(f"cannot reach the store for {openid}")

    async def recent(self, openid: str) -> list[Line]:
        raise ConnectionError(f"cannot reach the store for {openid}")


async def test_a_failing_store_is_logged_without_the_openid_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    transcripts = Transcripts(BrokenStore())
    with caplog.at_level(logging.WARNING, logger="bot.chat.transcript"):
        await transcripts.record_turn(_msg(text="苹果"), Rendered("text", text="找到 3 件"))
        assert await transcripts.recent("o_transcript_1") == []
    assert [r.getMessage() for r in caplog.records] == ["transcript not recorded", "transcript not read"]
    for record in caplog.records:
        assert "o_transcript_1" not in str(record.__dict__)

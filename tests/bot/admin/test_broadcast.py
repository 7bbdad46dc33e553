"""Broadcast through the real app: restated with the 48-hour audience, confirmed, sent in
the background, throttled, and the owner told how many it reached."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.admin.broadcast import Broadcaster
from bot.chat.render import Rendered, Renderer
from bot.keys import SERVICES
from bot.outbound.sender import MemoryOutbox
from commerce.customers.models import Customer
from tests.bot.admin.test_orders import (
    OPERATOR,
    OWNER,
    STRANGER,
    audit_rows,
    expire_confirmation,
    open_staffed_shop,
    texts,
)
from tests.bot.driver import Shop, db

FANS = ("o_fan_000001", "o_fan_000002", "o_fan_000003")
LAPSED = "o_lapsed_0001"
MESSAGE = "新品上架！\n全场 8 折，仅限今天"


@pytest.fixture
async def staffed(db_url: str, unused_tcp_port: int, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> Shop:
    return await open_staffed_shop(db_url, unused_tcp_port, aiohttp_client)


async def _audience(shop: Shop) -> None:
    """Three customers who wrote just now, one whose 48 hours ran out."""
    for openid in (*FANS, LAPSED):
        await shop.user(openid).say("你好")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(
            update(Customer).where(Customer.openid == LAPSED)
            .values(last_message_at=datetime.now(UTC) - timedelta(days=3))
        )


async def test_broadcast_reaches_the_48_hour_window_after_confirmation(staffed: Shop) -> None:
    await _audience(staffed)
    owner = staffed.user(OWNER)
    reachable = len(FANS) + 1  # the owner wrote too: staff see what customers see

    ask = await owner.say(f"/群发 {MESSAGE}")
    assert f"将群发以下内容给 {reachable} 位顾客" in ask.text and MESSAGE in ask.text and "确认码" in ask.text
    assert all(texts(staffed, fan) == [] for fan in FANS)

    started = await owner.say("确认")
    assert f"正在群发给 {reachable} 位顾客" in started.text
    await staffed.client.app[SERVICES].broadcasts.drain()
    for fan in FANS:
        assert texts(staffed, fan) == [MESSAGE]  # line breaks and all
    assert texts(staffed, LAPSED) == []
    assert texts(staffed, OWNER)[-1] == f"群发完成：已送达 {reachable}/{reachable} 位顾客。"

    (entry,) = await audit_rows(staffed, "broadcast")
    assert (entry.actor, entry.outcome, entry.args) == (OWNER, "ok", [MESSAGE])
    assert entry.after == {"recipients": reachable, "chars": len(MESSAGE)}


async def test_broadcast_is_for_owners_and_can_be_called_off(staffed: Shop) -> None:
    await _audience(staffed)
    owner = staffed.user(OWNER)
    assert "不能使用 /broadcast" in (await staffed.user(OPERATOR).say(f"/broadcast {MESSAGE}")).text
    stranger = await staffed.user(STRANGER).say("/broadcast 中奖了")
    assert "确认码" not in stranger.text and "群发" not in stranger.text

    await owner.say("/broadcast 今晚八点直播")
    assert "已取消，/broadcast 没有执行" in (await owner.say("不发了")).text
    await owner.say("/broadcast 今晚八点直播")
    await expire_confirmation(staffed, OWNER)
    assert "确认已超时" in (await owner.say("确认")).text
    assert "参数不对" in (await owner.say("/broadcast")).text
    assert "参数不对" in (await owner.say("/broadcast " + "长" * 601)).text

    await staffed.client.app[SERVICES].broadcasts.drain()
    assert all(texts(staffed, fan) == [] for fan in FANS)
    outcomes = [(e.actor, e.outcome) for e in await audit_rows(staffed, "broadcast")]
    assert outcomes == [(OPERATOR, "refused"), (STRANGER, "refused"), (OWNER, "cancelled"), (OWNER, "expired")]


async def test_nobody_in_the_window_means_nothing_to_confirm(staffed: Shop) -> None:
    async with db(staffed.client.app)() as session, session.begin():
        await session.execute(update(Customer).values(subscribed=False))
    reply = await staffed.user(OWNER).say("/broadcast 有人吗")
    assert "没有可以接收群发的顾客" in reply.text and "确认码" not in reply.text
    (entry,) = await audit_rows(staffed, "broadcast")
    assert entry.outcome == "failed" and entry.after == {"recipients": 0}


class _FlakyOutbox(MemoryOutbox):
    def __init__(self, events: list[str], broken: str) -> None:
        super().__init__()
        self.events, self.broken = events, broken

    async def send(self, openid: str, message: Rendered) -> None:
        self.events.append(f"send {openid}")
        if openid == self.broken:
            raise ConnectionError("45015: the user's window has closed")
        await super().send(openid, message)


async def test_sending_is_throttled_and_failures_are_counted() -> None:
    events: list[str] = []

    async def sleep(seconds: float) -> None:
        assert 0.0 <= seconds <= 1.0
        events.append("sleep")

    outbox = _FlakyOutbox(events, broken="o_c")
    renderer = Renderer(default_locale="zh", base_url="https://x", shop_name="店")
    broadcaster = Broadcaster(renderer=renderer, outbound=outbox, per_second=2, sleep=sleep)
    broadcaster.start(text="hello", recipients=["o_a", "o_b", "o_c", "o_d", "o_e"],
                      staff_openid="o_boss", staff_locale="en")
    await broadcaster.drain()

    assert events == ["send o_a", "send o_b", "sleep", "send o_c", "send o_d", "sleep", "send o_e", "send o_boss"]
    assert [m.text for m in outbox.for_user("o_a")] == ["hello"] and outbox.for_user("o_c") == []
    (done,) = outbox.for_user("o_boss")
    assert done.text.startswith("Broadcast done: it reached 4/5 customers.")

"""The inbox under trouble (issue 13): a turn postponed because the database stayed busy,
and a message that took long to write down."""

from __future__ import annotations

import asyncio
import time

from bot.chat.render import Rendered
from bot.outbound.sender import MemoryOutbox
from bot.wechat.inbox import Inbox, MemoryReplyStore, Postponed, Refused
from bot.wechat.protocol import Inbound

MSG = Inbound(openid="o_busy", account="gh", kind="text", create_time=1, msg_id="77", text="确认")
ERROR = Rendered("text", text="error")
KEPT = Rendered("text", text="kept")


async def _busy(msg: Inbound) -> Rendered | Refused:
    raise Postponed()


async def test_a_postponed_turn_is_handed_back_and_the_customer_told_once() -> None:
    outbox = MemoryOutbox()
    handed_back: list[tuple[str, Rendered]] = []

    async def postpone(key: str, notice: Rendered) -> bool:
        handed_back.append((key, notice))
        return True  # no delivery waits any more: the notice goes out as a message

    inbox = Inbox(_busy, lambda msg: ERROR, outbox, deadline=0.5, postpone=postpone, busy=lambda msg: KEPT)
    assert await inbox.handle(MSG) is None  # "success": the notice comes as a message
    await inbox.drain()
    assert handed_back == [(MSG.dedupe_key, KEPT)]
    assert outbox.for_user(MSG.openid) == [KEPT]


async def test_without_a_store_that_keeps_it_a_postponed_turn_gets_the_fallback() -> None:
    inbox = Inbox(_busy, lambda msg: ERROR, MemoryOutbox(), deadline=0.5)
    assert await inbox.handle(MSG) == ERROR  # nothing would run it again: "please resend"


class _SlowClaims(MemoryReplyStore):
    """Writing a message down takes `seconds` (a swamped database)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def claim(self, key: str, *, msg: Inbound | None = None) -> bool:
        await asyncio.sleep(self.seconds)
        return await super().claim(key, msg=msg)


async def test_time_spent_before_the_wait_comes_off_the_deadline() -> None:
    """WeChat's wait starts when the request comes: a message that took most of the deadline
    to write down is answered "success" at the deadline, and its reply goes out once, as a
    customer-service message (counted from the wait alone, it was answered passively after
    WeChat had stopped listening, and never sent)."""
    answer = Rendered("text", text="香蕉 ¥12.90")

    async def slow_turn(msg: Inbound) -> Rendered | Refused:
        await asyncio.sleep(0.3)
        return answer

    outbox = MemoryOutbox()
    inbox = Inbox(slow_turn, lambda msg: ERROR, outbox, deadline=0.5, replies=_SlowClaims(0.4))
    arrived = time.perf_counter()
    assert await inbox.handle(MSG, arrived=arrived) is None  # 0.4 s to write down + 0.3 s turn > 0.5 s
    assert await outbox.wait_for(MSG.openid) == [answer]
    await inbox.drain()
    assert outbox.for_user(MSG.openid) == [answer]

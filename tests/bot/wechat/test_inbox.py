"""The inbox's handling of a turn postponed because the database stayed busy (issue 13)."""

from __future__ import annotations

from bot.chat.render import Rendered
from bot.outbound.sender import MemoryOutbox
from bot.wechat.inbox import Inbox, Postponed, Refused
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

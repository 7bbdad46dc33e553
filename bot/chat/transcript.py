"""The recent conversation with each customer, for the staff member they are handed to.

When a customer asks for a person ("人工", a complaint), staff should not have to ask
them to repeat themselves: the hand-off (`commerce.customers.handoffs`) stores the last
lines of the chat, and the staff alert shows them. So every turn leaves at most two
short lines here: what the customer said, and what the shop answered.

It is a bounded, expiring record, not a history: the last `MAX_LINES` lines, each cut
to `MAX_CHARS`, none older than `KEEP_SECONDS`. It lives beside the dialog state (in
process, or one Redis list per customer), never in the database: a database write per
message would cost the webhook its throughput. Links are replaced by markers (a pay
link carries a sealed token) and mobile numbers are masked: the lines go out to staff
in WeChat messages. Staff commands are not recorded.

Recording is best effort: a store that fails costs the transcript, never the reply
(`Transcripts` logs the failure, without the openid, and carries on).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

from redis.asyncio import Redis

from bot.admin.registry import PREFIXES
from bot.chat.render import Rendered, clip
from bot.wechat.protocol import Inbound
from commerce.customers.addresses import mask_phone

log = logging.getLogger(__name__)

MAX_LINES = 20
MAX_CHARS = 300
KEEP_SECONDS = 48 * 3600
MAX_CUSTOMERS = 5_000  # in process: at worst ~14 KB a customer, the least recently heard go first

Speaker = Literal["customer", "shop"]
SPEAKERS: frozenset[str] = frozenset({"customer", "shop"})
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the conversation: when (unix seconds), who spoke, and what (tidied)."""

    at: float
    speaker: Speaker
    text: str

    def record(self) -> dict[str, str]:
        """The line as a hand-off stores it: {at (ISO 8601, UTC), from, text}."""
        when = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds")
        return {"at": when, "from": self.speaker, "text": self.text}

    def dumps(self) -> str:
        return json.dumps([self.at, self.speaker, self.text], ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> Line | None:
        """A stored line, or None for one that cannot be read (dropped, never a crash)."""
        try:
            at, speaker, text = json.loads(raw)
        except (TypeError, ValueError):
            return None
        if not isinstance(at, int | float) or speaker not in SPEAKERS or not isinstance(text, str):
            return None
        return cls(float(at), "customer" if speaker == "customer" else "shop", text)


# ---- what a turn leaves in the transcript -------------------------------------------------

# what the customer sent, when it is not words: a marker staff can read
_MARKERS = {
    "image": "[图片]",
    "video": "[视频]",
    "shortvideo": "[视频]",
    "file": "[文件]",
    "miniprogrampage": "[小程序]",
}
_EVENT_MARKERS = {
    "subscribe": "[关注]",
    "scan": "[扫码]",
    "scancode_push": "[扫码]",
    "scancode_waitmsg": "[扫码]",
}
_URL = re.compile(r"https?://[^\s<>\"'，。、）)】]+|/(?:pay|export)/[A-Za-z0-9_\-]+")
# a mobile number as typed ("13800138000", "138 0013 8000", "+86 138-0013-8000"): found by
# its literal "1" (a fast scan), then kept as it is when it is part of a longer run of
# digits (an order number is not a phone number)
_MOBILE = re.compile(r"1[3-9][0-9](?:[ -]?[0-9]{4}){2}")
_COUNTRY = re.compile(r"\+?86[ -]?$")


def _link_marker(found: re.Match[str]) -> str:
    return "[支付链接]" if "/pay/" in found.group(0) else "[链接]"


def _masked(found: re.Match[str]) -> str:
    text, start, end = found.string, found.start(), found.end()
    before = _COUNTRY.sub("", text[max(0, start - 4) : start])
    if (before and before[-1].isdigit()) or (end < len(text) and text[end].isdigit()):
        return found.group(0)
    return mask_phone(re.sub(r"[ -]", "", found.group(0)))


def tidy(text: str) -> str:
    """A line fit to keep: no links (a pay link carries a sealed token), mobile numbers
    masked, at most `MAX_CHARS`. It runs on every turn, so it stays cheap: the text is cut
    before it is searched (a link cut in two is still a link), links are looked for only
    where a "/" is, and the layout waits for `one_line`, when a hand-off reads the lines."""
    text = text[: MAX_CHARS + 16]
    if "/" in text:
        text = _URL.sub(_link_marker, text)
    return clip(_MOBILE.sub(_masked, text), MAX_CHARS)


def one_line(text: str) -> str:
    """A kept line as staff read it: one line, "/" where its lines broke, single spaces."""
    lines = (line.split() for line in text.splitlines())
    return " / ".join(" ".join(words) for words in lines if words)


def is_staff_command(msg: Inbound) -> bool:
    return msg.kind == "text" and msg.text.lstrip().startswith(PREFIXES)


def said(msg: Inbound) -> str | None:
    """What the customer said, as words or a marker; None for events nobody said."""
    if msg.kind == "text":
        return msg.text
    if msg.kind == "voice":
        return f"[语音: {msg.text}]" if msg.text else "[语音]"
    if msg.kind == "location":
        return f"[位置: {msg.fields.get('Label') or ''}]"
    if msg.kind == "link":
        return f"[链接: {msg.fields.get('Title') or ''}]"
    if msg.kind == "event":
        if msg.event == "click":
            return f"[菜单: {msg.event_key}]"
        return _EVENT_MARKERS.get(msg.event or "")
    return _MARKERS.get(msg.kind, f"[{msg.kind}]")


def answered(rendered: Rendered) -> str | None:
    """What the shop answered, in words: a card by its titles; nothing for silence."""
    if rendered.kind == "text":
        return rendered.text
    if rendered.kind == "news":
        return "[图文] " + " / ".join(article.title for article in rendered.articles)
    if rendered.kind == "transfer":
        return "[转人工客服]"
    return None


def turn_lines(msg: Inbound, rendered: Rendered, *, at: float) -> tuple[Line, ...]:
    """The lines one turn adds: the customer's, then the shop's; none for a staff command."""
    if is_staff_command(msg):
        return ()
    spoken: tuple[tuple[Speaker, str | None], ...] = (("customer", said(msg)), ("shop", answered(rendered)))
    return tuple(Line(at, speaker, tidy(text)) for speaker, text in spoken if text and text.strip())


# ---- where the lines are kept -------------------------------------------------------------


class TranscriptStore(Protocol):
    async def append(self, openid: str, lines: Sequence[Line]) -> None:
        """Add `lines` (oldest first) to the customer's transcript, dropping the oldest past the bound."""
        ...

    async def recent(self, openid: str) -> list[Line]:
        """The customer's kept lines, oldest first."""
        ...


class MemoryTranscriptStore:
    """In process, for the single-process default: at most `max_customers` transcripts,
    the customer heard from longest ago forgotten first."""

    def __init__(
        self,
        *,
        max_lines: int = MAX_LINES,
        keep_seconds: float = KEEP_SECONDS,
        max_customers: int = MAX_CUSTOMERS,
        clock: Clock = time.time,
    ) -> None:
        self._lines: OrderedDict[str, deque[Line]] = OrderedDict()
        self._max_lines = max_lines
        self._keep_seconds = keep_seconds
        self._max_customers = max_customers
        self._clock = clock

    async def append(self, openid: str, lines: Sequence[Line]) -> None:
        kept = self._lines.get(openid)
        if kept is None:
            kept = self._lines[openid] = deque(maxlen=self._max_lines)
        else:
            self._lines.move_to_end(openid)
        kept.extend(lines)
        while len(self._lines) > self._max_customers:
            self._lines.popitem(last=False)

    async def recent(self, openid: str) -> list[Line]:
        return _fresh(self._lines.get(openid, ()), since=self._clock() - self._keep_seconds)

    def __len__(self) -> int:
        return len(self._lines)


class RedisTranscriptStore:
    """Shared by many workers: one list per customer, newest first, trimmed and given its
    expiry in the same transaction that adds to it (one round trip a turn)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "storefront:transcript:",
        max_lines: int = MAX_LINES,
        keep_seconds: int = KEEP_SECONDS,
        clock: Clock = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._max_lines = max_lines
        self._keep_seconds = keep_seconds
        self._clock = clock

    async def append(self, openid: str, lines: Sequence[Line]) -> None:
        if not lines:
            return
        key = self._prefix + openid
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, *(line.dumps() for line in lines))  # the last pushed is the newest
            pipe.ltrim(key, 0, self._max_lines - 1)
            pipe.expire(key, self._keep_seconds)
            await pipe.execute()

    async def recent(self, openid: str) -> list[Line]:
        raw = await self._redis.lrange(self._prefix + openid, 0, self._max_lines - 1)
        lines = (Line.loads(item) for item in reversed(raw))
        return _fresh((line for line in lines if line is not None), since=self._clock() - self._keep_seconds)


def _fresh(lines: Iterable[Line], *, since: float) -> list[Line]:
    """The lines said after `since`: each line is kept `KEEP_SECONDS`, not the whole list."""
    return [line for line in lines if line.at > since]


# ---- the part the bot calls ----------------------------------------------------------------


class Transcripts:
    """Records each turn and reads the lines back for a hand-off; never fails the caller."""

    def __init__(self, store: TranscriptStore, *, clock: Clock = time.time) -> None:
        self.store = store
        self._clock = clock

    async def record_turn(self, msg: Inbound, rendered: Rendered) -> None:
        """Keep what the customer said and what the shop answered (not a staff command)."""
        lines = turn_lines(msg, rendered, at=self._clock())
        if not lines:
            return
        try:
            await self.store.append(msg.openid, lines)
        except Exception as exc:  # the reply matters more than its record
            log.warning("transcript not recorded", extra={"error": type(exc).__name__})

    async def recent(self, openid: str) -> list[Line]:
        """The customer's recent lines, oldest first, each on one line; none when the store
        cannot be read."""
        try:
            lines = await self.store.recent(openid)
        except Exception as exc:
            log.warning("transcript not read", extra={"error": type(exc).__name__})
            return []
        return [replace(line, text=one_line(line.text)) for line in lines]

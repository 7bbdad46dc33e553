"""What a handler answers: a reply names a template and passes plain view data.

Handlers never build text themselves; `bot.chat.render` turns these into words in the
customer's language and then into WeChat XML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Notice:
    """A one-line remark above a text reply (e.g. "your last list expired")."""

    template: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Text:
    """A text reply rendered from `templates/messages/<locale>/<template>.j2`."""

    template: str
    data: dict[str, Any] = field(default_factory=dict)
    notices: tuple[Notice, ...] = ()  # rendered as lines above the body


@dataclass(frozen=True, slots=True)
class Card:
    """One news article: the template defines blocks `title` and `description`."""

    template: str
    data: dict[str, Any] = field(default_factory=dict)
    picurl: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class News:
    cards: tuple[Card, ...]


@dataclass(frozen=True, slots=True)
class TransferToHuman:
    """Hand the conversation to WeChat's customer-service staff."""


@dataclass(frozen=True, slots=True)
class Silence:
    """Nothing to say (WeChat gets "success")."""


Reply = Text | News | TransferToHuman | Silence


def with_notice(reply: Reply, notice: Notice) -> Reply:
    """Put a notice above a text reply; other kinds (a news card) are unchanged."""
    if isinstance(reply, Text):
        return Text(reply.template, reply.data, (notice, *reply.notices))
    return reply

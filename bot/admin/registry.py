"""The command registry: names in zh and en, who may run what, and how a command runs.

A command handler gets an `AdminContext` and returns an `Outcome`: a reply plus what
the audit log should remember (arguments, before, after). A command marked
`confirm=True` runs twice: first with `confirmed=False` it must only check its
arguments and restate the action (`Outcome.confirm_first`), then, after the staff
member confirms, with `confirmed=True` it acts.
"""

from __future__ import annotations

import shlex
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.chat.context import Context
from bot.chat.replies import Reply, Text
from commerce.staff.models import StaffRole

if TYPE_CHECKING:
    from bot.services import Services

ALL_ROLES = frozenset(StaffRole)
MANAGERS = frozenset({StaffRole.OWNER, StaffRole.OPERATOR})
OWNERS = frozenset({StaffRole.OWNER})
PREFIXES = ("/", "／")


class UsageError(Exception):
    """The arguments do not fit the command: the caller gets the usage line."""


@dataclass(slots=True)
class AdminContext:
    ctx: Context
    role: StaffRole
    command: Command
    args: list[str]
    confirmed: bool = False

    @property
    def actor(self) -> str:
        return self.ctx.openid

    @property
    def services(self) -> Services:
        return self.ctx.services

    def arg(self, index: int) -> str:
        try:
            return self.args[index]
        except IndexError:
            raise UsageError from None

    def rest(self, start: int) -> str:
        """The arguments from `start` on, joined again (free text such as a reason)."""
        if len(self.args) <= start:
            raise UsageError
        return " ".join(self.args[start:])


@dataclass(slots=True)
class Outcome:
    reply: Reply
    before: Any = None
    after: Any = None
    outcome: str = "ok"
    confirm_first: bool = False  # the reply restates the action; wait for a confirmation


Handler = Callable[[AdminContext], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # the English name, also the key of its usage line in admin_usage.j2
    aliases: tuple[str, ...]
    roles: frozenset[StaffRole]
    handler: Handler
    group: str
    confirm: bool = False


@dataclass
class Registry:
    commands: dict[str, Command] = field(default_factory=dict)
    _by_word: dict[str, Command] = field(default_factory=dict)

    def command(
        self, name: str, *aliases: str, roles: Iterable[StaffRole] = MANAGERS, group: str, confirm: bool = False
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            command = Command(name, aliases, frozenset(roles), handler, group, confirm)
            for word in (name, *aliases):
                if word.lower() in self._by_word:
                    raise ValueError(f"admin command {word!r} registered twice")
                self._by_word[word.lower()] = command
            self.commands[name] = command
            return handler

        return register

    def find(self, word: str) -> Command | None:
        return self._by_word.get(word.lower())

    def for_role(self, role: StaffRole) -> list[Command]:
        return [c for c in self.commands.values() if role in c.roles]


_BESIDE_A_NUMBER = frozenset("¥元")


def fold_width(word: str) -> str:
    """A number a Chinese keyboard typed in full width ("３５．８", "＋10", "＃3", "ＳＦ2026…")
    as the ASCII the argument parsers read. Words without a digit and words with any other
    non-ASCII character (Chinese words, free text) are kept as typed."""
    folded = unicodedata.normalize("NFKC", word)  # "３" -> "3", "＋" -> "+", "＃" -> "#", "￥" -> "¥"
    if any(c.isdigit() for c in folded) and all(c.isascii() or c in _BESIDE_A_NUMBER for c in folded):
        return folded
    return word


def split_command(text: str) -> tuple[str, list[str]] | None:
    """("price", ["12", "39.9"]) from "/price 12 39.9"; None when it is not a command. An
    ideographic space separates words as a space does; full-width words are folded
    (`fold_width`)."""
    text = text.strip()
    if not text.startswith(PREFIXES) or len(text) < 2 or len(text) > 60_000:
        return None
    body = text[1:].replace("“", '"').replace("”", '"').replace("\u3000", " ")
    try:
        words = shlex.split(body)
    except ValueError:
        words = body.split()
    if not words:
        return None
    return words[0], [fold_width(word) for word in words[1:]]


def usage(command: Command) -> Text:
    return Text("admin/usage", {"commands": [command.name], "wrong": True})


REGISTRY = Registry()

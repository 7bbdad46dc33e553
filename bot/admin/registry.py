"""The command registry: names in zh and en, who may run what, and how a command runs.

A command handler gets an `AdminContext` and returns an `Outcome`: a reply plus what
the audit log should remember (arguments, before, after). A command marked
`confirm=True` runs twice: first with `confirmed=False` it must only check its
arguments and restate the action (`Outcome.confirm_first`), then, after the staff
member confirms, with `confirmed=True` it acts.

A Chinese keyboard puts `，` or `、` between values as readily as a space
(`/price 阳光玫瑰，36`). Each command says how many of its leading arguments are such short
values (`commas`: an id, a price, a carrier); those may be separated by `，`/`、`, and the
rest of its arguments are free text kept as typed (a reason, a description, a message).
"""

from __future__ import annotations

import re
import shlex
import sys
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
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
ALL_ARGS = sys.maxsize  # `commas=ALL_ARGS`: every argument is a short value


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
    commas: int = 0  # how many leading arguments `，`/`、` may separate (`split_commas`)

    def arguments(self, args: Sequence[str]) -> list[str]:
        """The arguments as this command reads them: `，`/`、` between its short values."""
        return split_commas(args, leading=self.commas) if self.commas else list(args)


@dataclass
class Registry:
    commands: dict[str, Command] = field(default_factory=dict)
    _by_word: dict[str, Command] = field(default_factory=dict)

    def command(
        self,
        name: str,
        *aliases: str,
        roles: Iterable[StaffRole] = MANAGERS,
        group: str,
        confirm: bool = False,
        commas: int = 0,
    ) -> Callable[[Handler], Handler]:
        """Register a handler. `commas`: how many leading arguments are short values that
        `，`/`、` may separate as a space does (`ALL_ARGS`: all); 0 for a command whose
        arguments are free text."""

        def register(handler: Handler) -> Handler:
            command = Command(name, aliases, frozenset(roles), handler, group, confirm, commas)
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
    non-ASCII character (Chinese words, free text) are kept as typed, and so are words with
    a Chinese comma ("12，+10": values `split_commas` separates and folds one by one)."""
    if "，" in word:
        return word
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


_COMMAS = re.compile("[，、]")
_COMMAS_AROUND = "，、 "


def split_commas(args: Sequence[str], *, leading: int) -> list[str]:
    """The first `leading` arguments with `，` and `、` separating them as a space does, each
    folded (`fold_width`); from the first word past them on, the arguments are kept as
    typed, commas and all (free text):

        split_commas(["SF2026…，圆通，YT888"], leading=ALL_ARGS) == ["SF2026…", "圆通", "YT888"]
        split_commas(["12，坏果，不退"], leading=1) == ["12", "坏果，不退"]
    """
    words: list[str] = []
    for index, arg in enumerate(args):
        room = leading - len(words)
        if room <= 0:
            return words + list(args[index:])
        parts = _COMMAS.split(arg.strip(_COMMAS_AROUND), maxsplit=room)
        words += [fold_width(part.strip()) for part in parts[:room] if part.strip()]
        if len(parts) > room:  # the free text begins inside this word
            rest = parts[room].lstrip(_COMMAS_AROUND)
            return words + ([rest] if rest else []) + list(args[index + 1:])
    return words


def usage(command: Command) -> Text:
    """The arguments did not fit: the command's whole usage (`full`: its every form)."""
    return Text("admin/usage", {"commands": [command.name], "wrong": True, "full": True})


REGISTRY = Registry()

"""The carriers a shop ships with, read from `carriers.toml` (data, not code).

Staff type a carrier the way they say it ("顺丰", "SF", "sf express"); `find` gives the
table's entry, and the order keeps its code ("SF"). A carrier the table does not know
still ships: the order keeps it as typed and customers see it without a link. Pure:
nothing here touches the database.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Carrier:
    code: str
    zh: str
    en: str
    url: str  # the tracking page, "{no}" standing for the tracking number

    def name(self, locale: str) -> str:
        return self.en if locale == "en" else self.zh

    def tracking_url(self, tracking_no: str) -> str:
        return self.url.replace("{no}", quote(tracking_no, safe=""))


def _key(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[Carrier, ...], dict[str, Carrier]]:
    raw = resources.files("commerce.orders").joinpath("carriers.toml").read_text(encoding="utf-8")
    carriers: list[Carrier] = []
    by_word: dict[str, Carrier] = {}
    for code, entry in tomllib.loads(raw).items():
        carrier = Carrier(code=code.upper(), zh=entry["zh"], en=entry["en"], url=entry["url"])
        carriers.append(carrier)
        for word in (code, carrier.zh, carrier.en, *entry.get("aliases", ())):
            by_word.setdefault(_key(word), carrier)
    return tuple(carriers), by_word


def all_carriers() -> tuple[Carrier, ...]:
    """The table, in its file's order (what a page or a usage text lists)."""
    return _table()[0]


def find(text: str) -> Carrier | None:
    """The carrier named by its code, its name in any locale or an alias, any case or width."""
    return _table()[1].get(_key(text or ""))


def stored(text: str) -> str:
    """What an order keeps of the carrier staff typed: its code when known, else the text."""
    carrier = find(text)
    return carrier.code if carrier is not None else text.strip()


def display(stored_text: str, tracking_no: str, locale: str = "zh") -> tuple[str, str]:
    """The carrier's name for customers and the link that follows the parcel ("" when unknown)."""
    carrier = find(stored_text)
    if carrier is None:
        return stored_text, ""
    return carrier.name(locale), carrier.tracking_url(tracking_no) if tracking_no else ""

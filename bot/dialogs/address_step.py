"""The address step: a delivery address typed in the chat, read, shown back, confirmed,
saved as the customer's default. Checkout and the group-buy dialog both embed it.

```mermaid
stateDiagram-v2
    [*] --> ASK: the host has no address ("ask_address")
    ASK --> ASK: unreadable (says what is missing)
    ASK --> CONFIRM: a typed "name phone address", read and shown back (phone masked)
    CONFIRM --> CONFIRM: another typed address (or an unreadable one)
    CONFIRM --> [*]: "确认" saves it as the default; the host goes on with it
```
The host names its own two states for ASK and CONFIRM (its data record keeps the
typed address in `pending_address` between them) and registers `on_typed` and
`on_confirm` as their handlers; `on_confirm` hands back the saved address, and the
host decides what comes next (checkout re-quotes, the group dialog takes the seat).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from bot.chat.context import Context
from bot.chat.keywords import match_keyword
from bot.chat.replies import Text
from bot.dialogs.base import Step
from bot.dialogs.common import error_reply, unit_of_work
from bot.dialogs.words import AddressChange
from commerce.customers import addresses
from commerce.customers.addresses import AddressView, ParsedAddress
from commerce.customers.regions import find_region
from commerce.errors import ShopError


class HoldsTypedAddress(Protocol):
    pending_address: dict[str, str] | None


St = TypeVar("St", bound=enum.StrEnum)
D = TypeVar("D", bound=HoldsTypedAddress)


def address_data(address: AddressView | ParsedAddress) -> dict[str, Any]:
    """An address as a message shows it: the phone number masked."""
    phone = address.phone
    return {"name": address.name, "phone": f"{phone[:3]}****{phone[-4:]}", "address": address.address}


_ADDRESS_SIGNS = re.compile(r"\d{5,}|[省市区县镇乡村路街巷弄号栋幢楼室]|单元|小区|大厦|\n")


def looks_like_address(text: str) -> bool:
    """Whether a message could be a typed delivery address (a phone-like number, a
    street or district word, several lines): "苹果" or "发什么快递" is not, and a host
    may let such a message go to search instead of saying what the address lacks."""
    return bool(_ADDRESS_SIGNS.search(unicodedata.normalize("NFKC", text)))


def read_typed_address(text: str) -> tuple[Text, dict[str, str] | None]:
    """A typed "name phone address": (the confirmation to show, what to save once the
    customer confirms), or (the reason it cannot be read, None)."""
    try:
        parsed = addresses.parse_address(text)
    except ShopError as exc:
        return error_reply(exc), None
    pending = dataclasses.asdict(parsed)
    return Text("address_parsed", address_data(parsed)), pending


def changed_line(base: dict[str, str], change: AddressChange) -> str:
    """The "name phone address" line after one detail said in words ("电话改成139…",
    "地址改成文三路2号", "收货人改成王芳") replaced that detail of `base` (name, phone,
    address): a whole "name phone address" said after "地址改成" replaces all three, and a
    street alone stays in the province, city and district it replaces."""
    try:
        typed = addresses.parse_address(change.value) if change.field == "address" else None
    except ShopError:
        typed = None  # not a whole "name phone address": the street part only
    if typed is not None:
        return " ".join((typed.name, typed.phone, typed.address))
    changed = {**base, change.field: change.value}
    if change.field == "address":
        changed["address"] = _within_region(base["address"], change.value)
    return " ".join((changed["name"], changed["phone"], changed["address"]))


def _within_region(before: str, street: str) -> str:
    """A street alone ("地址改成文三路2号") stays in the province, city and district of the
    address it replaces; an address naming its own region is taken as it is."""
    if find_region(street) is not None:
        return street
    region = find_region(before)
    return region.prefix + street if region is not None and region.typed else street


async def save_typed_address(ctx: Context, pending: dict[str, str]) -> AddressView:
    """Save a confirmed typed address as the customer's default."""
    async with unit_of_work(ctx) as session:
        return await addresses.save_address(
            session, customer_id=ctx.customer_id, parsed=ParsedAddress(**pending), make_default=True
        )


@dataclass(frozen=True, slots=True)
class AddressStep(Generic[St, D]):
    ask: St  # the host's state waiting for a typed address
    confirm: St  # the host's state showing it back, waiting for "确认"

    @property
    def states(self) -> frozenset[enum.StrEnum]:
        """The host's states in which it asks for this address (`Dialog.address_states`)."""
        return frozenset({self.ask, self.confirm})

    def start(self, data: D) -> Step[St, D]:
        """Ask for the address ("ask_address")."""
        return Step(Text("ask_address"), self.ask, data)

    def again(self, data: D, state: enum.StrEnum) -> Step[St, D]:
        """The step where it was left (a parked host taken back): the typed address shown
        back to confirm, else asked for."""
        if state == self.confirm and data.pending_address is not None:
            return Step(Text("address_parsed", address_data(ParsedAddress(**data.pending_address))), self.confirm, data)
        return self.start(data)

    def _read(self, ctx: Context, data: D, *, stay: St) -> Step[St, D]:
        reply, pending = read_typed_address(ctx.msg.text)
        if pending is None:
            return Step(reply, stay, data)
        data.pending_address = pending
        return Step(reply, self.confirm, data)

    def on_typed(self, ctx: Context, data: D) -> Step[St, D]:
        """ASK: read what was typed; shown back to confirm, or what is missing."""
        return self._read(ctx, data, stay=self.ask)

    async def on_confirm(self, ctx: Context, data: D) -> AddressView | Step[St, D]:
        """CONFIRM: "确认" saves the address as the default and returns it (`pending_address`
        is left for the host); anything else is read as another typed address."""
        keyword = match_keyword(ctx.msg.text)
        if keyword is None or keyword[0] != "confirm" or data.pending_address is None:
            return self._read(ctx, data, stay=self.confirm)
        return await save_typed_address(ctx, data.pending_address)

"""Typed, versioned QR scenes packed into WeChat's `scene_str` (at most 64 characters).

Modelled on aiogram's `CallbackData`: a frozen record per kind of scene, `pack()`
turns it into a short string with a length check, `parse()` reads one back.

Format: ``{version}.{kind}.{value}``, e.g. ``v1.p.123`` (product share),
``v1.r.AB12CD`` (referral invite), ``v1.g.XYZ789`` (group-buy invite).

- `pack()` of a record that cannot be valid raises `ValueError`: building one is a
  programming error (the records validate themselves on construction).
- `parse()` never raises: an unknown kind, another version, a bad value, extra
  parts or an over-long string all give None. Scenes come from QR codes anyone can
  print, so whatever arrives is untrusted input.

A new version (``v2``) gets its own kinds; old printed codes keep parsing as ``v1``
for as long as this module keeps reading them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

SCENE_STR_MAX = 64  # WeChat's limit for QR_STR_SCENE / QR_LIMIT_STR_SCENE
VERSION = "v1"
SEPARATOR = "."

PRODUCT_ID_MAX = 2**31 - 1  # products.id is an INTEGER column
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
CODE_MIN, CODE_MAX = 4, 16
_ID = re.compile(r"[1-9][0-9]{0,9}")
CODE_PATTERN = re.compile(rf"[A-Z0-9]{{{CODE_MIN},{CODE_MAX}}}")


def _check_id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= PRODUCT_ID_MAX:
        raise ValueError(f"{what} must be a positive integer")
    return value


def _check_code(value: object, what: str) -> str:
    if not isinstance(value, str) or not CODE_PATTERN.fullmatch(value):
        raise ValueError(f"{what} must be {CODE_MIN} to {CODE_MAX} characters of A-Z and 0-9")
    return value


@dataclass(frozen=True, slots=True)
class ProductShare:
    """Someone shared a product: the scan opens its card."""

    product_id: int
    kind: ClassVar[str] = "p"

    def __post_init__(self) -> None:
        _check_id(self.product_id, "product_id")

    def value(self) -> str:
        return str(self.product_id)

    @classmethod
    def from_value(cls, value: str) -> ProductShare | None:
        return cls(int(value)) if _ID.fullmatch(value) and int(value) <= PRODUCT_ID_MAX else None

    def pack(self) -> str:
        return _pack(self)


@dataclass(frozen=True, slots=True)
class ReferralInvite:
    """A user's personal referral QR: `code` is the referrer's referral code."""

    code: str
    kind: ClassVar[str] = "r"

    def __post_init__(self) -> None:
        _check_code(self.code, "code")

    def value(self) -> str:
        return self.code

    @classmethod
    def from_value(cls, value: str) -> ReferralInvite | None:
        return cls(value) if CODE_PATTERN.fullmatch(value) else None

    def pack(self) -> str:
        return _pack(self)


@dataclass(frozen=True, slots=True)
class GroupInvite:
    """An invitation to join a group buy: `group_code` names the group."""

    group_code: str
    kind: ClassVar[str] = "g"

    def __post_init__(self) -> None:
        _check_code(self.group_code, "group_code")

    def value(self) -> str:
        return self.group_code

    @classmethod
    def from_value(cls, value: str) -> GroupInvite | None:
        return cls(value) if CODE_PATTERN.fullmatch(value) else None

    def pack(self) -> str:
        return _pack(self)


Scene = ProductShare | ReferralInvite | GroupInvite
KINDS: dict[str, type[ProductShare] | type[ReferralInvite] | type[GroupInvite]] = {
    cls.kind: cls for cls in (ProductShare, ReferralInvite, GroupInvite)
}


def _pack(scene: Scene) -> str:
    packed = SEPARATOR.join((VERSION, scene.kind, scene.value()))
    if len(packed) > SCENE_STR_MAX:
        raise ValueError(f"scene_str is {len(packed)} characters, WeChat allows {SCENE_STR_MAX}")
    return packed


def pack(scene: Scene) -> str:
    return scene.pack()


def parse(scene_str: object) -> Scene | None:
    """The scene packed in `scene_str`, or None when it is not one of ours (never raises)."""
    if not isinstance(scene_str, str) or not 1 <= len(scene_str) <= SCENE_STR_MAX:
        return None
    parts = scene_str.split(SEPARATOR)
    if len(parts) != 3:
        return None
    version, kind, value = parts
    cls = KINDS.get(kind)
    if version != VERSION or cls is None:
        return None
    try:
        return cls.from_value(value)
    except ValueError:  # belt and braces: from_value already checked the value
        return None

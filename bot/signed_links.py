"""Signed tokens for links: ``<payload>.<mac>``, both URL-safe base64 without padding.

The mac is HMAC-SHA256 over a domain label plus the payload bytes, truncated to 128
bits (RFC 2104 section 5: at least half the hash length), so a link stays short. The
domain label keeps one kind of link from being replayed as another (a payment token
is never a valid export token, though both are signed with the same key).

Tokens are signed, not encrypted: whoever holds a link can read its payload. Reading
checks the shape, then the signature (constant-time), and only then hands the payload
to the caller, which parses it and checks the expiry. Each kind of link (`bot.paylink`,
`bot.export_page`) owns its payload format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Literal

MAC_BYTES = 16
MAX_TOKEN_CHARS = 400
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")

Reason = Literal["malformed", "bad_signature", "expired"]


class LinkError(ValueError):
    """A token that cannot be honoured; `reason` says why."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict URL-safe base64: only the alphabet, and only the canonical spelling.

    Without the canonical check two tokens that differ in the unused low bits of the
    last character would decode to the same bytes (a malleable link).
    """
    if not _B64URL.match(text):
        raise LinkError("malformed")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise LinkError("malformed") from None
    if b64encode(raw) != text:
        raise LinkError("malformed")
    return raw


def mac(*, key: bytes, domain: bytes, payload: bytes) -> bytes:
    return hmac.new(key, domain + payload, hashlib.sha256).digest()[:MAC_BYTES]


def seal(*, key: bytes, domain: bytes, payload: bytes) -> str:
    """The token carrying `payload`, signed for `domain` (e.g. ``b"storefront/export\\x00"``)."""
    if not key:
        raise ValueError("the signing key must not be empty")
    return f"{b64encode(payload)}.{b64encode(mac(key=key, domain=domain, payload=payload))}"


def unseal(*, key: bytes, domain: bytes, token: str) -> bytes:
    """The payload of a token signed for `domain` with `key`; `LinkError` (malformed, bad_signature).

    The payload is only returned once its signature is good: the caller may trust that
    it wrote it, and still parses it strictly.
    """
    if not key:
        raise ValueError("the signing key must not be empty")
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise LinkError("malformed")
    payload_text, mac_text = token.split(".")
    payload, given = b64decode(payload_text), b64decode(mac_text)
    if len(given) != MAC_BYTES:
        raise LinkError("malformed")
    if not hmac.compare_digest(given, mac(key=key, domain=domain, payload=payload)):
        raise LinkError("bad_signature")
    return payload

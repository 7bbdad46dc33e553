"""Sealed tokens for links: authenticated encryption, so a link says nothing to its reader.

A token is ``base64url(nonce || ciphertext || tag)`` without padding: AES-256-GCM with a
random 96-bit nonce and a 128-bit tag. Whoever holds a link can use it, but cannot read
what it names (an order number, a customer's or staff member's openid) nor change it.

Each kind of link has a domain label (``b"storefront/paylink/v2"``...); the AES key is
derived from the signing key and that label (HKDF-SHA256), so a payment token is never a
valid export token though both come from the same key. A new payload format takes a
new label: tokens of the old one then fail as altered.

Reading checks the shape (alphabet, canonical base64, length), then decrypts: a token
that fails authentication (altered, another key, another kind of link) is
``bad_signature``, and no byte of it reaches the caller. Each kind of link (`bot.web.paylink`,
`bot.web.export`) owns its payload, packed compactly with `pack_id` and `struct`, and
parses it strictly.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
TAG_BYTES = 16
MAX_TOKEN_CHARS = 400
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What `pack_id` takes: openids and order numbers are 1-64 characters of this alphabet."""
_KDF_INFO = b"storefront/links/aes-256-gcm\x00"

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


@functools.lru_cache(maxsize=8)
def _cipher(key: bytes, domain: bytes) -> AESGCM:
    """The AEAD of one kind of link: its own key, derived from the signing key and the label."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO + domain).derive(key)
    return AESGCM(derived)


def seal(*, key: bytes, domain: bytes, payload: bytes) -> str:
    """The token carrying `payload`, encrypted and authenticated for `domain`."""
    if not key:
        raise ValueError("the signing key must not be empty")
    nonce = os.urandom(NONCE_BYTES)
    token = b64encode(nonce + _cipher(key, domain).encrypt(nonce, payload, None))
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError("the payload is too long for a link")
    return token


def unseal(*, key: bytes, domain: bytes, token: str) -> bytes:
    """The payload of a token sealed for `domain` with `key`; `LinkError` (malformed, bad_signature).

    The payload is only returned once it is authenticated: the caller may trust that it
    wrote it, and still parses it strictly.
    """
    if not key:
        raise ValueError("the signing key must not be empty")
    if len(token) > MAX_TOKEN_CHARS:
        raise LinkError("malformed")
    raw = b64decode(token)
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise LinkError("malformed")
    try:
        return _cipher(key, domain).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None)
    except InvalidTag:
        raise LinkError("bad_signature") from None


# ---- compact payloads --------------------------------------------------------------------------


def pack_id(text: str) -> bytes:
    """An id of `ID`'s alphabet in 6 bits a character, after one byte of its length.

    A 28-character openid takes 22 bytes instead of 28 plus a separator.
    """
    if not ID.match(text):
        raise ValueError("an id must be 1-64 characters of A-Z a-z 0-9 _ -")
    size = (6 * len(text) + 7) // 8
    padded = text + "A" * (-len(text) % 4)  # "A" is six zero bits
    return bytes([len(text)]) + base64.urlsafe_b64decode(padded)[:size]


def unpack_id(raw: bytes, offset: int) -> tuple[str, int]:
    """The id packed at `offset` and the offset after it; `LinkError("malformed")` if it is not one."""
    if offset >= len(raw):
        raise LinkError("malformed")
    chars = raw[offset]
    size = (6 * chars + 7) // 8
    packed = raw[offset + 1 : offset + 1 + size]
    if not 1 <= chars <= 64 or len(packed) != size:
        raise LinkError("malformed")
    padded = packed + bytes(-size % 3)
    text = base64.urlsafe_b64encode(padded).decode("ascii")[:chars]
    if pack_id(text)[1:] != packed:  # the spare low bits are zero: one spelling only
        raise LinkError("malformed")
    return text, offset + 1 + size

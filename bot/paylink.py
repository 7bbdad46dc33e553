"""Payment links: a signed, expiring token bound to one order and one customer.

The token is ``<payload>.<mac>``, both URL-safe base64 without padding:

- payload: ``1|<order_no>|<openid>|<expires_at as unix seconds>`` (version first);
- mac: HMAC-SHA256 over a domain label plus the payload bytes, truncated to 128 bits
  (RFC 2104 section 5: at least half the hash length), so the link stays short enough
  for a chat card.

The token is not encrypted: whoever holds the link can read the order number and the
openid in it, as they can read the chat it was sent in. It is never put in an HTML
page (the payment page's script reads its own address instead). Reading checks the
shape, then the signature (constant-time), and only then trusts the payload. The
link expires with the order's stock reservation: `expires_at` is the order's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bot.config import Config

VERSION = "1"
MAC_BYTES = 16
MAX_TOKEN_CHARS = 400
_DOMAIN = b"storefront/paylink\x00"  # the signing key also signs other links (exports)
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Reason = Literal["malformed", "bad_signature", "expired"]


class PayLinkError(ValueError):
    """A payment token that cannot be honoured; `reason` says why."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


@dataclass(frozen=True, slots=True)
class PayClaim:
    """What a valid token says: pay this order, for this customer, until then."""

    order_no: str
    openid: str
    expires_at: datetime


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict URL-safe base64: only the alphabet, and only the canonical spelling.

    Without the canonical check two tokens that differ in the unused low bits of the
    last character would decode to the same bytes (a malleable link).
    """
    if not _B64URL.match(text):
        raise PayLinkError("malformed")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise PayLinkError("malformed") from None
    if _b64encode(raw) != text:
        raise PayLinkError("malformed")
    return raw


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest()[:MAC_BYTES]


def make_pay_token(*, key: bytes, order_no: str, openid: str, expires_at: datetime) -> str:
    """Sign a link to pay `order_no` as `openid` until `expires_at` (an aware datetime)."""
    if not key:
        raise ValueError("the signing key must not be empty")
    for name, value in (("order_no", order_no), ("openid", openid)):
        if not _ID.match(value):
            raise ValueError(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ -")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    # Whole seconds, rounded down: the link never outlives the reservation.
    payload = f"{VERSION}|{order_no}|{openid}|{int(expires_at.timestamp())}".encode("ascii")
    return f"{_b64encode(payload)}.{_b64encode(_mac(key, payload))}"


def read_pay_token(
    *, key: bytes, token: str, now: datetime | None = None, allow_expired: bool = False
) -> PayClaim:
    """Verify a token and return its claim; raises `PayLinkError` (malformed, bad_signature, expired).

    `allow_expired` still checks the signature but not the time: for reading an order's
    status after its link ran out (a payment made in the last second), never for paying.
    """
    if not key:
        raise ValueError("the signing key must not be empty")
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise PayLinkError("malformed")
    payload_text, mac_text = token.split(".")
    payload, mac = _b64decode(payload_text), _b64decode(mac_text)
    if len(mac) != MAC_BYTES:
        raise PayLinkError("malformed")
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise PayLinkError("bad_signature")
    claim = _parse_payload(payload)
    if not allow_expired and (now or datetime.now(UTC)) >= claim.expires_at:
        raise PayLinkError("expired")
    return claim


def _parse_payload(payload: bytes) -> PayClaim:
    """Parse a payload we signed ourselves; a shape we never write is still refused."""
    try:
        version, order_no, openid, expires = payload.decode("ascii").split("|")
        seconds = int(expires)
        expires_at = datetime.fromtimestamp(seconds, UTC)
    except (UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise PayLinkError("malformed") from None
    if version != VERSION or not _ID.match(order_no) or not _ID.match(openid):
        raise PayLinkError("malformed")
    return PayClaim(order_no=order_no, openid=openid, expires_at=expires_at)


def pay_url(config: Config, order_no: str, openid: str, expires_at: datetime) -> str:
    """The payment page's public URL for this order and customer."""
    token = make_pay_token(
        key=config.signing_key, order_no=order_no, openid=openid, expires_at=expires_at
    )
    return f"{config.public_base_url}/pay/{token}"

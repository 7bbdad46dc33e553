"""Payment links: a signed, expiring token bound to one order and one customer.

The token is ``<payload>.<mac>``, both URL-safe base64 without padding:

- payload: ``1|<order_no>|<openid>|<expires_at as unix seconds>`` (version first);
- mac: HMAC-SHA256 over a domain label plus the payload bytes, truncated to 128 bits
  (RFC 2104 section 5: at least half the hash length), so the link stays short enough
  for a chat card. The signing itself is `bot.signed_links`, shared with export links.

The token is not encrypted: whoever holds the link can read the order number and the
openid in it, as they can read the chat it was sent in. It is never put in an HTML
page (the payment page's script reads its own address instead). Reading checks the
shape, then the signature (constant-time), and only then trusts the payload. The
link expires with the order's stock reservation: `expires_at` is the order's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from bot import signed_links
from bot.config import Config
from bot.signed_links import LinkError

VERSION = "1"
_DOMAIN = b"storefront/paylink\x00"  # the signing key also signs other links (exports)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class PayLinkError(LinkError):
    """A payment token that cannot be honoured; `reason` says why (malformed, bad_signature, expired)."""


@dataclass(frozen=True, slots=True)
class PayClaim:
    """What a valid token says: pay this order, for this customer, until then."""

    order_no: str
    openid: str
    expires_at: datetime


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
    return signed_links.seal(key=key, domain=_DOMAIN, payload=payload)


def read_pay_token(
    *, key: bytes, token: str, now: datetime | None = None, allow_expired: bool = False
) -> PayClaim:
    """Verify a token and return its claim; raises `PayLinkError` (malformed, bad_signature, expired).

    `allow_expired` still checks the signature but not the time: for reading an order's
    status after its link ran out (a payment made in the last second), never for paying.
    """
    try:
        payload = signed_links.unseal(key=key, domain=_DOMAIN, token=token)
    except LinkError as exc:
        raise PayLinkError(exc.reason) from None
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

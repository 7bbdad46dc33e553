"""Payment links: a sealed, expiring token bound to one order and one customer.

The token is `bot.web.signed_links`' sealed format (AES-256-GCM under a key derived for
payment links only, URL-safe base64 without padding). Its payload, packed so the link
stays short enough for a chat card (92 characters for an 18-character order number and
a 28-character openid; the signed, unencrypted format before it took 103):

    expires_at as unix seconds (4 bytes, big-endian) | order_no | openid

each id packed by `signed_links.pack_id` (a length byte, then 6 bits a character).

Nobody who reads the link learns the order number or the openid: they are encrypted,
and authenticated with the expiry, so neither can be changed. The token is never put in
an HTML page (the payment page's script reads its own address instead). The link
expires with the order's stock reservation: `expires_at` is the order's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.config import Config
from bot.web import signed_links
from bot.web.signed_links import LinkError

# The format's version is in the label: a new payload format takes a new label.
_DOMAIN = b"storefront/paylink/v2"  # the signing key also seals other links (exports)
_EXPIRES = struct.Struct(">I")


class PayLinkError(LinkError):
    """A payment token that cannot be honoured; `reason` says why (malformed, bad_signature, expired)."""


@dataclass(frozen=True, slots=True)
class PayClaim:
    """What a valid token says: pay this order, for this customer, until then."""

    order_no: str
    openid: str
    expires_at: datetime


def make_pay_token(*, key: bytes, order_no: str, openid: str, expires_at: datetime) -> str:
    """Seal a link to pay `order_no` as `openid` until `expires_at` (an aware datetime)."""
    if not key:
        raise ValueError("the signing key must not be empty")
    for name, value in (("order_no", order_no), ("openid", openid)):
        if not signed_links.ID.match(value):
            raise ValueError(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ -")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    # Whole seconds, rounded down: the link never outlives the reservation.
    seconds = int(expires_at.timestamp())
    if not 0 <= seconds < 2**32:
        raise ValueError("expires_at is out of range")
    payload = _EXPIRES.pack(seconds) + signed_links.pack_id(order_no) + signed_links.pack_id(openid)
    return signed_links.seal(key=key, domain=_DOMAIN, payload=payload)


def read_pay_token(
    *, key: bytes, token: str, now: datetime | None = None, allow_expired: bool = False
) -> PayClaim:
    """Verify a token and return its claim; raises `PayLinkError` (malformed, bad_signature, expired).

    `allow_expired` still authenticates the token but does not check the time: for reading
    an order's status after its link ran out (a payment made in the last second), never
    for paying.
    """
    try:
        payload = signed_links.unseal(key=key, domain=_DOMAIN, token=token)
        claim = _parse_payload(payload)
    except LinkError as exc:
        raise PayLinkError(exc.reason) from None
    if not allow_expired and (now or datetime.now(UTC)) >= claim.expires_at:
        raise PayLinkError("expired")
    return claim


def _parse_payload(payload: bytes) -> PayClaim:
    """Parse a payload we sealed ourselves; a shape we never write is still refused."""
    if len(payload) < _EXPIRES.size:
        raise LinkError("malformed")
    (seconds,) = _EXPIRES.unpack_from(payload)
    order_no, offset = signed_links.unpack_id(payload, _EXPIRES.size)
    openid, offset = signed_links.unpack_id(payload, offset)
    if offset != len(payload):
        raise LinkError("malformed")
    return PayClaim(order_no=order_no, openid=openid, expires_at=datetime.fromtimestamp(seconds, UTC))


def pay_url(config: Config, order_no: str, openid: str, expires_at: datetime) -> str:
    """The payment page's public URL for this order and customer."""
    token = make_pay_token(
        key=config.signing_key, order_no=order_no, openid=openid, expires_at=expires_at
    )
    return f"{config.public_base_url}/pay/{token}"


def topup_url(config: Config, topup_no: str, openid: str, expires_at: datetime) -> str:
    """The top-up page's public URL (a payment token sealed for the top-up's number)."""
    token = make_pay_token(key=config.signing_key, order_no=topup_no, openid=openid, expires_at=expires_at)
    return f"{config.public_base_url}/topup/{token}"

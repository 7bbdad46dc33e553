"""Payment tokens: signed, expiring, bound to one order and one customer."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import build_config
from bot.paylink import PayLinkError, make_pay_token, pay_url, read_pay_token

KEY = b"k" * 32
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=30)
ORDER_NO = "SF20250501120000123456"
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz0"


def token(**overrides: object) -> str:
    args: dict = {"key": KEY, "order_no": ORDER_NO, "openid": OPENID, "expires_at": EXPIRES}
    args.update(overrides)
    return make_pay_token(**args)


def reason(tok: str, *, key: bytes = KEY, now: datetime = NOW) -> str:
    with pytest.raises(PayLinkError) as caught:
        read_pay_token(key=key, token=tok, now=now)
    return caught.value.reason


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_round_trip() -> None:
    claim = read_pay_token(key=KEY, token=token(), now=NOW)
    assert (claim.order_no, claim.openid, claim.expires_at) == (ORDER_NO, OPENID, EXPIRES)
    assert claim.expires_at.tzinfo is not None


def test_token_is_compact_and_url_safe() -> None:
    tok = token()
    assert len(tok) < 110
    assert all(c.isalnum() or c in "-_." for c in tok)


def test_expires_at_is_rounded_down_to_the_second() -> None:
    claim = read_pay_token(key=KEY, token=token(expires_at=EXPIRES + timedelta(microseconds=999_999)), now=NOW)
    assert claim.expires_at == EXPIRES


def test_expiry() -> None:
    tok = token()
    assert read_pay_token(key=KEY, token=tok, now=EXPIRES - timedelta(seconds=1)).order_no == ORDER_NO
    assert reason(tok, now=EXPIRES) == "expired"
    assert reason(tok, now=EXPIRES + timedelta(days=1)) == "expired"


def test_expired_tokens_can_still_be_read_for_status_only_when_asked() -> None:
    claim = read_pay_token(key=KEY, token=token(), now=EXPIRES + timedelta(hours=1), allow_expired=True)
    assert claim.order_no == ORDER_NO


def test_wrong_key() -> None:
    assert reason(token(), key=b"another key") == "bad_signature"


def test_signature_is_checked_before_expiry() -> None:
    """A forged link never learns whether its claim would have expired."""
    assert reason(token(), key=b"another key", now=EXPIRES + timedelta(days=1)) == "bad_signature"


@pytest.mark.parametrize(
    ("field", "value"),
    [("order_no", "SF20250501120000123457"), ("openid", "oSomebodyElse000000000000000"), ("expires", "9999999999")],
)
def test_tampering_with_each_claim_breaks_the_signature(field: str, value: str) -> None:
    payload_text, mac = token().split(".")
    version, order_no, openid, expires = unb64(payload_text).decode().split("|")
    parts = {"order_no": order_no, "openid": openid, "expires": expires} | {field: value}
    forged = "|".join([version, parts["order_no"], parts["openid"], parts["expires"]])
    assert reason(f"{b64(forged.encode())}.{mac}") == "bad_signature"


def test_tampering_with_the_signature() -> None:
    payload_text, mac = token().split(".")
    raw = bytearray(unb64(mac))
    for index in (0, len(raw) - 1):
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        assert reason(f"{payload_text}.{b64(bytes(flipped))}") == "bad_signature"


def test_every_single_character_change_is_refused() -> None:
    tok = token()
    for index, char in enumerate(tok):
        if char == ".":
            continue
        replacement = "A" if char != "A" else "B"
        changed = tok[:index] + replacement + tok[index + 1 :]
        assert reason(changed) in ("bad_signature", "malformed"), (index, changed)


def test_non_canonical_base64_is_malformed() -> None:
    """The unused low bits of the last character cannot make a second valid spelling."""
    payload_text, mac = token().split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    sibling = alphabet[last ^ 0x01]  # 16 bytes = 22 chars: the last char carries 2 bits + 4 spare
    assert reason(f"{payload_text}.{mac[:-1]}{sibling}") == "malformed"


@pytest.mark.parametrize(
    "bad",
    ["", ".", "abc", "a.b.c", "abc.", ".abc", "ab$c.def", "a" * 1000 + "." + "b" * 22, "abc.de=="],
)
def test_malformed(bad: str) -> None:
    assert reason(bad) == "malformed"


def test_a_truncated_signature_is_malformed() -> None:
    payload_text, mac = token().split(".")
    assert reason(f"{payload_text}.{mac[:-4]}") == "malformed"


@pytest.mark.parametrize("bad", ["", "has|bar", "has space", "长", "x" * 65])
def test_make_refuses_ids_that_cannot_round_trip(bad: str) -> None:
    with pytest.raises(ValueError):
        token(order_no=bad)
    with pytest.raises(ValueError):
        token(openid=bad)


def test_make_refuses_naive_datetimes_and_empty_keys() -> None:
    with pytest.raises(ValueError):
        token(expires_at=datetime(2025, 5, 1, 12, 30))
    with pytest.raises(ValueError):
        token(key=b"")


def test_pay_url_uses_the_public_base_url_and_the_config_key() -> None:
    config = build_config({"server": {"base_url": "https://shop.example.com/", "secret_key": "s3cret"}})
    url = pay_url(config, ORDER_NO, OPENID, EXPIRES)
    assert url.startswith("https://shop.example.com/pay/")
    tok = url.rsplit("/", 1)[1]
    assert read_pay_token(key=b"s3cret", token=tok, now=NOW).order_no == ORDER_NO
    assert reason(tok, key=build_config({}).signing_key) == "bad_signature"

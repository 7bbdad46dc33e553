"""Payment tokens: sealed (unreadable, unalterable), expiring, bound to one order and one customer."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from bot.config import build_config
from bot.web.export import make_export_token, read_export_token
from bot.web.paylink import PayLinkError, make_pay_token, pay_url, read_pay_token
from bot.web.signed_links import LinkError
from commerce.orders.models import Order
from tests.bot.driver import Shop, db
from tests.bot.web.conftest import pay_path, place_apple_order

KEY = b"k" * 32
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=30)
ORDER_NO = "SF2025050112345678"  # the shape of `commerce.orders.placement.new_order_no`
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz0"  # 28 characters, as WeChat's
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


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


def every_decoding(text: str) -> list[bytes]:
    """Every base64 reading of every part of `text`: each piece between non-alphabet
    characters, from each of the first four offsets, in the URL-safe and standard alphabets."""
    readings = []
    pieces = "".join(c if c in ALPHABET else " " for c in text).split()
    for piece in pieces:
        for start in range(4):
            for part in (piece[start:], piece[start:].replace("-", "+").replace("_", "/")):
                usable = part[: len(part) - len(part) % 4]
                for decode in (base64.urlsafe_b64decode, base64.b64decode):
                    try:
                        readings.append(decode(usable))
                    except (binascii.Error, ValueError):
                        pass
    return readings


def test_round_trip() -> None:
    claim = read_pay_token(key=KEY, token=token(), now=NOW)
    assert (claim.order_no, claim.openid, claim.expires_at) == (ORDER_NO, OPENID, EXPIRES)
    assert claim.expires_at.tzinfo is not None


def test_token_is_compact_and_url_safe() -> None:
    tok = token()
    assert len(tok) == 92  # 4 + 1 + 14 + 1 + 21 bytes of payload, 12 of nonce, 16 of tag
    assert all(c in ALPHABET for c in tok)
    assert len(token(order_no="SF20250501120000123456")) <= 96


def test_the_token_reveals_neither_the_openid_nor_the_order_number() -> None:
    secrets_ = [OPENID, ORDER_NO, ORDER_NO.removeprefix("SF"), ORDER_NO[2:10], ORDER_NO[-8:]]
    packed_openid = base64.urlsafe_b64decode(OPENID)  # the 6-bit packing is this
    for _ in range(20):  # a fresh nonce each time
        tok = token()
        for secret in secrets_:
            assert secret.lower() not in tok.lower()
        readings = every_decoding(tok)
        assert readings
        for raw in readings:
            for secret in secrets_:
                assert secret.encode() not in raw
            assert packed_openid[:12] not in raw and packed_openid[-12:] not in raw


def test_two_tokens_of_one_claim_differ_and_both_work() -> None:
    first, second = token(), token()
    assert first != second  # a random nonce: equal claims are not recognisable
    assert read_pay_token(key=KEY, token=first, now=NOW) == read_pay_token(key=KEY, token=second, now=NOW)


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


def test_flipping_any_bit_of_the_token_is_refused() -> None:
    raw = unb64(token())
    for index in range(len(raw)):
        for bit in (0x01, 0x80):
            altered = bytearray(raw)
            altered[index] ^= bit
            assert reason(b64(bytes(altered))) == "bad_signature", (index, bit)


def test_every_single_character_change_is_refused() -> None:
    tok = token()
    for index, char in enumerate(tok):
        replacement = "A" if char != "A" else "B"
        changed = tok[:index] + replacement + tok[index + 1 :]
        assert reason(changed) in ("bad_signature", "malformed"), (index, changed)


def test_an_altered_token_is_refused_even_after_its_expiry() -> None:
    raw = bytearray(unb64(token()))
    raw[20] ^= 0x10
    assert reason(b64(bytes(raw)), now=EXPIRES + timedelta(days=1)) == "bad_signature"


def test_a_spliced_token_is_refused() -> None:
    """Parts of two genuine tokens (another customer's, another order's) make no third one."""
    mine, theirs = unb64(token()), unb64(token(openid="oSomebodyElse000000000000000"))
    assert reason(b64(mine[:12] + theirs[12:])) == "bad_signature"  # my nonce, their ciphertext
    assert reason(b64(theirs[:-16] + mine[-16:])) == "bad_signature"  # their ciphertext, my tag


def test_non_canonical_base64_is_malformed() -> None:
    """The unused low bits of the last character cannot make a second valid spelling."""
    tok = next(t for t in (token(openid=OPENID[:n]) for n in range(20, 29)) if len(t) % 4)
    last = ALPHABET.index(tok[-1])
    sibling = ALPHABET[last ^ 0x01]  # the lowest bit of the last character is spare
    assert reason(tok[:-1] + sibling) == "malformed"
    assert read_pay_token(key=KEY, token=tok, now=NOW).expires_at == EXPIRES


@pytest.mark.parametrize(
    "bad",
    ["", ".", "abc", "a.b.c", "abc.", ".abc", "ab$c.def", "a" * 1000, "abc.de==", "A" * 36],
)
def test_malformed(bad: str) -> None:
    assert reason(bad) == "malformed"


def test_padding_dots_and_cut_tokens() -> None:
    tok = token()
    for bad in (tok + "=", tok + "==", tok + ".", tok[:40] + "." + tok[40:], tok + " "):
        assert reason(bad) == "malformed", bad
    assert reason(tok[:-4]) == "bad_signature"  # still long enough to try: it fails authentication
    assert reason(tok[:36]) == "malformed"  # shorter than a nonce and a tag


def test_the_old_signed_format_is_no_longer_accepted() -> None:
    """``1|order|openid|expiry`` in clear, then a dot and an HMAC: the format this one replaced."""
    payload = b64(f"1|{ORDER_NO}|{OPENID}|{int(EXPIRES.timestamp())}".encode())
    assert reason(f"{payload}.{'A' * 22}") == "malformed"


def test_a_pay_token_is_no_export_token_and_an_export_token_no_pay_token() -> None:
    pay = token()
    with pytest.raises(LinkError) as caught:
        read_export_token(key=KEY, token=pay, now=NOW)
    assert caught.value.reason == "bad_signature"
    export = make_export_token(key=KEY, kind="products", openid=OPENID, expires_at=EXPIRES)
    assert reason(export) == "bad_signature"


@pytest.mark.parametrize("bad", ["", "has|bar", "has space", "长", "x" * 65])
def test_make_refuses_ids_that_cannot_round_trip(bad: str) -> None:
    with pytest.raises(ValueError):
        token(order_no=bad)
    with pytest.raises(ValueError):
        token(openid=bad)


def test_ids_of_every_length_round_trip() -> None:
    for n in range(1, 65):
        openid = (OPENID * 3)[:n]
        claim = read_pay_token(key=KEY, token=token(openid=openid, order_no=openid[::-1]), now=NOW)
        assert (claim.openid, claim.order_no) == (openid, openid[::-1])


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
    other = build_config({"server": {"secret_key": "another-secret"}})
    assert reason(tok, key=other.signing_key) == "bad_signature"


# ---- through the app ----------------------------------------------------------------------------


async def test_a_link_whose_order_no_longer_exists_is_refused(web_shop: Shop) -> None:
    order = await place_apple_order(web_shop.client.app)
    path = pay_path(web_shop.config, order)
    assert (await web_shop.client.get(path)).status == 200
    async with db(web_shop.client.app)() as session, session.begin():
        await session.execute(delete(Order).where(Order.id == order.id))

    response = await web_shop.client.get(path)
    html = await response.text()
    assert response.status == 404 and "找不到这个订单" in html
    assert order.openid not in html and order.order_no not in html
    for method, suffix in (("POST", "/simulate"), ("GET", "/status")):
        answer = await web_shop.client.request(method, path + suffix)
        assert answer.status == 404 and (await answer.json())["error"] == "not_found", suffix


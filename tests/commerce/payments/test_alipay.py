"""The Alipay provider on its own: notifications verified against the fake gateway's
signatures, hostile forms refused without a crash, signed answers read exactly."""

from __future__ import annotations

import functools
import json
from typing import cast
from urllib.parse import urlencode

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.payments.alipay import AlipayProvider, signed_part
from commerce.payments.base import NotificationRejected
from tests.fakes.alipay import APP_ID, SELLER_ID, FakeAlipay, Trade, shared_keys


@functools.cache
def provider() -> AlipayProvider:
    keys = shared_keys()
    private = keys.app.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = keys.alipay.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # verifying makes no HTTP call: no session is needed
    return AlipayProvider(
        http=cast(aiohttp.ClientSession, None),
        app_id=APP_ID,
        seller_id=SELLER_ID,
        app_private_key_pem=private.decode(),
        alipay_public_key_pem=public.decode(),
    )



def paid_fake(amount: str = "59.80") -> FakeAlipay:
    fake = FakeAlipay()
    fake.trades["P1"] = Trade("P1", amount, "苹果 ×2", "http://x/pay/notify/alipay", "")
    fake.pay("P1")
    return fake


def test_a_genuine_notification_is_read_in_fen_with_its_app_and_seller() -> None:
    fake = paid_fake()
    body = urlencode(fake.notification("P1")).encode()
    n = provider().verify_notification(headers={}, body=body)
    assert (n.kind, n.provider, n.order_no, n.amount_fen, n.succeeded) == ("payment", "alipay", "P1", 5980, True)
    assert (n.appid, n.mchid, n.transaction_id) == (APP_ID, SELLER_ID, fake.trades["P1"].trade_no)
    waiting = urlencode(fake.notification("P1", trade_status="WAIT_BUYER_PAY")).encode()
    assert provider().verify_notification(headers={}, body=waiting).succeeded is False


@pytest.mark.parametrize("amount", ["12.345", "-1.00", "1e3", "", "¥5", "５.00", " 5.00"])
def test_an_amount_alipay_never_writes_is_refused_even_when_signed(amount: str) -> None:
    fake = paid_fake()
    body = urlencode(fake.notification("P1", total_amount=amount)).encode()
    with pytest.raises(NotificationRejected):
        provider().verify_notification(headers={}, body=body)


def test_a_repeated_field_is_refused() -> None:
    fake = paid_fake()
    body = urlencode(fake.notification("P1")).encode() + b"&total_amount=0.01"
    with pytest.raises(NotificationRejected, match="repeated"):
        provider().verify_notification(headers={}, body=body)


@settings(max_examples=15, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=8)))
def test_hostile_bodies_are_refused_never_crash(raw: bytes | dict[str, str]) -> None:
    body = raw if isinstance(raw, bytes) else urlencode({**raw, "sign_type": "RSA2", "sign": "AAAA"}).encode()
    with pytest.raises(NotificationRejected):
        provider().verify_notification(headers={}, body=body)


def test_the_signed_part_of_an_answer_is_its_exact_text_whatever_its_strings_hold() -> None:
    inner = {"code": "10000", "msg": 'a "}{" b', "nested": {"x": "}"}}
    part = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
    raw = f'{{"alipay_trade_query_response":{part},"sign":"S"}}'
    assert signed_part(raw, "alipay_trade_query_response") == part
    assert signed_part(raw, "alipay_trade_close_response") is None
    assert signed_part('{"alipay_trade_query_response":{"a":"', "alipay_trade_query_response") is None

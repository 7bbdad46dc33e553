"""WeChat Pay API v3: notifications verified and decrypted, calls signed, failures reported.

Notifications are built by the fake server with `cryptography` directly (RSA-SHA256
signature headers, AES-256-GCM resource); the fake verifies our requests' signatures
with the merchant PUBLIC key, so a call that succeeds was signed correctly.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from commerce.payments.base import NotificationRejected, PaymentError
from commerce.payments.wechatpay_v3 import WeChatPayV3Provider
from tests.fakes.wechatpay import (
    API_V3_KEY,
    APPID,
    MCHID,
    MERCHANT_SERIAL_NO,
    PLATFORM_PUBLIC_KEY_ID,
    Failure,
    FakeWeChatPay,
    shared_keys,
)

NOTIFY_URL = "https://shop.example.com/pay/notify/wechatpay_v3"
EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> tuple[FakeWeChatPay, str]:
    wechat = FakeWeChatPay()
    server = await aiohttp_server(wechat.app())
    return wechat, str(server.make_url("")).rstrip("/")


def make_provider(
    http: aiohttp.ClientSession,
    base_url: str = "http://127.0.0.1:9",
    *,
    private_key: rsa.RSAPrivateKey | None = None,
    timeout: float = 5.0,
) -> WeChatPayV3Provider:
    keys = shared_keys()
    return WeChatPayV3Provider(
        http=http,
        mchid=MCHID,
        appid=APPID,
        api_v3_key=API_V3_KEY,
        merchant_serial_no=MERCHANT_SERIAL_NO,
        private_key=private_key or keys.merchant,
        platform_public_key=keys.platform.public_key(),
        platform_public_key_id=PLATFORM_PUBLIC_KEY_ID,
        base_url=base_url,
        timeout_seconds=timeout,
    )


# ---- notifications -------------------------------------------------------------------------


async def test_payment_notification_signed_by_wechat_pay_is_accepted(http: aiohttp.ClientSession) -> None:
    wechat = FakeWeChatPay()
    resource = wechat.v3_payment_resource("SF2025010100000001", 4990, transaction_id="4200000001")
    headers, body = wechat.v3_notification(resource)

    n = make_provider(http).verify_notification(headers=headers, body=body)

    assert (n.kind, n.provider, n.order_no, n.amount_fen, n.succeeded) == (
        "payment",
        "wechatpay_v3",
        "SF2025010100000001",
        4990,
        True,
    )
    assert (n.mchid, n.appid, n.transaction_id) == (MCHID, APPID, "4200000001")
    assert n.occurred_at is not None and n.occurred_at.tzinfo is not None
    assert n.payload["payer"]["openid"] == "o_payer"


async def test_refund_notification_is_decrypted(http: aiohttp.ClientSession) -> None:
    wechat = FakeWeChatPay()
    resource = wechat.v3_refund_resource("SF1", "RF1", 1000, 4990, refund_id="50001")
    headers, body = wechat.v3_notification(resource)

    n = make_provider(http).verify_notification(headers=headers, body=body)

    assert (n.kind, n.order_no, n.refund_no, n.provider_refund_id, n.amount_fen, n.succeeded) == (
        "refund",
        "SF1",
        "RF1",
        "50001",
        1000,
        True,
    )
    assert n.appid == ""  # v3 refund notifications carry no appid


async def test_abnormal_refund_is_a_failed_refund(http: aiohttp.ClientSession) -> None:
    wechat = FakeWeChatPay()
    resource = wechat.v3_refund_resource("SF1", "RF1", 1000, 4990, refund_status="ABNORMAL")
    headers, body = wechat.v3_notification(resource)

    assert make_provider(http).verify_notification(headers=headers, body=body).succeeded is False


def _forged(wechat: FakeWeChatPay, case: str) -> tuple[dict[str, str], bytes]:
    resource = wechat.v3_payment_resource("SF1", 4990)
    if case == "signed_by_someone_else":
        return wechat.v3_notification(resource, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    if case == "unknown_serial":
        return wechat.v3_notification(resource, serial="PUB_KEY_ID_SOMEONE_ELSE")
    if case == "stale_timestamp":
        return wechat.v3_notification(resource, timestamp=int(time.time()) - 301)
    if case == "future_timestamp":
        return wechat.v3_notification(resource, timestamp=int(time.time()) + 301)
    if case == "wrong_api_v3_key":
        return wechat.v3_notification(resource, api_v3_key="z" * 32)
    if case == "body_changed_after_signing":
        headers, body = wechat.v3_notification(resource)
        return headers, body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCES ")
    if case == "signature_probe":  # WeChat Pay's "WECHATPAY/SIGNTEST/" probes must fail
        headers, body = wechat.v3_notification(resource)
        return {**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]}, body
    if case == "no_signature_headers":
        _headers, body = wechat.v3_notification(resource)
        return {"Content-Type": "application/json"}, body
    if case == "amount_not_a_number":
        return wechat.v3_notification({**resource, "amount": {"total": "4990"}})
    if case == "unknown_event":
        return wechat.v3_notification(resource, event_type="SOMETHING.ELSE")
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "signed_by_someone_else",
        "unknown_serial",
        "stale_timestamp",
        "future_timestamp",
        "wrong_api_v3_key",
        "body_changed_after_signing",
        "signature_probe",
        "no_signature_headers",
        "amount_not_a_number",
        "unknown_event",
    ],
)
async def test_forged_or_broken_notifications_are_rejected(http: aiohttp.ClientSession, case: str) -> None:
    headers, body = _forged(FakeWeChatPay(), case)
    with pytest.raises(NotificationRejected):
        make_provider(http).verify_notification(headers=headers, body=body)


async def test_notification_built_by_hand_with_cryptography_is_accepted(http: aiohttp.ClientSession) -> None:
    """No fake involved: RSA-SHA256 and AES-256-GCM straight from `cryptography`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    plain = json.dumps(
        {
            "mchid": MCHID,
            "appid": APPID,
            "out_trade_no": "SF9",
            "transaction_id": "4200009",
            "trade_state": "SUCCESS",
            "success_time": "2025-01-01T10:00:00+08:00",
            "amount": {"total": 100, "currency": "CNY"},
        }
    ).encode()
    ciphertext = AESGCM(API_V3_KEY.encode()).encrypt(b"abcdefghijkl", plain, b"transaction")
    body = json.dumps(
        {
            "id": "EV-1",
            "event_type": "TRANSACTION.SUCCESS",
            "resource_type": "encrypt-resource",
            "resource": {
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": "transaction",
                "nonce": "abcdefghijkl",
                "original_type": "transaction",
            },
        }
    ).encode()
    ts, nonce = str(int(time.time())), "n0nce"
    signature = shared_keys().platform.sign(
        f"{ts}\n{nonce}\n".encode() + body + b"\n", padding.PKCS1v15(), hashes.SHA256()
    )
    headers = {
        "wechatpay-timestamp": ts,  # lower case: headers are looked up without regard to case
        "wechatpay-nonce": nonce,
        "wechatpay-signature": base64.b64encode(signature).decode(),
        "wechatpay-serial": PLATFORM_PUBLIC_KEY_ID,
    }

    n = make_provider(http).verify_notification(headers=headers, body=body)

    assert (n.order_no, n.amount_fen, n.transaction_id) == ("SF9", 100, "4200009")
    assert n.occurred_at == datetime(2025, 1, 1, 2, 0, tzinfo=UTC)


def test_acknowledgements_are_what_wechat_pay_expects() -> None:
    provider = make_provider(None)  # type: ignore[arg-type]
    assert provider.acknowledge(ok=True) == (204, "", "")
    status, content_type, body = provider.acknowledge(ok=False, message="bad")
    assert status == 400 and content_type == "application/json"
    assert json.loads(body) == {"code": "FAIL", "message": "bad"}


# ---- calls to WeChat Pay ---------------------------------------------------------------------


def _check_jsapi_params(params: dict[str, str], prepay_id: str) -> None:
    assert params["appId"] == APPID and params["package"] == f"prepay_id={prepay_id}"
    assert params["signType"] == "RSA"
    message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    shared_keys().merchant.public_key().verify(
        base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256()
    )  # raises InvalidSignature when wrong


async def test_jsapi_payment_is_signed_and_gives_signed_jsapi_params(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]
) -> None:
    wechat, base_url = fake
    payment = await make_provider(http, base_url).create_payment(
        order_no="SF100",
        amount_fen=4990,
        description="苹果 ×2",
        openid="o_payer",
        expires_at=EXPIRES,
        notify_url=NOTIFY_URL,
    )

    (request,) = wechat.requests("/v3/pay/transactions/jsapi")
    assert request.data == {
        "appid": APPID,
        "mchid": MCHID,
        "description": "苹果 ×2",
        "out_trade_no": "SF100",
        "time_expire": "2030-01-02T11:04:05+08:00",
        "notify_url": NOTIFY_URL,
        "amount": {"total": 4990, "currency": "CNY"},
        "payer": {"openid": "o_payer"},
    }
    assert payment.kind == "jsapi" and payment.jsapi_params is not None
    _check_jsapi_params(payment.jsapi_params, wechat.orders["SF100"].prepay_id)


async def test_native_payment_gives_a_code_url(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    wechat, base_url = fake
    payment = await make_provider(http, base_url).create_payment(
        order_no="SF101", amount_fen=100, description="x", openid=None, expires_at=EXPIRES, notify_url=NOTIFY_URL
    )
    assert payment.kind == "native" and payment.code_url == wechat.orders["SF101"].code_url
    assert wechat.requests("/native")[0].path == "/v3/pay/transactions/native"


async def test_close_and_refund_reach_the_right_endpoints(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]
) -> None:
    wechat, base_url = fake
    provider = make_provider(http, base_url)
    await provider.create_payment(
        order_no="SF102", amount_fen=5000, description="x", openid="o", expires_at=EXPIRES, notify_url=NOTIFY_URL
    )
    wechat.pay("SF102")
    await provider.refund(
        order_no="SF102", refund_no="RF1", amount_fen=1200, total_fen=5000, reason="坏果", notify_url=NOTIFY_URL
    )
    await provider.refund(  # a late payment is refunded by its transaction id
        order_no="SF102",
        refund_no="RL1",
        amount_fen=100,
        total_fen=5000,
        reason="",
        notify_url=NOTIFY_URL,
        transaction_id=wechat.orders["SF102"].transaction_id,
    )
    await provider.close_payment(order_no="SF103")

    first, second = wechat.requests("/v3/refund/domestic/refunds")
    assert first.data == {
        "out_trade_no": "SF102",
        "out_refund_no": "RF1",
        "notify_url": NOTIFY_URL,
        "amount": {"refund": 1200, "total": 5000, "currency": "CNY"},
        "reason": "坏果",
    }
    assert second.data["transaction_id"] == wechat.orders["SF102"].transaction_id
    assert "out_trade_no" not in second.data
    (close,) = wechat.requests("/close")
    assert close.path == "/v3/pay/transactions/out-trade-no/SF103/close" and close.data == {"mchid": MCHID}


async def test_a_request_signed_with_the_wrong_key_gets_sign_error(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]
) -> None:
    _wechat, base_url = fake
    wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(PaymentError) as caught:
        await make_provider(http, base_url, private_key=wrong).close_payment(order_no="SF1")
    assert (caught.value.code, caught.value.status) == ("SIGN_ERROR", 401)


async def test_one_server_error_is_retried(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    wechat, base_url = fake
    wechat.fail_next(Failure(status=500))
    await make_provider(http, base_url).close_payment(order_no="SF1")
    assert len(wechat.requests("/close")) == 2
    first, second = wechat.requests("/close")
    assert first.headers["Authorization"] != second.headers["Authorization"]  # fresh nonce each time


async def test_server_errors_that_persist_raise_payment_error(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]
) -> None:
    wechat, base_url = fake
    wechat.fail_next(Failure(status=500), times=3)
    with pytest.raises(PaymentError) as caught:
        await make_provider(http, base_url).close_payment(order_no="SF1")
    assert (caught.value.code, caught.value.outcome_unknown) == ("HTTP_500", True)
    assert len(wechat.requests("/close")) == 3


async def test_business_errors_are_not_retried(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    wechat, base_url = fake
    wechat.fail_next(Failure(status=403, code="ORDERPAID", message="该订单已支付"))
    with pytest.raises(PaymentError) as caught:
        await make_provider(http, base_url).create_payment(
            order_no="SF1", amount_fen=1, description="x", openid="o", expires_at=EXPIRES, notify_url=NOTIFY_URL
        )
    assert (caught.value.code, caught.value.message) == ("ORDERPAID", "该订单已支付")
    assert caught.value.outcome_unknown is False  # WeChat Pay said no: nothing was done
    assert len(wechat.received) == 1


async def test_paying_a_paid_order_is_orderpaid(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    wechat, base_url = fake
    provider = make_provider(http, base_url)
    args = {"order_no": "SF7", "amount_fen": 1, "description": "x", "openid": "o", "expires_at": EXPIRES}
    await provider.create_payment(**args, notify_url=NOTIFY_URL)
    wechat.pay("SF7")
    with pytest.raises(PaymentError, match="ORDERPAID"):
        await provider.create_payment(**args, notify_url=NOTIFY_URL)


async def test_slow_answers_time_out(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    wechat, base_url = fake
    wechat.fail_next(Failure(delay=1.0), times=3)
    with pytest.raises(PaymentError) as caught:
        await make_provider(http, base_url, timeout=0.2).close_payment(order_no="SF1")
    assert (caught.value.code, caught.value.outcome_unknown) == ("TIMEOUT", True)


async def test_an_answer_not_signed_by_wechat_pay_is_refused(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]
) -> None:
    wechat, base_url = fake
    wechat.fail_next(Failure(forge_signature=True))
    with pytest.raises(PaymentError) as caught:
        await make_provider(http, base_url).create_payment(
            order_no="SF1", amount_fen=1, description="x", openid="o", expires_at=EXPIRES, notify_url=NOTIFY_URL
        )
    assert caught.value.code == "RESPONSE_SIGNATURE"


async def test_an_unreachable_server_is_a_network_error(http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    provider = make_provider(http, f"http://127.0.0.1:{unused_tcp_port}")
    with pytest.raises(PaymentError) as caught:
        await provider.close_payment(order_no="SF1")
    assert caught.value.code == "NETWORK"


def test_expiry_is_sent_in_china_time() -> None:
    from commerce.payments.wechatpay_v3 import rfc3339

    assert rfc3339(datetime(2030, 1, 1, 16, 30, tzinfo=UTC)) == "2030-01-02T00:30:00+08:00"
    assert rfc3339(datetime(2030, 1, 1, 16, 30, tzinfo=UTC) + timedelta(seconds=1)).endswith(":01+08:00")

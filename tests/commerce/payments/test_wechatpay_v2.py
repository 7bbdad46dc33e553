"""WeChat Pay API v2 (legacy): signed XML both ways, safe parsing, encrypted refund results.

Signatures in these tests are computed with hashlib / hmac directly (MD5 and
HMAC-SHA256 over the sorted non-empty fields + "&key="), independently of the provider.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bot.config import ConfigError, PayConfig
from bot.payments import client_ssl_context
from commerce.payments.base import NotificationRejected, PaymentError
from commerce.payments.wechatpay_v2 import SUCCESS_ACK, WeChatPayV2Provider, parse_xml
from tests.fakes.wechatpay import API_V2_KEY, APPID, MCHID, Failure, FakeWeChatPay, v2_parse

NOTIFY_URL = "https://shop.example.com/pay/notify/wechatpay_v2"
EXPIRES = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


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
    http: aiohttp.ClientSession | None = None,
    base_url: str = "http://127.0.0.1:9",
    *,
    sign_type: str = "HMAC-SHA256",
    key: str = API_V2_KEY,
    timeout: float = 5.0,
) -> WeChatPayV2Provider:
    return WeChatPayV2Provider(
        http=http,  # type: ignore[arg-type]
        mchid=MCHID,
        appid=APPID,
        api_key=key,
        sign_type=sign_type,
        base_url=base_url,
        timeout_seconds=timeout,
    )


def by_hand(fields: dict[str, str], sign_type: str) -> str:
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v) + f"&key={API_V2_KEY}"
    if sign_type == "MD5":
        return hashlib.md5(text.encode()).hexdigest().upper()
    return hmac.new(API_V2_KEY.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def xml(fields: dict[str, str]) -> bytes:
    return ("<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>").encode()


# ---- notifications -------------------------------------------------------------------------


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_payment_notification_signed_by_hand_is_accepted(sign_type: str) -> None:
    fields = {
        "return_code": "SUCCESS",
        "appid": APPID,
        "mch_id": MCHID,
        "nonce_str": "5d2b6c2a8db53831f7eda20af46e531c",
        "result_code": "SUCCESS",
        "openid": "o_payer",
        "trade_type": "JSAPI",
        "bank_type": "CMC",
        "total_fee": "4990",
        "cash_fee": "4990",
        "coupon_fee": "",  # empty fields are not signed
        "transaction_id": "1004400740201409030005092168",
        "out_trade_no": "SF2025010100000001",
        "time_end": "20250101103000",
        "sign_type": sign_type,
    }
    fields["sign"] = by_hand(fields, sign_type)

    n = make_provider(sign_type="HMAC-SHA256").verify_notification(headers={}, body=xml(fields))

    assert (n.kind, n.order_no, n.amount_fen, n.succeeded, n.mchid, n.appid) == (
        "payment",
        "SF2025010100000001",
        4990,
        True,
        MCHID,
        APPID,
    )
    assert n.transaction_id == "1004400740201409030005092168"
    assert n.occurred_at == dt.datetime(2025, 1, 1, 2, 30, tzinfo=dt.UTC)
    assert "sign" not in n.payload


def test_payment_notification_without_sign_type_uses_the_configured_one() -> None:
    body = FakeWeChatPay().v2_payment_notification("SF1", 100, sign_type="HMAC-SHA256", declare_sign_type=False)
    assert make_provider(sign_type="HMAC-SHA256").verify_notification(headers={}, body=body).amount_fen == 100


def test_refund_notification_is_decrypted_with_md5_of_the_key() -> None:
    body = FakeWeChatPay().v2_refund_notification("SF1", "RF1", 1000, 4990, refund_id="50001")

    n = make_provider().verify_notification(headers={}, body=body)

    assert (n.kind, n.order_no, n.refund_no, n.provider_refund_id, n.amount_fen, n.succeeded) == (
        "refund",
        "SF1",
        "RF1",
        "50001",
        1000,
        True,
    )
    assert (n.mchid, n.appid) == (MCHID, APPID)


def test_refund_closed_is_a_failed_refund() -> None:
    body = FakeWeChatPay().v2_refund_notification("SF1", "RF1", 1000, 4990, refund_status="REFUNDCLOSE")
    assert make_provider().verify_notification(headers={}, body=body).succeeded is False


def _forged(case: str) -> bytes:
    wechat = FakeWeChatPay()
    if case == "signed_with_another_key":
        return wechat.v2_payment_notification("SF1", 100, key="not-the-merchant-key")
    if case == "amount_changed_after_signing":
        return wechat.v2_payment_notification("SF1", 100).replace(b"[100]", b"[1]")
    if case == "unknown_sign_type":
        body = wechat.v2_payment_notification("SF1", 100, sign_type="MD5")
        return body.replace(b"<sign_type><![CDATA[MD5]]>", b"<sign_type><![CDATA[SHA1]]>")
    if case == "no_sign":
        body = wechat.v2_payment_notification("SF1", 100)
        start = body.index(b"<sign>")
        return body[:start] + body[body.index(b"</sign>") + len(b"</sign>") :]
    if case == "doctype":
        return b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e "x">]><xml><return_code>&e;</return_code></xml>'
    if case == "external_entity":
        return b'<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml><return_code>SUCCESS</return_code></xml>'
    if case == "billion_laughs":
        return (
            b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b"<xml><return_code>&lol2;</return_code></xml>"
        )
    if case == "not_xml":
        return b"return_code=SUCCESS"
    if case == "too_large":
        return b"<xml><return_code>SUCCESS</return_code><pad>" + b"x" * 70_000 + b"</pad></xml>"
    if case == "return_code_fail":
        return xml({"return_code": "FAIL", "return_msg": "签名失败"})
    if case == "refund_req_info_with_another_key":
        return wechat.v2_refund_notification("SF1", "RF1", 1, 1, key="not-the-merchant-key")
    if case == "total_fee_not_a_number":
        fields = {"return_code": "SUCCESS", "appid": APPID, "mch_id": MCHID, "result_code": "SUCCESS"}
        fields.update({"total_fee": "1.00", "transaction_id": "42", "out_trade_no": "SF1", "nonce_str": "n"})
        fields["sign"] = by_hand(fields, "MD5")
        return xml(fields)
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "signed_with_another_key",
        "amount_changed_after_signing",
        "unknown_sign_type",
        "no_sign",
        "doctype",
        "external_entity",
        "billion_laughs",
        "not_xml",
        "too_large",
        "return_code_fail",
        "refund_req_info_with_another_key",
        "total_fee_not_a_number",
    ],
)
def test_forged_or_unsafe_notifications_are_rejected(case: str) -> None:
    with pytest.raises(NotificationRejected):
        make_provider().verify_notification(headers={}, body=_forged(case))


def test_an_unsigned_return_code_is_quoted_short() -> None:
    """The refusal's text goes to the log before any signature was checked: a stranger's
    return_code is cut, not copied whole."""
    body = xml({"return_code": "13812345678 上海市浦东新区世纪大道100号" + "x" * 5000})
    with pytest.raises(NotificationRejected) as refused:
        make_provider().verify_notification(headers={}, body=body)
    assert len(str(refused.value)) < 80 and "x" * 50 not in str(refused.value)


def test_parse_xml_refuses_nested_documents() -> None:
    with pytest.raises(ValueError):
        parse_xml(b"<xml><a><b>1</b></a></xml>")


def test_acknowledgements_are_what_wechat_pay_expects() -> None:
    provider = make_provider()
    assert provider.acknowledge(ok=True) == (
        200,
        "text/xml",
        "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>",
    )
    assert SUCCESS_ACK in provider.acknowledge(ok=True)[2]
    status, content_type, body = provider.acknowledge(ok=False, message="签名失败")
    assert status == 400 and v2_parse(body.encode()) == {"return_code": "FAIL", "return_msg": "签名失败"}


# ---- calls to WeChat Pay ---------------------------------------------------------------------


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
async def test_jsapi_unifiedorder_is_signed_and_gives_signed_jsapi_params(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str], sign_type: str
) -> None:
    wechat, base_url = fake
    payment = await make_provider(http, base_url, sign_type=sign_type).create_payment(
        order_no="SF200",
        amount_fen=4990,
        description="苹果 ×2",
        openid="o_payer",
        expires_at=EXPIRES,
        notify_url=NOTIFY_URL,
    )

    (request,) = wechat.requests("/pay/unifiedorder")
    sent = request.data
    assert sent["sign"] == by_hand(sent | {"sign": ""}, sign_type)
    assert sent.get("sign_type", "MD5") == sign_type
    assert {k: sent[k] for k in ("appid", "mch_id", "out_trade_no", "total_fee", "trade_type", "openid")} == {
        "appid": APPID,
        "mch_id": MCHID,
        "out_trade_no": "SF200",
        "total_fee": "4990",
        "trade_type": "JSAPI",
        "openid": "o_payer",
    }
    assert sent["time_expire"] == "20300102110405" and sent["notify_url"] == NOTIFY_URL
    params = payment.jsapi_params
    assert payment.kind == "jsapi" and params is not None
    assert params["package"] == f"prepay_id={wechat.orders['SF200'].prepay_id}"
    assert params["signType"] == sign_type
    assert params["paySign"] == by_hand({k: v for k, v in params.items() if k != "paySign"}, sign_type)


async def test_native_unifiedorder_gives_a_code_url(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]
) -> None:
    wechat, base_url = fake
    payment = await make_provider(http, base_url).create_payment(
        order_no="SF201", amount_fen=1, description="x", openid=None, expires_at=EXPIRES, notify_url=NOTIFY_URL
    )
    assert payment.kind == "native" and payment.code_url == wechat.orders["SF201"].code_url
    assert wechat.requests("/pay/unifiedorder")[0].data["product_id"] == "SF201"


async def test_close_and_refund(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    wechat, base_url = fake
    provider = make_provider(http, base_url)
    await provider.create_payment(
        order_no="SF202", amount_fen=5000, description="x", openid="o", expires_at=EXPIRES, notify_url=NOTIFY_URL
    )
    wechat.pay("SF202")
    await provider.refund(
        order_no="SF202", refund_no="RF2", amount_fen=1200, total_fen=5000, reason="坏果", notify_url=NOTIFY_URL
    )
    await provider.close_payment(order_no="SF203")
    await provider.close_payment(order_no="SF203")  # ORDERCLOSED the second time: fine

    (refund,) = wechat.requests("/secapi/pay/refund")
    assert {k: refund.data[k] for k in ("out_trade_no", "out_refund_no", "total_fee", "refund_fee")} == {
        "out_trade_no": "SF202",
        "out_refund_no": "RF2",
        "total_fee": "5000",
        "refund_fee": "1200",
    }
    assert len(wechat.requests("/pay/closeorder")) == 2


async def test_wrong_key_gets_return_code_fail(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    _wechat, base_url = fake
    with pytest.raises(PaymentError) as caught:
        await make_provider(http, base_url, key="x" * 32).close_payment(order_no="SF1")
    assert (caught.value.code, caught.value.message) == ("FAIL", "签名错误")


async def test_err_code_becomes_the_payment_error(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    wechat, base_url = fake
    wechat.fail_next(Failure(status=200, code="ORDERPAID", message="该订单已支付"))
    with pytest.raises(PaymentError) as caught:
        await make_provider(http, base_url).close_payment(order_no="SF1")
    assert (caught.value.code, caught.value.message) == ("ORDERPAID", "该订单已支付")
    assert caught.value.outcome_unknown is False
    assert len(wechat.received) == 1

    wechat.fail_next(Failure(status=200, code="SYSTEMERROR", message="系统超时"))
    with pytest.raises(PaymentError) as caught:
        await make_provider(http, base_url).close_payment(order_no="SF1")
    assert caught.value.outcome_unknown is True  # "call again with the same fields"


async def test_server_errors_are_retried_then_reported(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]
) -> None:
    wechat, base_url = fake
    wechat.fail_next(Failure(status=502))
    await make_provider(http, base_url).close_payment(order_no="SF1")
    assert len(wechat.received) == 2

    wechat.fail_next(Failure(status=503), times=3)
    with pytest.raises(PaymentError, match="HTTP_503"):
        await make_provider(http, base_url).close_payment(order_no="SF1")


async def test_answer_with_a_bad_sign_is_refused(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    wechat, base_url = fake
    wechat.fail_next(Failure(forge_signature=True))
    with pytest.raises(PaymentError) as caught:
        await make_provider(http, base_url).close_payment(order_no="SF1")
    assert caught.value.code == "RESPONSE_SIGNATURE"


async def test_slow_answers_time_out(http: aiohttp.ClientSession, fake: tuple[FakeWeChatPay, str]) -> None:
    wechat, base_url = fake
    wechat.fail_next(Failure(delay=1.0), times=3)
    with pytest.raises(PaymentError, match="TIMEOUT"):
        await make_provider(http, base_url, timeout=0.2).close_payment(order_no="SF1")


# ---- the client certificate of /secapi/ ---------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MCHID)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "apiclient_cert.pem", directory / "apiclient_key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_client_certificate_is_loaded_into_an_ssl_context(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = client_ssl_context(PayConfig(client_cert_path=str(cert), client_key_path=str(key)))
    assert isinstance(context, ssl.SSLContext)
    assert client_ssl_context(PayConfig()) is None
    with pytest.raises(ConfigError):
        client_ssl_context(PayConfig(client_cert_path=str(cert)))
    with pytest.raises(ConfigError):
        client_ssl_context(PayConfig(client_cert_path=str(key), client_key_path=str(cert)))

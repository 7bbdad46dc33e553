"""WeChat Pay API v3 (the primary provider): JSON over HTTPS, RSA signatures, AES-GCM resources.

Requests carry `Authorization: WECHATPAY2-SHA256-RSA2048 ...` signed with the merchant
private key over "METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nBODY\\n". Answers and notifications
are signed by WeChat Pay with the platform key (public-key mode: `Wechatpay-Serial` is
the platform public key id) over "TIMESTAMP\\nNONCE\\nBODY\\n"; notifications carry their
data in an AEAD_AES_256_GCM `resource` encrypted with the APIv3 key.

Signing, verification and decryption are pure functions on `cryptography` keys; the
HTTP calls are aiohttp (see `send_with_retries`), so nothing blocks the event loop.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from commerce.payments.base import (
    MAX_CLOCK_SKEW_SECONDS,
    HttpAnswer,
    Notification,
    NotificationRejected,
    PaymentError,
    PaymentRequest,
    clip,
    lower_keys,
    nonce,
    send_with_retries,
)

log = logging.getLogger(__name__)

NAME = "wechatpay_v3"
SCHEMA = "WECHATPAY2-SHA256-RSA2048"
CHINA = timezone(timedelta(hours=8))


# ---- pure crypto helpers (also what the tests check against) -----------------------------


def rsa_sign(private_key: RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: every v3 signature."""
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(public_key: RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def request_message(method: str, url_path: str, timestamp: str, nonce_str: str, body: bytes) -> bytes:
    return f"{method}\n{url_path}\n{timestamp}\n{nonce_str}\n".encode() + body + b"\n"


def answer_message(timestamp: str, nonce_str: str, body: bytes) -> bytes:
    """What WeChat Pay signs in its answers and notifications."""
    return f"{timestamp}\n{nonce_str}\n".encode() + body + b"\n"


def authorization(
    *, mchid: str, serial_no: str, private_key: RSAPrivateKey, method: str, url_path: str, body: bytes
) -> str:
    timestamp, nonce_str = str(int(time.time())), nonce()
    signature = rsa_sign(private_key, request_message(method, url_path, timestamp, nonce_str, body))
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce_str}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def aes_gcm_decrypt(api_v3_key: str, *, nonce_str: str, ciphertext: str, associated_data: str) -> bytes:
    return AESGCM(api_v3_key.encode()).decrypt(
        nonce_str.encode(), base64.b64decode(ciphertext, validate=True), associated_data.encode()
    )


def jsapi_sign(private_key: RSAPrivateKey, *, appid: str, timestamp: str, nonce_str: str, package: str) -> str:
    return rsa_sign(private_key, f"{appid}\n{timestamp}\n{nonce_str}\n{package}\n".encode())


def load_private_key(pem: bytes) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("the merchant private key must be an RSA key")
    return key


def load_public_key(pem: bytes) -> RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the platform public key must be an RSA key")
    return key


def rfc3339(moment: datetime) -> str:
    """WeChat Pay's time format, in China time: 2018-06-08T10:34:56+08:00."""
    return moment.astimezone(CHINA).isoformat(timespec="seconds")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=CHINA)


# ---- the provider -------------------------------------------------------------------------


class WeChatPayV3Provider:
    name = NAME

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        mchid: str,
        appid: str,
        api_v3_key: str,
        merchant_serial_no: str,
        private_key: RSAPrivateKey,
        platform_public_key: RSAPublicKey,
        platform_public_key_id: str,
        base_url: str = "https://api.mch.weixin.qq.com",
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(api_v3_key.encode()) != 32:
            raise ValueError("the APIv3 key must be 32 bytes")
        self._http = http
        self.mchid = mchid
        self.appid = appid
        self._api_v3_key = api_v3_key
        self._serial_no = merchant_serial_no
        self._private_key = private_key
        self._platform_key = platform_public_key
        self._platform_key_id = platform_public_key_id
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout_seconds
        self._clock = clock

    # -- outbound -------------------------------------------------------------------------

    async def create_payment(
        self,
        *,
        order_no: str,
        amount_fen: int,
        description: str,
        openid: str | None,
        expires_at: datetime,
        notify_url: str,
        return_url: str = "",
    ) -> PaymentRequest:
        body: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "description": clip(description, 127),
            "out_trade_no": order_no,
            "time_expire": rfc3339(expires_at),
            "notify_url": notify_url,
            "amount": {"total": amount_fen, "currency": "CNY"},
        }
        if openid is None:
            data = await self._call("POST", "/v3/pay/transactions/native", body)
            code_url = data.get("code_url")
            if not isinstance(code_url, str) or not code_url:
                raise PaymentError("BAD_RESPONSE", "native prepay answer has no code_url", outcome_unknown=True)
            return PaymentRequest(provider=NAME, order_no=order_no, kind="native", code_url=code_url)
        body["payer"] = {"openid": openid}
        data = await self._call("POST", "/v3/pay/transactions/jsapi", body)
        prepay_id = data.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise PaymentError("BAD_RESPONSE", "jsapi prepay answer has no prepay_id", outcome_unknown=True)
        return PaymentRequest(
            provider=NAME, order_no=order_no, kind="jsapi", jsapi_params=self.jsapi_params(prepay_id)
        )

    def jsapi_params(self, prepay_id: str) -> dict[str, str]:
        """The arguments of `WeixinJSBridge.invoke("getBrandWCPayRequest", ...)`."""
        timestamp, nonce_str, package = str(int(self._clock())), nonce(), f"prepay_id={prepay_id}"
        return {
            "appId": self.appid,
            "timeStamp": timestamp,
            "nonceStr": nonce_str,
            "package": package,
            "signType": "RSA",
            "paySign": jsapi_sign(
                self._private_key, appid=self.appid, timestamp=timestamp, nonce_str=nonce_str, package=package
            ),
        }

    async def close_payment(self, *, order_no: str) -> None:
        await self._call(
            "POST", f"/v3/pay/transactions/out-trade-no/{quote(order_no, safe='')}/close", {"mchid": self.mchid}
        )

    async def refund(
        self,
        *,
        order_no: str,
        refund_no: str,
        amount_fen: int,
        total_fen: int,
        reason: str,
        notify_url: str,
        transaction_id: str = "",
    ) -> None:
        body: dict[str, Any] = (
            {"transaction_id": transaction_id} if transaction_id else {"out_trade_no": order_no}
        )
        body.update(
            {
                "out_refund_no": refund_no,
                "notify_url": notify_url,
                "amount": {"refund": amount_fen, "total": total_fen, "currency": "CNY"},
            }
        )
        if reason:
            body["reason"] = clip(reason, 80)
        data = await self._call("POST", "/v3/refund/domestic/refunds", body)
        if data.get("status") in ("CLOSED", "ABNORMAL"):
            raise PaymentError(f"REFUND_{data['status']}", "the refund was not accepted")

    async def aclose(self) -> None:
        return None

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        url = self._base_url + path
        url_path = urlsplit(url).path  # the signed path: what the server sees, with any base path

        def build() -> tuple[dict[str, str], bytes]:
            headers = {
                "Authorization": authorization(
                    mchid=self.mchid,
                    serial_no=self._serial_no,
                    private_key=self._private_key,
                    method=method,
                    url_path=url_path,
                    body=body,
                ),
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": "storefront-wechatpay-v3",
                "Wechatpay-Serial": self._platform_key_id,
            }
            return headers, body

        # Every v3 call we make is idempotent: prepay with identical fields returns the same
        # prepay_id, close is a no-op the second time, refunds de-duplicate on out_refund_no.
        answer = await send_with_retries(
            self._http, method=method, url=url, build=build, timeout_seconds=self._timeout, idempotent=True
        )
        if answer.status >= 300:
            raise _error(answer)
        self._verify_answer(answer)
        if not answer.body:
            return {}
        try:
            data = json.loads(answer.body)
        except ValueError:
            raise PaymentError(
                "BAD_RESPONSE", "answer is not JSON", status=answer.status, outcome_unknown=True
            ) from None
        if not isinstance(data, dict):
            raise PaymentError(
                "BAD_RESPONSE", "answer is not a JSON object", status=answer.status, outcome_unknown=True
            )
        return data

    def _verify_answer(self, answer: HttpAnswer) -> None:
        """A success answer must be signed by the platform key: anything else could be forged."""
        try:
            self._verify_signature(answer.headers, answer.body, check_freshness=False)
        except NotificationRejected as exc:
            raise PaymentError(
                "RESPONSE_SIGNATURE", str(exc), status=answer.status, outcome_unknown=True
            ) from None

    def _verify_signature(self, headers: Mapping[str, str], body: bytes, *, check_freshness: bool) -> None:
        h = lower_keys(headers)
        timestamp = h.get("wechatpay-timestamp", "")
        nonce_str = h.get("wechatpay-nonce", "")
        signature = h.get("wechatpay-signature", "")
        serial = h.get("wechatpay-serial", "")
        if not (timestamp and nonce_str and signature and serial):
            raise NotificationRejected("missing Wechatpay-* signature headers")
        if serial != self._platform_key_id:
            raise NotificationRejected("signed by an unknown platform key")
        if check_freshness:
            try:
                skew = abs(self._clock() - int(timestamp))
            except ValueError:
                raise NotificationRejected("malformed Wechatpay-Timestamp") from None
            if skew > MAX_CLOCK_SKEW_SECONDS:
                raise NotificationRejected("stale Wechatpay-Timestamp")
        if not rsa_verify(self._platform_key, answer_message(timestamp, nonce_str, body), signature):
            raise NotificationRejected("bad Wechatpay-Signature")

    # -- inbound --------------------------------------------------------------------------

    def verify_notification(self, *, headers: Mapping[str, str], body: bytes) -> Notification:
        self._verify_signature(headers, body, check_freshness=True)
        try:
            envelope = json.loads(body)
            event_type = envelope["event_type"]
            resource = envelope["resource"]
            if resource["algorithm"] != "AEAD_AES_256_GCM":
                raise NotificationRejected(f"unknown algorithm {resource['algorithm']!r}")
            plain = aes_gcm_decrypt(
                self._api_v3_key,
                nonce_str=resource["nonce"],
                ciphertext=resource["ciphertext"],
                associated_data=resource.get("associated_data") or "",
            )
            data = json.loads(plain)
        except NotificationRejected:
            raise
        except InvalidTag:
            raise NotificationRejected("resource does not decrypt with the APIv3 key") from None
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise NotificationRejected(f"malformed notification: {exc.__class__.__name__}") from None
        if not isinstance(data, dict) or not isinstance(event_type, str):
            raise NotificationRejected("malformed notification resource")
        if event_type.startswith("TRANSACTION."):
            return _payment(data)
        if event_type.startswith("REFUND."):
            return _refund(data)
        raise NotificationRejected(f"unknown event_type {event_type!r}")

    def acknowledge(self, *, ok: bool, message: str = "") -> tuple[int, str, str]:
        if ok:
            return 204, "", ""  # "接收成功：HTTP应答状态码需返回200或204，无需返回应答报文"
        body = json.dumps({"code": "FAIL", "message": message or "失败"}, ensure_ascii=False)
        return 400, "application/json", body


def _error(answer: HttpAnswer) -> PaymentError:
    code, message = f"HTTP_{answer.status}", ""
    try:
        data = json.loads(answer.body)
        if isinstance(data, dict):
            code = str(data.get("code") or code)
            message = str(data.get("message") or "")
    except ValueError:
        pass
    # 4xx: WeChat Pay refused (nothing done); 5xx after our retries: it may have been done
    return PaymentError(code, message, status=answer.status, outcome_unknown=answer.status >= 500)


def _text(data: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise NotificationRejected(f"notification field {key!r} is missing or not text")
    return value


def _fen(amount: Any, key: str) -> int:
    value = amount.get(key) if isinstance(amount, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise NotificationRejected(f"notification amount.{key} is missing or not a whole number of fen")
    return value


def _payment(data: dict[str, Any]) -> Notification:
    return Notification(
        kind="payment",
        provider=NAME,
        order_no=_text(data, "out_trade_no"),
        amount_fen=_fen(data.get("amount"), "total"),
        succeeded=_text(data, "trade_state") == "SUCCESS",
        mchid=_text(data, "mchid"),
        appid=_text(data, "appid"),
        transaction_id=_text(data, "transaction_id"),
        occurred_at=parse_time(data.get("success_time")),
        payload=data,
    )


def _refund(data: dict[str, Any]) -> Notification:
    return Notification(
        kind="refund",
        provider=NAME,
        order_no=_text(data, "out_trade_no"),
        amount_fen=_fen(data.get("amount"), "refund"),
        succeeded=_text(data, "refund_status") == "SUCCESS",
        mchid=_text(data, "mchid"),
        appid="",  # v3 refund notifications carry no appid
        transaction_id=_text(data, "transaction_id", required=False),
        refund_no=_text(data, "out_refund_no"),
        provider_refund_id=_text(data, "refund_id"),
        occurred_at=parse_time(data.get("success_time")),
        payload=data,
    )

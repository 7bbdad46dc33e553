"""WeChat Pay API v2 (legacy merchants): signed XML over HTTPS.

Every message is a flat `<xml>` of fields signed with the API key: the non-empty fields
sorted by name, `k=v` joined with `&`, then `&key=API_KEY`, hashed with MD5 or
HMAC-SHA256 (keyed with the API key), uppercase hex. We verify with our own code and
`hmac.compare_digest` (wechatpy checks only MD5, in variable time). Refund notifications
are not signed: their `req_info` is AES-256-ECB encrypted with md5(API key). ECB has no
MAC: its 16-byte blocks can be moved without the key and still decrypt to well-formed
XML, so what req_info holds is believed only in WeChat's shapes (ids, refund_status).

XML from outside is parsed with expat directly: DOCTYPE and ENTITY declarations are
refused, bodies are size-limited and only flat documents are accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn
from xml.parsers import expat

import aiohttp
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from commerce.payments.base import (
    MAX_BODY_BYTES,
    Notification,
    NotificationRejected,
    PaymentError,
    PaymentRequest,
    clip,
    nonce,
    send_with_retries,
)

log = logging.getLogger(__name__)

NAME = "wechatpay_v2"
SIGN_TYPES = ("MD5", "HMAC-SHA256")
# err_codes that mean "we do not know yet, call again with the same fields"
RETRY_WITH_SAME_FIELDS = frozenset({"SYSTEMERROR", "BIZERR_NEED_RETRY"})
# WeChat's order, refund and transaction numbers: "数字、大小写字母_-|*@", at most 64
WECHAT_ID = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
REFUND_STATUSES = frozenset({"SUCCESS", "CHANGE", "REFUNDCLOSE"})
CHINA = timezone(timedelta(hours=8))
SUCCESS_ACK = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"


# ---- signing ------------------------------------------------------------------------------


def sign(params: Mapping[str, Any], *, key: str, sign_type: str) -> str:
    """The v2 signature: uppercase hex MD5 or HMAC-SHA256 over sorted non-empty params + &key=."""
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and str(params[k]) != "")
    text += f"&key={key}"
    if sign_type == "MD5":
        return hashlib.md5(text.encode()).hexdigest().upper()
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown sign_type {sign_type!r}")


def check_sign(params: Mapping[str, str], *, key: str, sign_type: str) -> bool:
    given = params.get("sign", "")
    if not given or sign_type not in SIGN_TYPES:
        return False
    return hmac.compare_digest(sign(params, key=key, sign_type=sign_type).encode(), given.encode())


# ---- XML ----------------------------------------------------------------------------------


class UnsafeXML(ValueError):
    pass


def parse_xml(body: bytes, *, limit: int = MAX_BODY_BYTES) -> dict[str, str]:
    """A flat `<xml><k>v</k>...</xml>` document as a dict; refuses DTDs, entities and nesting."""
    if len(body) > limit:
        raise UnsafeXML("XML body too large")
    fields: dict[str, str] = {}
    stack: list[str] = []
    text: list[str] = []

    def refuse(*_args: Any) -> NoReturn:
        raise UnsafeXML("DOCTYPE and ENTITY declarations are not allowed")

    def start(name: str, _attrs: Any) -> None:
        if len(stack) >= 2:
            raise UnsafeXML("nested XML is not expected here")
        stack.append(name)
        text.clear()

    def end(name: str) -> None:
        stack.pop()
        if len(stack) == 1:
            fields[name] = "".join(text)
        text.clear()

    def chars(data: str) -> None:
        if len(stack) == 2:
            text.append(data)

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise UnsafeXML(f"malformed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # a declared encoding expat cannot read (GBK, bogus)
        raise UnsafeXML(f"unreadable XML: {exc}") from None
    return fields


def to_xml(params: Mapping[str, Any]) -> str:
    parts = []
    for k, v in params.items():
        value = str(v).replace("]]>", "]]]]><![CDATA[>")
        parts.append(f"<{k}><![CDATA[{value}]]></{k}>")
    return "<xml>" + "".join(parts) + "</xml>"


def decrypt_req_info(req_info: str, *, key: str) -> bytes:
    """Refund notifications: base64 → AES-256-ECB with md5(API key) lower hex → PKCS#7."""
    aes_key = hashlib.md5(key.encode()).hexdigest().lower().encode()
    decryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).decryptor()
    padded = decryptor.update(base64.b64decode(req_info, validate=True)) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def china_time(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y%m%d%H%M%S")


def parse_china_time(value: str, fmt: str = "%Y%m%d%H%M%S") -> datetime | None:
    try:
        return datetime.strptime(value, fmt).replace(tzinfo=CHINA)
    except ValueError:
        return None


# ---- the provider -------------------------------------------------------------------------


class WeChatPayV2Provider:
    name = NAME

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        mchid: str,
        appid: str,
        api_key: str,
        sign_type: str = "HMAC-SHA256",
        base_url: str = "https://api.mch.weixin.qq.com",
        timeout_seconds: float = 10.0,
        client_ssl: ssl.SSLContext | None = None,
        client_ip: str = "127.0.0.1",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sign_type not in SIGN_TYPES:
            raise ValueError(f"sign_type must be one of {SIGN_TYPES}")
        self._http = http
        self.mchid = mchid
        self.appid = appid
        self._key = api_key
        self._sign_type = sign_type
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout_seconds
        self._client_ssl = client_ssl
        self._client_ip = client_ip
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
        params: dict[str, str] = {
            "body": clip(description, 40),
            "out_trade_no": order_no,
            "total_fee": str(amount_fen),
            "spbill_create_ip": self._client_ip,
            "time_expire": china_time(expires_at),
            "notify_url": notify_url,
            "trade_type": "JSAPI" if openid else "NATIVE",
        }
        if openid:
            params["openid"] = openid
        else:
            params["product_id"] = order_no
        data = await self._call("/pay/unifiedorder", params)
        if openid is None:
            code_url = data.get("code_url", "")
            if not code_url:
                raise PaymentError("BAD_RESPONSE", "unifiedorder answer has no code_url", outcome_unknown=True)
            return PaymentRequest(provider=NAME, order_no=order_no, kind="native", code_url=code_url)
        prepay_id = data.get("prepay_id", "")
        if not prepay_id:
            raise PaymentError("BAD_RESPONSE", "unifiedorder answer has no prepay_id", outcome_unknown=True)
        return PaymentRequest(
            provider=NAME, order_no=order_no, kind="jsapi", jsapi_params=self.jsapi_params(prepay_id)
        )

    def jsapi_params(self, prepay_id: str) -> dict[str, str]:
        params = {
            "appId": self.appid,
            "timeStamp": str(int(self._clock())),
            "nonceStr": nonce(),
            "package": f"prepay_id={prepay_id}",
            "signType": self._sign_type,
        }
        params["paySign"] = sign(params, key=self._key, sign_type=self._sign_type)
        return params

    async def close_payment(self, *, order_no: str) -> None:
        try:
            await self._call("/pay/closeorder", {"out_trade_no": order_no})
        except PaymentError as exc:
            if exc.code != "ORDERCLOSED":  # closing twice is fine
                raise

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
        params = {"transaction_id": transaction_id} if transaction_id else {"out_trade_no": order_no}
        params.update(
            {
                "out_refund_no": refund_no,
                "total_fee": str(total_fen),
                "refund_fee": str(amount_fen),
                "refund_desc": clip(reason, 80),
                "notify_url": notify_url,
            }
        )
        await self._call("/secapi/pay/refund", params, client_ssl=self._client_ssl)

    async def aclose(self) -> None:
        return None

    async def _call(
        self, path: str, params: dict[str, str], *, client_ssl: ssl.SSLContext | None = None
    ) -> dict[str, str]:
        fields = {"appid": self.appid, "mch_id": self.mchid, **params}
        if self._sign_type != "MD5":
            fields["sign_type"] = self._sign_type
        url = self._base_url + path

        def build() -> tuple[dict[str, str], bytes]:
            signed = {**fields, "nonce_str": nonce()}
            signed["sign"] = sign(signed, key=self._key, sign_type=self._sign_type)
            return {"Content-Type": "text/xml; charset=utf-8"}, to_xml(signed).encode()

        # unifiedorder with the same fields returns the same prepay_id, closeorder is a no-op
        # the second time and refunds de-duplicate on out_refund_no: all are safe to retry.
        answer = await send_with_retries(
            self._http,
            method="POST",
            url=url,
            build=build,
            timeout_seconds=self._timeout,
            idempotent=True,
            ssl=client_ssl,
        )
        if answer.status >= 300:
            raise PaymentError(
                f"HTTP_{answer.status}", path, status=answer.status, outcome_unknown=answer.status >= 500
            )
        try:
            data = parse_xml(answer.body)
        except UnsafeXML as exc:
            raise PaymentError("BAD_RESPONSE", str(exc), status=answer.status, outcome_unknown=True) from None
        if data.get("return_code") != "SUCCESS":
            raise PaymentError("FAIL", data.get("return_msg", ""), status=answer.status)
        if not check_sign(data, key=self._key, sign_type=self._sign_type):
            raise PaymentError(
                "RESPONSE_SIGNATURE", "answer signature does not match", status=answer.status, outcome_unknown=True
            )
        if data.get("result_code") != "SUCCESS":
            code = data.get("err_code") or "FAIL"
            raise PaymentError(
                code, data.get("err_code_des", ""), status=answer.status, outcome_unknown=code in RETRY_WITH_SAME_FIELDS
            )
        return data

    # -- inbound --------------------------------------------------------------------------

    def verify_notification(self, *, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            data = parse_xml(body)
        except UnsafeXML as exc:
            raise NotificationRejected(str(exc)) from None
        if data.get("return_code") != "SUCCESS":
            # unsigned yet: a stranger's text, quoted short (it goes to the log)
            raise NotificationRejected(f"return_code is {str(data.get('return_code'))[:40]!r}")
        if "req_info" in data:
            return self._refund(data)
        return self._payment(data)

    def _payment(self, data: dict[str, str]) -> Notification:
        declared = data.get("sign_type")
        if declared is not None:
            candidates: tuple[str, ...] = (declared,)
        else:  # the field is optional and means MD5; accept our configured type too
            candidates = tuple(dict.fromkeys((self._sign_type, "MD5")))
        if not any(check_sign(data, key=self._key, sign_type=t) for t in candidates):
            raise NotificationRejected("bad sign")
        return Notification(
            kind="payment",
            provider=NAME,
            order_no=_required(data, "out_trade_no"),
            amount_fen=_fen(data, "total_fee"),
            succeeded=data.get("result_code") == "SUCCESS",
            mchid=_required(data, "mch_id"),
            appid=_required(data, "appid"),
            transaction_id=_required(data, "transaction_id"),
            occurred_at=parse_china_time(data.get("time_end", "")),
            payload={k: v for k, v in data.items() if k != "sign"},
        )

    def _refund(self, data: dict[str, str]) -> Notification:
        try:
            inner = parse_xml(decrypt_req_info(data["req_info"], key=self._key))
        except (UnsafeXML, ValueError, binascii.Error):
            raise NotificationRejected("req_info does not decrypt with the API key") from None
        status = inner.get("refund_status", "")
        if status not in REFUND_STATUSES:  # not WeChat's: blocks of req_info were moved
            raise NotificationRejected(f"unknown refund_status {status[:40]!r}")
        return Notification(
            kind="refund",
            provider=NAME,
            order_no=_id(inner, "out_trade_no"),
            amount_fen=_fen(inner, "refund_fee"),
            succeeded=status == "SUCCESS",
            mchid=_required(data, "mch_id"),
            appid=_required(data, "appid"),
            transaction_id=_id(inner, "transaction_id", required=False),
            refund_no=_id(inner, "out_refund_no"),
            provider_refund_id=_id(inner, "refund_id"),
            occurred_at=parse_china_time(inner.get("success_time", ""), "%Y-%m-%d %H:%M:%S"),
            payload=inner,
        )

    def acknowledge(self, *, ok: bool, message: str = "") -> tuple[int, str, str]:
        if ok:
            return 200, "text/xml", SUCCESS_ACK
        return 400, "text/xml", to_xml({"return_code": "FAIL", "return_msg": message or "FAIL"})


def _required(data: Mapping[str, str], key: str) -> str:
    value = data.get(key, "")
    if not value:
        raise NotificationRejected(f"notification field {key!r} is missing")
    return value


def _id(data: Mapping[str, str], key: str, *, required: bool = True) -> str:
    value = _required(data, key) if required else data.get(key, "")
    if value and not WECHAT_ID.fullmatch(value):
        raise NotificationRejected(f"notification field {key!r} is not a WeChat Pay number")
    return value


def _fen(data: Mapping[str, str], key: str) -> int:
    value = data.get(key, "")
    if not value.isascii() or not value.isdigit():
        raise NotificationRejected(f"notification field {key!r} is not a whole number of fen")
    return int(value)

"""Alipay (支付宝), the second provider: mobile-site pay (`alipay.trade.wap.pay`) with RSA2.

Requests are form fields signed with the app's private key (SHA256withRSA over the
sorted `key=value` pairs joined with `&`, `sign` and empty values left out); the SDK
(python-alipay-sdk) builds and signs them and verifies notifications. The HTTP calls
are ours (aiohttp, `send_with_retries`): the SDK's own are blocking.

- Paying is a link: the signed `alipay.trade.wap.pay` fields on the gateway URL open
  Alipay's cashier in a browser (WeChat's in-app browser blocks it: the pay page says so).
  `time_expire` closes the trade when the order's reservation ends.
- The asynchronous notification is a form POST, verified with Alipay's public key; the
  merchant answers the plain text `success` (anything else: Alipay retries over 25 hours:
  4m, 10m, 10m, 1h, 2h, 6h, 15h). Its `app_id` and `seller_id` are checked by
  `PaymentService`, its `total_amount` against the order by `records.record_payment`.
- Query, close and refund are gateway calls answered with JSON whose
  `<method>_response` object is signed by Alipay (the signature covers its exact text).
- A refund's result is in its (signed) answer: `refund` returns it as a "refund"
  notification that the service records at once. Alipay also echoes a refund as a
  payment notification of the same trade (`refund_fee`, `out_biz_no`): recorded as a
  duplicate of the payment, it changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from commerce.money import MoneyError, format_yuan, parse_yuan
from commerce.payments.base import (
    Notification,
    NotificationRejected,
    PaymentError,
    PaymentRequest,
    clip,
    send_with_retries,
)
from commerce.payments.wechatpay_v3 import load_public_key, rsa_verify

log = logging.getLogger(__name__)

NAME = "alipay"
CHINA = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PAID_STATES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
SUCCESS_CODE = "10000"
# close: the buyer never opened the cashier, so Alipay never created the trade
NO_SUCH_TRADE = "ACQ.TRADE_NOT_EXIST"
AMOUNT = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?", re.ASCII)  # how Alipay writes yuan: "59.80"


def yuan(fen: int) -> str:
    """Alipay's amounts: yuan with two decimals ("12.30")."""
    return format_yuan(fen)


def fen_of(text: Any, key: str) -> int:
    if not isinstance(text, str) or not AMOUNT.fullmatch(text):
        raise NotificationRejected(f"{key} is missing or not yuan as Alipay writes them")
    try:
        return parse_yuan(text, max_decimals=2)
    except MoneyError:
        raise NotificationRejected(f"{key} is not an amount in yuan") from None


def china_time(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime(TIME_FORMAT)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=CHINA)
    except ValueError:
        return None


def signed_part(raw: str, response_key: str) -> str | None:
    """The exact text of `{"<response_key>": {...}, "sign": ...}`'s object: what Alipay signed."""
    at = raw.find(f'"{response_key}"')
    start = raw.find("{", at) if at >= 0 else -1
    if start < 0:
        return None
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(raw)):
        c = raw[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return raw[start : i + 1]
    return None


class AlipayProvider:
    name = NAME

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        app_id: str,
        seller_id: str,
        app_private_key_pem: str,
        alipay_public_key_pem: str,
        gateway_url: str = "https://openapi.alipay.com/gateway.do",
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # the SDK (and the crypto library under it, 4.5 MiB) is imported by a shop that takes Alipay only
        from alipay import AliPay

        self._http = http
        self.app_id = app_id
        self.seller_id = seller_id
        self._sdk = AliPay(
            appid=app_id,
            app_private_key_string=app_private_key_pem,
            alipay_public_key_string=alipay_public_key_pem,
            sign_type="RSA2",
        )
        self._public_key: RSAPublicKey = load_public_key(alipay_public_key_pem.encode())
        self._gateway = gateway_url
        self._timeout = timeout_seconds
        self._clock = clock

    # -- outbound -------------------------------------------------------------------------

    def _fields(self, method: str, biz: dict[str, Any], **extra: str) -> str:
        """The signed, url-encoded request fields (common parameters in Beijing time)."""
        now = datetime.fromtimestamp(self._clock(), CHINA).strftime(TIME_FORMAT)
        data = self._sdk.build_body(method, biz, timestamp=now, format="JSON", **extra)
        return str(self._sdk.sign_data(data))

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
        """The cashier link; no call is made (Alipay creates the trade when it is opened)."""
        biz = {
            "out_trade_no": order_no,
            "total_amount": yuan(amount_fen),
            "subject": clip(description, 256),
            "product_code": "QUICK_WAP_PAY",
            "time_expire": china_time(expires_at),
        }
        extra = {"return_url": return_url} if return_url else {}
        query = self._fields("alipay.trade.wap.pay", biz, notify_url=notify_url, **extra)
        return PaymentRequest(provider=NAME, order_no=order_no, kind="wap", pay_url=f"{self._gateway}?{query}")

    async def query_payment(self, *, order_no: str) -> Notification | None:
        """The trade as Alipay has it, as a payment notification (None: no such trade yet)."""
        try:
            data = await self._call("alipay.trade.query", {"out_trade_no": order_no})
        except PaymentError as exc:
            if exc.code == NO_SUCH_TRADE:
                return None
            raise
        return self._payment(data, source="query")

    async def close_payment(self, *, order_no: str) -> None:
        try:
            await self._call("alipay.trade.close", {"out_trade_no": order_no})
        except PaymentError as exc:
            if exc.code != NO_SUCH_TRADE:  # never opened: nothing to close
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
    ) -> Notification | None:
        """Refund at once; the signed answer is the result (None: not settled yet, asked again
        later with the same `out_request_no`, which Alipay takes as the same refund)."""
        biz: dict[str, Any] = {"trade_no": transaction_id} if transaction_id else {"out_trade_no": order_no}
        biz.update(refund_amount=yuan(amount_fen), out_request_no=refund_no)
        if reason:
            biz["refund_reason"] = clip(reason, 256)
        data = await self._call("alipay.trade.refund", biz)
        if data.get("fund_change") != "Y":  # a repeated request, or still being processed: ask
            found = await self._call(
                "alipay.trade.fastpay.refund.query",
                {**({"trade_no": transaction_id} if transaction_id else {"out_trade_no": order_no}),
                 "out_request_no": refund_no},
            )
            if found.get("refund_status") != "REFUND_SUCCESS":
                log.warning("alipay refund not settled yet: refund=%s", refund_no)
                return None
            data = {**data, **found}
        return Notification(
            kind="refund",
            provider=NAME,
            order_no=order_no,
            amount_fen=amount_fen,
            succeeded=True,
            mchid=self.seller_id,
            appid=self.app_id,
            transaction_id=str(data.get("trade_no", "")),
            refund_no=refund_no,
            provider_refund_id=f"{data.get('trade_no', '')}:{refund_no}"[:64],
            occurred_at=parse_time(data.get("gmt_refund_pay")),
            payload={k: v for k, v in data.items() if isinstance(v, str | int)},
        )

    async def aclose(self) -> None:
        return None

    async def _call(self, method: str, biz: dict[str, Any]) -> dict[str, Any]:
        body = self._fields(method, biz).encode()
        answer = await send_with_retries(
            self._http,
            method="POST",
            url=self._gateway,
            build=lambda: ({"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}, body),
            timeout_seconds=self._timeout,
            # query and close change nothing twice; refunds de-duplicate on out_request_no
            idempotent=True,
        )
        if answer.status >= 300:
            raise PaymentError(f"HTTP_{answer.status}", method, status=answer.status, outcome_unknown=True)
        return self._verified(answer.body, method)

    def _verified(self, raw_bytes: bytes, method: str) -> dict[str, Any]:
        key = method.replace(".", "_") + "_response"
        try:
            raw = raw_bytes.decode()
            envelope = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise PaymentError("BAD_RESPONSE", "answer is not JSON", outcome_unknown=True) from None
        part = signed_part(raw, key)
        data = envelope.get(key) if isinstance(envelope, dict) else None
        if not isinstance(data, dict) or part is None:
            error = envelope.get("error_response") if isinstance(envelope, dict) else None
            code = str(error.get("sub_code") or error.get("code")) if isinstance(error, dict) else "BAD_RESPONSE"
            raise PaymentError(code, f"{method}: no {key}", outcome_unknown=not isinstance(error, dict))
        signature = envelope.get("sign")
        if not isinstance(signature, str) or not rsa_verify(self._public_key, part.encode(), signature):
            # an error answer about our own signature comes unsigned: the call was refused
            if data.get("code") != SUCCESS_CODE and "sign" not in envelope:
                raise PaymentError(str(data.get("sub_code") or data.get("code")), str(data.get("sub_msg", "")))
            raise PaymentError("RESPONSE_SIGNATURE", method, outcome_unknown=True)
        if data.get("code") != SUCCESS_CODE:
            code = str(data.get("sub_code") or data.get("code") or "UNKNOWN")
            # 20000: Alipay's service is unavailable, the outcome is unknown; 40004: a business refusal
            raise PaymentError(code, str(data.get("sub_msg", "")), outcome_unknown=data.get("code") == "20000")
        return data

    # -- inbound --------------------------------------------------------------------------

    def verify_notification(self, *, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise NotificationRejected("not a utf-8 form") from None
        fields = dict(pairs)
        if len(fields) != len(pairs):
            raise NotificationRejected("a field is repeated")
        signature = fields.pop("sign", "")
        if not signature or fields.get("sign_type") != "RSA2":
            raise NotificationRejected("not signed with RSA2")
        # imported with the SDK by __init__: no cost here
        from alipay.exceptions import AliPayException

        try:
            good = self._sdk.verify(dict(fields), signature)
        except (AliPayException, ValueError, TypeError):
            good = False
        if not good:
            raise NotificationRejected("bad Alipay signature")
        return self._payment(fields, source="notify")

    def _payment(self, data: Mapping[str, Any], *, source: str) -> Notification:
        def text(key: str) -> str:
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise NotificationRejected(f"{source}: {key} is missing")
            return value

        status = text("trade_status")
        return Notification(
            kind="payment",
            provider=NAME,
            order_no=text("out_trade_no"),
            amount_fen=fen_of(data.get("total_amount"), "total_amount"),
            succeeded=status in PAID_STATES,
            # a query answer names neither: it is the answer to our own signed call
            mchid=text("seller_id") if source == "notify" else self.seller_id,
            appid=text("app_id") if source == "notify" else self.app_id,
            transaction_id=text("trade_no"),
            occurred_at=parse_time(data.get("gmt_payment") or data.get("send_pay_date")),
            payload=dict(data),
        )

    def acknowledge(self, *, ok: bool, message: str = "") -> tuple[int, str, str]:
        """Alipay reads the plain text `success`; anything else is a failure it retries."""
        if ok:
            return 200, "text/plain", "success"
        return 400, "text/plain", "fail"

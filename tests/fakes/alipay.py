"""A fake Alipay open-platform gateway for tests: real HTTP, real RSA2 signatures.

It follows the published protocol: one gateway URL (`/gateway.do`) taking form fields
(`app_id`, `method`, `charset`, `sign_type=RSA2`, `timestamp`, `version`, `biz_content`,
`sign`) signed with the app's private key over the sorted `key=value` pairs (`sign`
and empty values left out), which it checks with the app's PUBLIC key. The browser
opens `alipay.trade.wap.pay` (GET: the cashier); the server calls query, close,
refund and refund query (POST), answered with JSON whose `<method>_response` object is
signed with Alipay's key. Payments are notified as a form POST signed over the sorted
fields without `sign` and `sign_type`; an answer other than the plain text `success` is
retried on Alipay's schedule (8 notifications over about 25 hours: 4m, 10m, 10m, 1h,
2h, 6h, 15h after the first).

Signatures are computed with `cryptography` directly and nothing comes from
`commerce.payments` or the Alipay SDK: the fake is an independent witness. Keys are
generated at test time; no key files are committed.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CHINA = timezone(timedelta(hours=8))
APP_ID = "2021000123456789"
SELLER_ID = "2088102177846880"
# seconds waited before each of the 8 notifications (the first at once)
RETRY_SCHEDULE = (0, 4 * 60, 10 * 60, 10 * 60, 60 * 60, 2 * 60 * 60, 6 * 60 * 60, 15 * 60 * 60)
_ids = itertools.count(1)


@dataclass(frozen=True)
class Keys:
    app: rsa.RSAPrivateKey  # the merchant app's: signs requests
    alipay: rsa.RSAPrivateKey  # Alipay's: signs answers and notifications

    def write(self, directory: Path) -> tuple[Path, Path]:
        """PEM files as the merchant keeps them: (app private key, Alipay public key)."""
        directory.mkdir(parents=True, exist_ok=True)
        private, public = directory / "alipay_app_private.pem", directory / "alipay_public.pem"
        private.write_bytes(
            self.app.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        public.write_bytes(
            self.alipay.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return private, public


@functools.cache
def shared_keys() -> Keys:
    return Keys(
        app=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        alipay=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def content(fields: dict[str, str], *, leave_out: tuple[str, ...]) -> bytes:
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k not in leave_out and fields[k] != "").encode()


def rsa2(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_ok(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def now_text() -> str:
    return datetime.now(CHINA).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Trade:
    out_trade_no: str
    total_amount: str
    subject: str
    notify_url: str
    time_expire: str
    status: str = "WAIT_BUYER_PAY"
    trade_no: str = ""
    gmt_payment: str = ""
    refunds: dict[str, str] = field(default_factory=dict)  # out_request_no -> amount


@dataclass(frozen=True)
class Call:
    method: str
    biz: dict[str, Any]
    fields: dict[str, str]


class FakeAlipay:
    def __init__(self, keys: Keys | None = None) -> None:
        self.keys = keys or shared_keys()
        self.trades: dict[str, Trade] = {}
        self.calls: list[Call] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/gateway.do", self._browser)
        app.router.add_post("/gateway.do", self._server)
        return app

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # ---- requests -------------------------------------------------------------------------

    def _check(self, fields: dict[str, str]) -> dict[str, Any] | str:
        """The request's biz_content, or why Alipay refuses it (a sub_code)."""
        if fields.get("app_id") != APP_ID:
            return "isv.invalid-app-id"
        if fields.get("sign_type") != "RSA2" or fields.get("charset", "utf-8") != "utf-8":
            return "isv.invalid-signature-type"
        if not fields.get("timestamp") or fields.get("version") != "1.0":
            return "isv.missing-timestamp"
        signed = content(fields, leave_out=("sign",))
        if not rsa2_ok(self.keys.app.public_key(), signed, fields.get("sign", "")):
            return "isv.invalid-signature"
        try:
            biz = json.loads(fields.get("biz_content", ""))
        except ValueError:
            return "isv.invalid-biz-content"
        self.calls.append(Call(fields.get("method", ""), biz, fields))
        return biz if isinstance(biz, dict) else "isv.invalid-biz-content"

    async def _browser(self, request: web.Request) -> web.Response:
        """The buyer's browser opens the cashier (`alipay.trade.wap.pay`)."""
        fields = dict(request.query)
        biz = self._check(fields)
        if isinstance(biz, str) or fields.get("method") != "alipay.trade.wap.pay":
            return web.Response(status=400, text=f"错误代码 {biz}", content_type="text/html")
        if biz.get("product_code") != "QUICK_WAP_PAY":
            return web.Response(status=400, text="错误代码 invalid-product-code", content_type="text/html")
        trade = self.trades.get(biz["out_trade_no"])
        if trade is None:
            self.trades[biz["out_trade_no"]] = Trade(
                out_trade_no=biz["out_trade_no"],
                total_amount=biz["total_amount"],
                subject=biz["subject"],
                notify_url=fields.get("notify_url", ""),
                time_expire=biz.get("time_expire", ""),
            )
        elif trade.total_amount != biz["total_amount"]:
            return web.Response(status=400, text="错误代码 ACQ.CONTEXT_INCONSISTENT", content_type="text/html")
        return web.Response(text=f"<h1>支付宝收银台</h1><p>¥{biz['total_amount']}</p>", content_type="text/html")

    async def _server(self, request: web.Request) -> web.Response:
        fields = dict(parse_qsl(await request.text(), keep_blank_values=True))
        method = fields.get("method", "")
        biz = self._check(fields)
        if isinstance(biz, str):
            return self._answer(method, {"code": "40002", "msg": "Invalid Arguments", "sub_code": biz}, sign=False)
        handler = {
            "alipay.trade.query": self._query,
            "alipay.trade.close": self._close,
            "alipay.trade.refund": self._refund,
            "alipay.trade.fastpay.refund.query": self._refund_query,
        }.get(method)
        if handler is None:
            return self._answer(method, {"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid-method"})
        return self._answer(method, handler(biz))

    def _answer(self, method: str, data: dict[str, Any], *, sign: bool = True) -> web.Response:
        data.setdefault("msg", "Success")
        key = method.replace(".", "_") + "_response" if method else "error_response"
        part = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        raw = f'{{"{key}":{part}'
        if sign:
            raw += f',"sign":"{rsa2(self.keys.alipay, part.encode())}"'
        return web.Response(text=raw + "}", content_type="application/json", charset="utf-8")

    @staticmethod
    def _failed(sub_code: str) -> dict[str, Any]:
        return {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_code}

    def _query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None:
            return self._failed("ACQ.TRADE_NOT_EXIST")
        return {
            "code": "10000",
            "trade_no": trade.trade_no or f"pending-{trade.out_trade_no}",
            "out_trade_no": trade.out_trade_no,
            "trade_status": trade.status,
            "total_amount": trade.total_amount,
            "send_pay_date": trade.gmt_payment,
        }

    def _close(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None:
            return self._failed("ACQ.TRADE_NOT_EXIST")
        if trade.status != "WAIT_BUYER_PAY":
            return self._failed("ACQ.TRADE_STATUS_ERROR")
        trade.status = "TRADE_CLOSED"
        return {"code": "10000", "out_trade_no": trade.out_trade_no}

    def _find(self, biz: dict[str, Any]) -> Trade | None:
        if biz.get("trade_no"):
            return next((t for t in self.trades.values() if t.trade_no == biz["trade_no"]), None)
        return self.trades.get(biz.get("out_trade_no", ""))

    def _refund(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._find(biz)
        if trade is None:
            return self._failed("ACQ.TRADE_NOT_EXIST")
        if trade.status not in ("TRADE_SUCCESS", "TRADE_CLOSED") or not trade.trade_no:
            return self._failed("ACQ.TRADE_STATUS_ERROR")
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        again = request_no in trade.refunds
        if not again:
            refunded = sum(_fen(a) for a in trade.refunds.values())
            if refunded + _fen(biz["refund_amount"]) > _fen(trade.total_amount):
                return self._failed("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
            trade.refunds[request_no] = biz["refund_amount"]
            if sum(_fen(a) for a in trade.refunds.values()) == _fen(trade.total_amount):
                trade.status = "TRADE_CLOSED"
        return {
            "code": "10000",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "fund_change": "N" if again else "Y",  # a repeated request moves no money
            "refund_fee": _yuan(sum(_fen(a) for a in trade.refunds.values())),
            "gmt_refund_pay": now_text(),
        }

    def _refund_query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._find(biz)
        amount = trade.refunds.get(biz.get("out_request_no", "")) if trade is not None else None
        if trade is None or amount is None:
            return {"code": "10000"}  # no such refund: no refund_status
        return {
            "code": "10000",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "out_request_no": biz["out_request_no"],
            "refund_amount": amount,
            "total_amount": trade.total_amount,
            "refund_status": "REFUND_SUCCESS",
        }

    # ---- the buyer pays, Alipay notifies -------------------------------------------------------

    def pay(self, out_trade_no: str) -> Trade:
        trade = self.trades[out_trade_no]  # the buyer opened the cashier first
        assert trade.status == "WAIT_BUYER_PAY", trade.status
        trade.status = "TRADE_SUCCESS"
        trade.trade_no = f"2026120522001{next(_ids):015d}"
        trade.gmt_payment = now_text()
        return trade

    def notification(
        self, out_trade_no: str, *, key: rsa.RSAPrivateKey | None = None, **overrides: str
    ) -> dict[str, str]:
        """The signed form fields of the trade's notification (`overrides` are signed too;
        `key`: sign with another key, a forgery)."""
        trade = self.trades[out_trade_no]
        fields = {
            "notify_time": now_text(),
            "notify_type": "trade_status_sync",
            "notify_id": f"ac05099524730693a8b330c5ecf72da{next(_ids)}",
            "app_id": APP_ID,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_id": "2088102122524333",
            "seller_id": SELLER_ID,
            "trade_status": trade.status,
            "total_amount": trade.total_amount,
            "receipt_amount": trade.total_amount,
            "subject": trade.subject,
            "gmt_create": trade.gmt_payment,
            "gmt_payment": trade.gmt_payment,
        }
        fields.update(overrides)
        fields["sign"] = rsa2(key or self.keys.alipay, content(fields, leave_out=("sign", "sign_type")))
        return fields

    async def notify(
        self,
        out_trade_no: str,
        *,
        fields: dict[str, str] | None = None,
        url: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> list[tuple[int, str]]:
        """Deliver the notification until the merchant answers `success`, on Alipay's schedule;
        every attempt's (status, body)."""
        fields = fields or self.notification(out_trade_no)
        target = url or self.trades[out_trade_no].notify_url
        attempts: list[tuple[int, str]] = []
        for wait in RETRY_SCHEDULE:
            await sleep(wait)
            attempts.append(await post_form(target, fields))
            if attempts[-1] == (200, "success"):
                break
        return attempts


async def post_form(url: str, fields: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(
        url,
        data=urlencode(fields).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    ) as resp:
        return resp.status, await resp.text()


def _fen(text: str) -> int:
    whole, _, part = text.partition(".")
    return int(whole) * 100 + int(part.ljust(2, "0")[:2])


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"

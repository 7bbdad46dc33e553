"""A fake WeChat Pay server (API v3 and v2) for tests: real HTTP, real signatures.

It checks what a real server checks (our v3 `Authorization` header against the merchant
PUBLIC key, our v2 `sign` with the API key), answers in WeChat Pay's shapes and error
codes, signs its v3 answers with a platform key pair generated here, records every
request, can be told to fail (5xx, an error code, a slow answer, a forged signature),
and sends notifications the way WeChat Pay does (v3: AES-256-GCM resource + RSA
signature headers; v2: signed XML, refunds with an AES-256-ECB `req_info`).

Every signature here is computed with `cryptography`, `hashlib` and `hmac` directly and
nothing is imported from `commerce.payments`: the fake is an independent witness.
Keys are generated at test time; no key files are committed.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHINA = timezone(timedelta(hours=8))
MCHID = "1900000109"
APPID = "wx_test_app"
API_V3_KEY = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
API_V2_KEY = "v2KeyForTests0123456789abcdefghij"
MERCHANT_SERIAL_NO = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PLATFORM_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000001092025010100000000000001"
_ids = itertools.count(1)


# ---- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    merchant: rsa.RSAPrivateKey  # ours: signs requests and JSAPI params
    platform: rsa.RSAPrivateKey  # WeChat Pay's: signs answers and notifications

    def write(self, directory: Path) -> tuple[Path, Path]:
        """PEM files as a merchant downloads them: (apiclient_key.pem, pub_key.pem)."""
        directory.mkdir(parents=True, exist_ok=True)
        private = directory / "apiclient_key.pem"
        public = directory / "pub_key.pem"
        private.write_bytes(
            self.merchant.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        public.write_bytes(
            self.platform.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return private, public


@functools.cache
def shared_keys() -> Keys:
    """Two RSA-2048 key pairs, generated once per test session."""
    return Keys(
        merchant=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        platform=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def sha256_rsa(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def sha256_rsa_ok(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


# ---- v2 helpers (independent of the code under test) ---------------------------------------


def v2_sign(fields: dict[str, str], key: str, sign_type: str = "MD5") -> str:
    text = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k] != "")
    text += "&key=" + key
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()
    return hashlib.md5(text.encode()).hexdigest().upper()


def v2_xml(fields: dict[str, str], root: str = "xml") -> bytes:
    return (f"<{root}>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + f"</{root}>").encode()


def v2_parse(body: bytes) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ET.fromstring(body)}


def v2_encrypt_req_info(plain: bytes, key: str) -> str:
    aes_key = hashlib.md5(key.encode()).hexdigest().lower().encode()
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


# ---- the server -----------------------------------------------------------------------------


@dataclass
class Received:
    api: str  # "v3" | "v2"
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    data: dict[str, Any]


@dataclass
class Failure:
    status: int = 500
    code: str = "SYSTEM_ERROR"
    message: str = "系统错误"
    delay: float = 0.0  # > 0: answer (normally) only after this many seconds
    forge_signature: bool = False  # answer normally, signed with the wrong key


@dataclass
class FakeOrder:
    out_trade_no: str
    api: str
    amount_fen: int
    notify_url: str
    trade_type: str
    openid: str = ""
    prepay_id: str = ""
    code_url: str = ""
    state: str = "NOTPAY"  # NOTPAY | SUCCESS | CLOSED
    transaction_id: str = ""
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeWeChatPay:
    def __init__(
        self,
        *,
        keys: Keys | None = None,
        mchid: str = MCHID,
        appid: str = APPID,
        api_v3_key: str = API_V3_KEY,
        api_v2_key: str = API_V2_KEY,
        merchant_serial_no: str = MERCHANT_SERIAL_NO,
        platform_public_key_id: str = PLATFORM_PUBLIC_KEY_ID,
    ) -> None:
        self.keys = keys or shared_keys()
        self.mchid = mchid
        self.appid = appid
        self.api_v3_key = api_v3_key
        self.api_v2_key = api_v2_key
        self.merchant_serial_no = merchant_serial_no
        self.platform_public_key_id = platform_public_key_id
        self.received: list[Received] = []
        self.orders: dict[str, FakeOrder] = {}
        self._failures: deque[Failure] = deque()
        self._forge_next = False

    # -- control ----------------------------------------------------------------------------

    def fail_next(self, failure: Failure | None = None, *, times: int = 1) -> None:
        for _ in range(times):
            self._failures.append(failure or Failure())

    def requests(self, path_part: str = "") -> list[Received]:
        return [r for r in self.received if path_part in r.path]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/pay/transactions/jsapi", self._v3_prepay)
        app.router.add_post("/v3/pay/transactions/native", self._v3_prepay)
        app.router.add_post("/v3/pay/transactions/out-trade-no/{no}/close", self._v3_close)
        app.router.add_post("/v3/refund/domestic/refunds", self._v3_refund)
        app.router.add_post("/pay/unifiedorder", self._v2_unifiedorder)
        app.router.add_post("/pay/closeorder", self._v2_closeorder)
        app.router.add_post("/secapi/pay/refund", self._v2_refund)
        return app

    def pay(self, out_trade_no: str, *, transaction_id: str | None = None) -> FakeOrder:
        """The customer pays: the order becomes SUCCESS (send the notification separately)."""
        order = self.orders[out_trade_no]
        order.state = "SUCCESS"
        order.transaction_id = transaction_id or f"42000{next(_ids):023d}"
        return order

    # -- v3: requests -------------------------------------------------------------------------

    async def _v3_begin(self, request: web.Request) -> tuple[Received, web.Response | None]:
        body = await request.read()
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = {}
        received = Received("v3", request.method, request.path, dict(request.headers), body, data)
        self.received.append(received)
        failure = self._failures.popleft() if self._failures else None
        if failure is not None and failure.delay:
            await asyncio.sleep(failure.delay)
            failure = None
        if failure is not None and failure.forge_signature:
            self._forge_next = True
            failure = None
        if failure is not None:
            if failure.status >= 500 and failure.code == "SYSTEM_ERROR":
                return received, web.Response(status=failure.status, text="Internal Server Error")
            return received, self._v3_error(failure.status, failure.code, failure.message)
        if not self._v3_authorized(request, body):
            return received, self._v3_error(401, "SIGN_ERROR", "签名错误")
        return received, None

    def _v3_authorized(self, request: web.Request, body: bytes) -> bool:
        header = request.headers.get("Authorization", "")
        schema, _, params = header.partition(" ")
        if schema != "WECHATPAY2-SHA256-RSA2048":
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if fields.get("mchid") != self.mchid or fields.get("serial_no") != self.merchant_serial_no:
            return False
        try:
            if abs(time.time() - int(fields.get("timestamp", ""))) > 300:
                return False
        except ValueError:
            return False
        message = (
            f"{request.method}\n{request.path_qs}\n{fields['timestamp']}\n{fields.get('nonce_str', '')}\n".encode()
            + body
            + b"\n"
        )
        return sha256_rsa_ok(self.keys.merchant.public_key(), message, fields.get("signature", ""))

    def _v3_signed(self, status: int, payload: dict[str, Any] | None) -> web.Response:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        key = self.keys.platform
        if self._forge_next:
            self._forge_next = False
            key = self.keys.merchant  # not WeChat Pay's key: the client must refuse this answer
        headers = self.v3_signature_headers(body, key=key)
        headers["Request-ID"] = str(uuid.uuid4())
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, body=body, headers=headers, content_type="application/json")

    def _v3_error(self, status: int, code: str, message: str) -> web.Response:
        return self._v3_signed(status, {"code": code, "message": message})

    async def _v3_prepay(self, request: web.Request) -> web.Response:
        received, early = await self._v3_begin(request)
        if early is not None:
            return early
        data = received.data
        native = request.path.endswith("/native")
        amount = data.get("amount") or {}
        total = amount.get("total")
        required = ("appid", "mchid", "description", "out_trade_no", "notify_url")
        if any(not data.get(k) for k in required) or not isinstance(total, int) or total <= 0:
            return self._v3_error(400, "PARAM_ERROR", "参数错误")
        if not native and not (data.get("payer") or {}).get("openid"):
            return self._v3_error(400, "PARAM_ERROR", "JSAPI支付必须传openid")
        if data["mchid"] != self.mchid or data["appid"] != self.appid:
            return self._v3_error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        order = self.orders.get(data["out_trade_no"])
        if order is not None and order.state == "SUCCESS":
            return self._v3_error(403, "ORDERPAID", "该订单已支付")
        if order is not None and order.state == "CLOSED":
            return self._v3_error(400, "ORDER_CLOSED", "订单已关闭")
        if order is None:
            order = FakeOrder(
                out_trade_no=data["out_trade_no"],
                api="v3",
                amount_fen=total,
                notify_url=data["notify_url"],
                trade_type="NATIVE" if native else "JSAPI",
                openid=(data.get("payer") or {}).get("openid", ""),
                prepay_id=f"wx{next(_ids):030d}",
                code_url=f"weixin://wxpay/bizpayurl?pr={secrets.token_hex(4)}",
            )
            self.orders[order.out_trade_no] = order
        if native:
            return self._v3_signed(200, {"code_url": order.code_url})
        return self._v3_signed(200, {"prepay_id": order.prepay_id})

    async def _v3_close(self, request: web.Request) -> web.Response:
        received, early = await self._v3_begin(request)
        if early is not None:
            return early
        if received.data.get("mchid") != self.mchid:
            return self._v3_error(400, "PARAM_ERROR", "参数错误")
        order = self.orders.get(request.match_info["no"])
        if order is not None and order.state == "SUCCESS":
            return self._v3_error(400, "ORDERPAID", "订单已支付")
        if order is not None:
            order.state = "CLOSED"
        return self._v3_signed(204, None)

    async def _v3_refund(self, request: web.Request) -> web.Response:
        received, early = await self._v3_begin(request)
        if early is not None:
            return early
        data = received.data
        amount = data.get("amount") or {}
        if not data.get("out_refund_no") or not isinstance(amount.get("refund"), int):
            return self._v3_error(400, "PARAM_ERROR", "参数错误")
        order = self._find(data.get("out_trade_no"), data.get("transaction_id"))
        if order is None:
            return self._v3_error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if order.state != "SUCCESS":
            return self._v3_error(400, "INVALID_REQUEST", "订单未支付")
        refund, error = self._refund(order, data["out_refund_no"], amount["refund"], amount.get("total"))
        if error:
            return self._v3_error(403, error, "退款金额超过订单可退金额" if error == "NOT_ENOUGH" else error)
        return self._v3_signed(
            200,
            {
                "refund_id": refund["refund_id"],
                "out_refund_no": refund["out_refund_no"],
                "transaction_id": order.transaction_id,
                "out_trade_no": order.out_trade_no,
                "channel": "ORIGINAL",
                "status": "PROCESSING",
                "create_time": datetime.now(CHINA).isoformat(timespec="seconds"),
                "amount": {"refund": refund["amount"], "total": order.amount_fen, "currency": "CNY"},
            },
        )

    def _find(self, out_trade_no: str | None, transaction_id: str | None) -> FakeOrder | None:
        if transaction_id:
            return next((o for o in self.orders.values() if o.transaction_id == transaction_id), None)
        return self.orders.get(out_trade_no or "")

    def _refund(
        self, order: FakeOrder, out_refund_no: str, amount: int, total: Any
    ) -> tuple[dict[str, Any], str]:
        if out_refund_no in order.refunds:  # the same refund asked twice: the same answer
            return order.refunds[out_refund_no], ""
        if total is not None and int(total) != order.amount_fen:
            return {}, "INVALID_REQUEST"
        refunded = sum(r["amount"] for r in order.refunds.values())
        if amount <= 0 or refunded + amount > order.amount_fen:
            return {}, "NOT_ENOUGH"
        refund = {
            "out_refund_no": out_refund_no,
            "refund_id": f"50000{next(_ids):025d}",
            "amount": amount,
            "notify_url": "",
        }
        order.refunds[out_refund_no] = refund
        return refund, ""

    # -- v2: requests -------------------------------------------------------------------------

    async def _v2_begin(self, request: web.Request) -> tuple[Received, dict[str, str], web.Response | None]:
        body = await request.read()
        try:
            data = v2_parse(body)
        except ET.ParseError:
            data = {}
        received = Received("v2", request.method, request.path, dict(request.headers), body, data)
        self.received.append(received)
        sign_type = data.get("sign_type", "MD5")
        failure = self._failures.popleft() if self._failures else None
        if failure is not None and failure.delay:
            await asyncio.sleep(failure.delay)
            failure = None
        if failure is not None and failure.forge_signature:
            return received, data, self._v2_answer({"result_code": "SUCCESS"}, sign_type, key="forged")
        if failure is not None:
            if failure.status >= 500:
                return received, data, web.Response(status=failure.status, text="Internal Server Error")
            return received, data, self._v2_fail(failure.code, failure.message, sign_type)
        if not data:
            return received, data, self._v2_return_fail("XML格式错误")
        if data.get("appid") != self.appid or data.get("mch_id") != self.mchid:
            return received, data, self._v2_return_fail("appid和mch_id不匹配")
        if not hmac.compare_digest(v2_sign(data, self.api_v2_key, sign_type), data.get("sign", "")):
            return received, data, self._v2_return_fail("签名错误")
        return received, data, None

    def _v2_return_fail(self, message: str) -> web.Response:
        return web.Response(
            body=v2_xml({"return_code": "FAIL", "return_msg": message}), content_type="text/xml"
        )

    def _v2_answer(self, fields: dict[str, str], sign_type: str, *, key: str | None = None) -> web.Response:
        answer = {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "appid": self.appid,
            "mch_id": self.mchid,
            "nonce_str": secrets.token_hex(16),
            **fields,
        }
        answer["sign"] = v2_sign(answer, key or self.api_v2_key, sign_type)
        return web.Response(body=v2_xml(answer), content_type="text/xml")

    def _v2_fail(self, code: str, message: str, sign_type: str) -> web.Response:
        return self._v2_answer({"result_code": "FAIL", "err_code": code, "err_code_des": message}, sign_type)

    async def _v2_unifiedorder(self, request: web.Request) -> web.Response:
        received, data, early = await self._v2_begin(request)
        if early is not None:
            return early
        sign_type = data.get("sign_type", "MD5")
        trade_type = data.get("trade_type", "")
        required = ("body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url", "trade_type")
        if any(not data.get(k) for k in required) or not data["total_fee"].isdigit():
            return self._v2_fail("PARAM_ERROR", "参数错误", sign_type)
        if trade_type == "JSAPI" and not data.get("openid"):
            return self._v2_fail("PARAM_ERROR", "JSAPI支付必须传openid", sign_type)
        if trade_type == "NATIVE" and not data.get("product_id"):
            return self._v2_fail("PARAM_ERROR", "NATIVE支付必须传product_id", sign_type)
        order = self.orders.get(data["out_trade_no"])
        if order is not None and order.state == "SUCCESS":
            return self._v2_fail("ORDERPAID", "该订单已支付", sign_type)
        if order is not None and order.state == "CLOSED":
            return self._v2_fail("ORDERCLOSED", "订单已关闭", sign_type)
        if order is None:
            order = FakeOrder(
                out_trade_no=data["out_trade_no"],
                api="v2",
                amount_fen=int(data["total_fee"]),
                notify_url=data["notify_url"],
                trade_type=trade_type,
                openid=data.get("openid", ""),
                prepay_id=f"wx{next(_ids):030d}",
                code_url=f"weixin://wxpay/bizpayurl?pr={secrets.token_hex(4)}",
            )
            self.orders[order.out_trade_no] = order
        fields = {"result_code": "SUCCESS", "trade_type": trade_type, "prepay_id": order.prepay_id}
        if trade_type == "NATIVE":
            fields["code_url"] = order.code_url
        return self._v2_answer(fields, sign_type)

    async def _v2_closeorder(self, request: web.Request) -> web.Response:
        _received, data, early = await self._v2_begin(request)
        if early is not None:
            return early
        sign_type = data.get("sign_type", "MD5")
        order = self.orders.get(data.get("out_trade_no", ""))
        if order is not None and order.state == "SUCCESS":
            return self._v2_fail("ORDERPAID", "订单已支付", sign_type)
        if order is not None and order.state == "CLOSED":
            return self._v2_fail("ORDERCLOSED", "订单已关闭", sign_type)
        if order is not None:
            order.state = "CLOSED"
        return self._v2_answer({"result_code": "SUCCESS"}, sign_type)

    async def _v2_refund(self, request: web.Request) -> web.Response:
        _received, data, early = await self._v2_begin(request)
        if early is not None:
            return early
        sign_type = data.get("sign_type", "MD5")
        order = self._find(data.get("out_trade_no"), data.get("transaction_id"))
        if order is None:
            return self._v2_fail("ORDERNOTEXIST", "订单不存在", sign_type)
        if order.state != "SUCCESS" or not data.get("refund_fee", "").isdigit():
            return self._v2_fail("PARAM_ERROR", "参数错误", sign_type)
        refund, error = self._refund(
            order, data.get("out_refund_no", ""), int(data["refund_fee"]), data.get("total_fee")
        )
        if error:
            return self._v2_fail(error, "退款金额超过订单可退金额", sign_type)
        return self._v2_answer(
            {
                "result_code": "SUCCESS",
                "transaction_id": order.transaction_id,
                "out_trade_no": order.out_trade_no,
                "out_refund_no": refund["out_refund_no"],
                "refund_id": refund["refund_id"],
                "refund_fee": str(refund["amount"]),
                "total_fee": str(order.amount_fen),
            },
            sign_type,
        )

    # -- notifications ------------------------------------------------------------------------

    def v3_signature_headers(
        self,
        body: bytes,
        *,
        key: rsa.RSAPrivateKey | None = None,
        timestamp: int | None = None,
        serial: str | None = None,
    ) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16)
        signature = sha256_rsa(key or self.keys.platform, f"{ts}\n{nonce}\n".encode() + body + b"\n")
        return {
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": signature,
            "Wechatpay-Serial": self.platform_public_key_id if serial is None else serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    def v3_payment_resource(
        self,
        out_trade_no: str,
        amount_fen: int,
        *,
        transaction_id: str | None = None,
        trade_state: str = "SUCCESS",
        mchid: str | None = None,
        appid: str | None = None,
        openid: str = "o_payer",
    ) -> dict[str, Any]:
        return {
            "appid": self.appid if appid is None else appid,
            "mchid": self.mchid if mchid is None else mchid,
            "out_trade_no": out_trade_no,
            "transaction_id": transaction_id or f"42000{next(_ids):023d}",
            "trade_type": "JSAPI",
            "trade_state": trade_state,
            "trade_state_desc": "支付成功",
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": datetime.now(CHINA).isoformat(timespec="seconds"),
            "payer": {"openid": openid},
            "amount": {"total": amount_fen, "payer_total": amount_fen, "currency": "CNY", "payer_currency": "CNY"},
        }

    def v3_refund_resource(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        *,
        refund_id: str | None = None,
        transaction_id: str = "",
        refund_status: str = "SUCCESS",
        mchid: str | None = None,
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "mchid": self.mchid if mchid is None else mchid,
            "out_trade_no": out_trade_no,
            "transaction_id": transaction_id or f"42000{next(_ids):023d}",
            "out_refund_no": out_refund_no,
            "refund_id": refund_id or f"50000{next(_ids):025d}",
            "refund_status": refund_status,
            "user_received_account": "支付用户零钱",
            "amount": {"total": total_fen, "refund": refund_fen, "payer_total": total_fen, "payer_refund": refund_fen},
        }
        if refund_status == "SUCCESS":
            resource["success_time"] = datetime.now(CHINA).isoformat(timespec="seconds")
        return resource

    def v3_notification(
        self,
        resource: dict[str, Any],
        *,
        event_type: str | None = None,
        api_v3_key: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        timestamp: int | None = None,
        serial: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a v3 notification: the resource AES-256-GCM encrypted, then signed."""
        original_type = "refund" if "out_refund_no" in resource else "transaction"
        if event_type is None:
            event_type = "TRANSACTION.SUCCESS" if original_type == "transaction" else f"REFUND.{resource['refund_status']}"
        nonce = secrets.token_hex(6)  # 12 characters, as WeChat Pay's resource nonces
        aesgcm = AESGCM((api_v3_key or self.api_v3_key).encode())
        ciphertext = aesgcm.encrypt(
            nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), original_type.encode()
        )
        envelope = {
            "id": str(uuid.uuid4()),
            "create_time": datetime.now(CHINA).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功" if original_type == "transaction" else "退款状态改变通知",
            "resource": {
                "original_type": original_type,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": original_type,
                "nonce": nonce,
            },
        }
        body = json.dumps(envelope, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        headers.update(self.v3_signature_headers(body, key=key, timestamp=timestamp, serial=serial))
        return headers, body

    def v2_payment_notification(
        self,
        out_trade_no: str,
        amount_fen: int,
        *,
        transaction_id: str | None = None,
        sign_type: str = "MD5",
        declare_sign_type: bool = True,
        key: str | None = None,
        mchid: str | None = None,
        appid: str | None = None,
        result_code: str = "SUCCESS",
    ) -> bytes:
        fields = {
            "return_code": "SUCCESS",
            "appid": self.appid if appid is None else appid,
            "mch_id": self.mchid if mchid is None else mchid,
            "nonce_str": secrets.token_hex(16),
            "result_code": result_code,
            "openid": "o_payer",
            "is_subscribe": "Y",
            "trade_type": "JSAPI",
            "bank_type": "CMC",
            "total_fee": str(amount_fen),
            "fee_type": "CNY",
            "cash_fee": str(amount_fen),
            "transaction_id": transaction_id or f"42000{next(_ids):023d}",
            "out_trade_no": out_trade_no,
            "time_end": datetime.now(CHINA).strftime("%Y%m%d%H%M%S"),
        }
        if declare_sign_type:
            fields["sign_type"] = sign_type
        fields["sign"] = v2_sign(fields, key or self.api_v2_key, sign_type)
        return v2_xml(fields)

    def v2_refund_notification(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        *,
        refund_id: str | None = None,
        refund_status: str = "SUCCESS",
        key: str | None = None,
        mchid: str | None = None,
    ) -> bytes:
        inner = {
            "transaction_id": f"42000{next(_ids):023d}",
            "out_trade_no": out_trade_no,
            "refund_id": refund_id or f"50000{next(_ids):025d}",
            "out_refund_no": out_refund_no,
            "total_fee": str(total_fen),
            "refund_fee": str(refund_fen),
            "settlement_refund_fee": str(refund_fen),
            "refund_status": refund_status,
            "success_time": datetime.now(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "refund_recv_accout": "支付用户的零钱",
            "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
            "refund_request_source": "API",
        }
        req_info = v2_encrypt_req_info(v2_xml(inner, root="root"), key or self.api_v2_key)
        return v2_xml(
            {
                "return_code": "SUCCESS",
                "appid": self.appid,
                "mch_id": self.mchid if mchid is None else mchid,
                "nonce_str": secrets.token_hex(16),
                "req_info": req_info,
            }
        )

    async def notify_payment(self, out_trade_no: str, *, url: str | None = None) -> tuple[int, str]:
        """Pay the order here (if not yet) and send its notification, as WeChat Pay would."""
        order = self.orders[out_trade_no]
        if order.state != "SUCCESS":
            self.pay(out_trade_no)
        target = url or order.notify_url
        if order.api == "v3":
            resource = self.v3_payment_resource(
                out_trade_no, order.amount_fen, transaction_id=order.transaction_id, openid=order.openid
            )
            headers, body = self.v3_notification(resource)
        else:
            body = self.v2_payment_notification(
                out_trade_no, order.amount_fen, transaction_id=order.transaction_id, sign_type="HMAC-SHA256"
            )
            headers = {"Content-Type": "text/xml"}
        return await post(target, headers, body)

    async def notify_refund(
        self, out_refund_no: str, *, url: str, refund_status: str = "SUCCESS"
    ) -> tuple[int, str]:
        """Send the result of a refund this server accepted."""
        order = next(o for o in self.orders.values() if out_refund_no in o.refunds)
        refund = order.refunds[out_refund_no]
        if order.api == "v3":
            resource = self.v3_refund_resource(
                order.out_trade_no,
                out_refund_no,
                refund["amount"],
                order.amount_fen,
                refund_id=refund["refund_id"],
                transaction_id=order.transaction_id,
                refund_status=refund_status,
            )
            headers, body = self.v3_notification(resource)
        else:
            body = self.v2_refund_notification(
                order.out_trade_no,
                out_refund_no,
                refund["amount"],
                order.amount_fen,
                refund_id=refund["refund_id"],
                refund_status=refund_status,
            )
            headers = {"Content-Type": "text/xml"}
        return await post(url, headers, body)

    def adopt(
        self, out_trade_no: str, amount_fen: int, *, api: str = "v3", notify_url: str = "", openid: str = ""
    ) -> FakeOrder:
        """An order this server knows without a prepay call (e.g. paid through another channel)."""
        order = FakeOrder(out_trade_no, api, amount_fen, notify_url, "JSAPI", openid=openid)
        self.orders[out_trade_no] = order
        return order


async def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.text()

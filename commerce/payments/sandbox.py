"""The sandbox provider: development and demos without a merchant account.

No money moves and nothing leaves the machine, but simulated money takes the same
road as real money: the payment page's "simulate payment" button makes a signed
notification (module-level `build_notification`) and POSTs it over HTTP to our own notify URL,
and refunds post their "refund succeeded" notification to the refund notify URL
from a bounded background task. Notifications are JSON signed with
HMAC-SHA256(sandbox_secret) over "timestamp\\nbody" in `X-Sandbox-Signature`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from commerce.payments.base import (
    MAX_CLOCK_SKEW_SECONDS,
    Notification,
    NotificationRejected,
    PaymentRequest,
    lower_keys,
    nonce,
)

log = logging.getLogger(__name__)

NAME = "sandbox"
SIGNATURE_HEADER = "X-Sandbox-Signature"
TIMESTAMP_HEADER = "X-Sandbox-Timestamp"
MAX_PENDING_DELIVERIES = 100
DELIVERY_ATTEMPTS = 3


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedNotification:
    headers: dict[str, str]
    body: bytes


def build_notification(
    *,
    secret: str,
    order_no: str,
    amount_fen: int,
    kind: str = "payment",
    openid: str | None = None,
    transaction_id: str = "",
    refund_no: str = "",
    provider_refund_id: str = "",
    succeeded: bool = True,
    mchid: str = "",
    appid: str = "",
    clock: Callable[[], float] = time.time,
) -> SignedNotification:
    """A signed sandbox notification, as the sandbox "server" would send it.

    Empty `mchid` / `appid` mean "this shop's" (the provider fills in its own when verifying).
    """
    if kind == "payment" and not transaction_id:
        transaction_id = f"SB{nonce(24)}"
    data: dict[str, Any] = {
        "kind": kind,
        "order_no": order_no,
        "amount_fen": amount_fen,
        "succeeded": succeeded,
        "mchid": mchid,
        "appid": appid,
        "transaction_id": transaction_id,
        "refund_no": refund_no,
        "provider_refund_id": provider_refund_id,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    if openid:
        data["payer"] = {"openid": openid}
    body = json.dumps(data, ensure_ascii=False).encode()
    timestamp = str(int(clock()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
    return SignedNotification(headers, body)


class SandboxProvider:
    name = NAME

    def __init__(
        self,
        *,
        secret: str,
        mchid: str,
        appid: str,
        http: aiohttp.ClientSession | None = None,
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the sandbox provider needs a secret")
        self._secret = secret
        self.mchid = mchid
        self.appid = appid
        self._http = http
        self._timeout = timeout_seconds
        self._clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    # -- the provider interface -----------------------------------------------------------

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
        return PaymentRequest(provider=NAME, order_no=order_no, kind="sandbox")

    async def close_payment(self, *, order_no: str) -> None:
        return None

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
        """Every sandbox refund succeeds; its notification is posted in the background."""
        signed = build_notification(
            secret=self._secret,
            kind="refund",
            order_no=order_no,
            amount_fen=amount_fen,
            refund_no=refund_no,
            provider_refund_id=f"SBR{refund_no}",
            transaction_id=transaction_id,
            mchid=self.mchid,
            appid=self.appid,
            clock=self._clock,
        )
        if len(self._pending) >= MAX_PENDING_DELIVERIES:
            log.warning("sandbox: too many refund notifications in flight, delivering inline")
            await self._deliver(notify_url, signed.headers, signed.body)
            return
        task = asyncio.create_task(self._deliver(notify_url, signed.headers, signed.body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def verify_notification(self, *, headers: Mapping[str, str], body: bytes) -> Notification:
        h = lower_keys(headers)
        timestamp, given = h.get(TIMESTAMP_HEADER.lower(), ""), h.get(SIGNATURE_HEADER.lower(), "")
        if not timestamp or not given:
            raise NotificationRejected("missing sandbox signature headers")
        if not hmac.compare_digest(signature(self._secret, timestamp, body).encode(), given.encode()):
            raise NotificationRejected("bad sandbox signature")
        try:
            if abs(self._clock() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
                raise NotificationRejected("stale sandbox notification")
            data = json.loads(body)
            kind = data["kind"]
            amount = data["amount_fen"]
            if kind not in ("payment", "refund") or not isinstance(amount, int) or isinstance(amount, bool):
                raise NotificationRejected("malformed sandbox notification")
            return Notification(
                kind=kind,
                provider=NAME,
                order_no=str(data["order_no"]),
                amount_fen=amount,
                succeeded=bool(data["succeeded"]),
                # the HMAC proves we signed it; a notification naming no merchant or app is ours
                mchid=str(data.get("mchid") or self.mchid),
                appid=str(data.get("appid") or self.appid),
                transaction_id=str(data.get("transaction_id", "")),
                refund_no=str(data.get("refund_no", "")),
                provider_refund_id=str(data.get("provider_refund_id", "")),
                occurred_at=datetime.fromisoformat(data["occurred_at"]),
                payload=data,
            )
        except NotificationRejected:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise NotificationRejected(f"malformed sandbox notification: {exc.__class__.__name__}") from None

    def acknowledge(self, *, ok: bool, message: str = "") -> tuple[int, str, str]:
        if ok:
            return 200, "application/json", '{"code":"SUCCESS"}'
        return 400, "application/json", json.dumps({"code": "FAIL", "message": message or "FAIL"})

    async def aclose(self) -> None:
        """Wait (briefly) for refund notifications still being delivered."""
        if self._pending:
            _done, still = await asyncio.wait(set(self._pending), timeout=self._timeout)
            for task in still:
                task.cancel()

    # -- simulation -----------------------------------------------------------------------

    async def simulate_payment(self, *, order_no: str, amount_fen: int, notify_url: str) -> bool:
        """Pay without money, through our own notify URL (what the payment page's button does)."""
        signed = build_notification(
            secret=self._secret, order_no=order_no, amount_fen=amount_fen, clock=self._clock
        )
        return await self._post(notify_url, signed.headers, signed.body)

    async def _deliver(self, url: str, headers: dict[str, str], body: bytes) -> None:
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            if await self._post(url, headers, body):
                return
            await asyncio.sleep(0.2 * attempt)
        log.error("sandbox: refund notification was not acknowledged by %s", url)

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> bool:
        if self._http is None:
            raise RuntimeError("the sandbox provider needs an HTTP session to deliver notifications")
        try:
            async with self._http.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self._timeout)
            ) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("sandbox: notification to %s failed: %s", url, exc.__class__.__name__)
            return False

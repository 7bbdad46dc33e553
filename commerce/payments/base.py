"""The payment provider interface: what the shop asks of WeChat Pay, Alipay (or the sandbox).

A provider turns an order into a payment request the customer's browser can use,
closes and refunds payments, and verifies the notifications the provider sends back.
Providers know nothing about the database: `PaymentService` (service.py) does the
bookkeeping through `commerce.orders.placement`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl as ssl_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import aiohttp

log = logging.getLogger(__name__)

# A notification or provider answer larger than this is refused unread.
MAX_BODY_BYTES = 64 * 1024
# Notifications signed longer ago (or further ahead) than this are refused: replays.
MAX_CLOCK_SKEW_SECONDS = 300


@dataclass(frozen=True)
class PaymentRequest:
    """What the payment page needs to let the customer pay."""

    provider: str
    order_no: str
    kind: str  # "jsapi" | "native" | "sandbox" | "wap" (a link the browser opens: Alipay)
    jsapi_params: dict[str, str] | None = None  # appId, timeStamp, nonceStr, package, signType, paySign
    code_url: str | None = None
    pay_url: str | None = None  # "wap": the provider's cashier, signed


@dataclass(frozen=True)
class Notification:
    """A verified (signature checked, decrypted) notification from the provider.

    `amount_fen` is the paid amount for payments and the refunded amount for refunds.
    `appid` is empty for WeChat Pay v3 refund notifications, which carry none.
    """

    kind: str  # "payment" | "refund"
    provider: str
    order_no: str
    amount_fen: int
    succeeded: bool
    mchid: str
    appid: str
    transaction_id: str = ""
    refund_no: str = ""
    provider_refund_id: str = ""
    occurred_at: datetime | None = None  # success_time / time_end, when the provider says
    payload: dict[str, Any] = field(default_factory=dict)


class PaymentError(Exception):
    """A call to the provider failed: `code` is the provider's error code (or ours: NETWORK, TIMEOUT...).

    `outcome_unknown` is True when the provider may have done it all the same (timeout,
    network error, 5xx, an answer we cannot trust): retry with the same out_trade_no /
    out_refund_no, never treat it as "not done". False: the provider said no.
    """

    def __init__(
        self, code: str, message: str = "", *, status: int | None = None, outcome_unknown: bool = False
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.outcome_unknown = outcome_unknown


class NotificationRejected(Exception):
    """A notification failed verification (signature, decryption, freshness, shape): nothing is recorded."""


class PaymentProvider(Protocol):
    name: str

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
        """A JSAPI payment for `openid`, or a Native (QR code) payment when it is None.

        `return_url`: where a provider that takes the browser away (Alipay) sends it back."""
        ...

    async def close_payment(self, *, order_no: str) -> None: ...

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
        """Ask for a refund; its result arrives as a "refund" notification on `notify_url`,
        or is returned at once (a verified "refund" notification) by a provider whose
        answer settles it (Alipay).

        With `transaction_id` the refund targets that provider transaction (late payments).
        """
        ...

    def verify_notification(self, *, headers: Mapping[str, str], body: bytes) -> Notification: ...

    def acknowledge(self, *, ok: bool, message: str = "") -> tuple[int, str, str]:
        """(HTTP status, content type, body) exactly as the provider expects the answer."""
        ...

    async def aclose(self) -> None:
        """Finish background work (the sandbox's simulated notifications)."""
        ...


def nonce(length: int = 32) -> str:
    """A random string of letters and digits, as the providers' nonces are."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """Header lookup that does not care about case (plain dicts in tests, CIMultiDict in aiohttp)."""
    return {str(k).lower(): str(v) for k, v in headers.items()}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- outbound HTTP shared by the WeChat Pay providers ------------------------------------

RETRY_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes


async def send_with_retries(
    http: aiohttp.ClientSession,
    *,
    method: str,
    url: str,
    build: Callable[[], tuple[dict[str, str], bytes]],
    timeout_seconds: float,
    idempotent: bool,
    ssl: ssl_module.SSLContext | None = None,
) -> HttpAnswer:
    """One provider call: `build()` makes fresh headers and body for each attempt (new nonce).

    Network errors, timeouts and 5xx answers are retried with a short backoff, but only
    for idempotent calls (WeChat Pay de-duplicates on out_trade_no / out_refund_no);
    the last 5xx answer is returned for the caller to turn into a `PaymentError`.
    """
    attempts = RETRY_ATTEMPTS if idempotent else 1
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    for attempt in range(1, attempts + 1):
        headers, body = build()
        try:
            async with http.request(
                method, url, headers=headers, data=body, timeout=timeout, ssl=ssl if ssl is not None else True
            ) as resp:
                data = await resp.content.read(MAX_BODY_BYTES + 1)
                if len(data) > MAX_BODY_BYTES:
                    raise PaymentError(
                        "RESPONSE_TOO_LARGE", f"{method} {url}", status=resp.status, outcome_unknown=True
                    )
                answer = HttpAnswer(resp.status, lower_keys(resp.headers), data)
        except TimeoutError:
            if attempt == attempts:
                raise PaymentError(
                    "TIMEOUT", f"{method} {url} took longer than {timeout_seconds}s", outcome_unknown=True
                ) from None
        except aiohttp.ClientError as exc:
            if attempt == attempts:
                raise PaymentError(
                    "NETWORK", f"{method} {url}: {exc.__class__.__name__}", outcome_unknown=True
                ) from None
        else:
            if answer.status < 500 or attempt == attempts:
                return answer
        log.warning("payment provider call failed, retrying: %s %s (attempt %d)", method, url, attempt)
        await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
    raise AssertionError("unreachable")  # pragma: no cover

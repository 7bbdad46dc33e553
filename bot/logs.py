"""Structured logs: one JSON object a line, with the request id and a hashed openid.

Every record logged while a webhook request is handled (also in the task that
processes the message, which inherits the context) carries `request_id` and `user`,
an HMAC of the openid: lines of one customer can be followed without the raw openid
ever being written. Phone numbers and secrets are never passed to the logger.

The access log is ours too (`AccessLogger`): aiohttp's default writes whole request
lines, and our URLs carry links (`/pay/{token}`, `/export/{token}`), signatures and
openids in query strings. Each request gets one line with a redacted path
(`redact_path`). The formatters also keep what libraries put into their records out of
the logs: the raw request line aiohttp quotes when it cannot parse a request, the
client's address, and the bound values a database error quotes.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from types import TracebackType
from typing import ClassVar

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
USER: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="")

# attributes every LogRecord has; anything else came in through `extra=`
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "user"}

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


# Libraries that log the data they carry: aiosqlite writes every statement with its bound
# values (openids, phone numbers, addresses) at DEBUG; Tencent Cloud's SDK writes every
# request it sends (an SMS's phone number and one-time code) and every answer. Held at INFO unless someone sets
# them on purpose, as SQLAlchemy holds its own logger at WARNING (`database.echo` is that
# switch, for a developer's machine only).
DATA_LOGGERS = ("aiosqlite", "tencentcloud_sdk_common")
for _name in DATA_LOGGERS:
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.INFO)


def new_request_id() -> str:
    request_id = uuid.uuid4().hex[:12]
    REQUEST_ID.set(request_id)
    return request_id


def hash_openid(openid: str, *, key: bytes) -> str:
    return hmac.new(key, openid.encode(), hashlib.sha256).hexdigest()[:12]


def bind_user(openid: str, *, key: bytes) -> None:
    USER.set(hash_openid(openid, key=key))


# ---- paths in the access log ------------------------------------------------------------------

_LINK_HASH_LABEL = b"storefront access log: link segments"


def link_hash(segment: str, *, key: bytes) -> str:
    """`~` and 8 hex digits of a keyed hash of one path segment (a link's token or code):
    two lines about one link can be matched, and the link cannot be rebuilt from them.

    The key is derived from the signing key with its own label, so that these digits
    are never a prefix of a MAC the same key makes for something else (a link's signature).
    """
    sub_key = hmac.new(key, _LINK_HASH_LABEL, hashlib.sha256).digest()
    return "~" + hmac.new(sub_key, segment.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:8]


_FIXED_PATHS = frozenset({"/", "/wechat", "/healthz", "/metrics", "/dev/chat", "/dev/chat/send", "/dev/chat/outbox"})
_LINK_ROUTES = frozenset({"pay", "topup", "export", "ship", "live", "backup", "dashboard", "g", "r", "s"})  # the segment after these opens something
_PAY_ACTIONS = frozenset({"status", "jsapi", "simulate"})
_PAY_NOTIFY = frozenset({"notify", "refund-notify"})
_PROVIDERS = frozenset({"sandbox", "wechatpay_v3", "wechatpay_v2"})
_KNOWN_FIRST = frozenset({"wechat", "healthz", "metrics", "dev", "static", "products", *_LINK_ROUTES})
_PRODUCT_ID = re.compile(r"[1-9][0-9]{0,9}")
MORE = "…"


def redact_path(path: str, *, key: bytes | None) -> str:
    """The path as the access log shows it: never a query string, never a usable link.

    `/wechat`, `/healthz`, `/metrics`, the notification URLs and `/products/{id}` stay;
    the token or code of `/pay/…`, `/topup/…`, `/export/…`, `/ship/…`, `/live/…`, `/backup/…`, `/dashboard/…`, `/g/…`,
    `/r/…` and `/s/…` becomes
    `link_hash` (only `~` without a key); anything else keeps its first segment when it
    is one of ours, else that too becomes a hash: anyone can put anything in a path,
    a token or an openid included.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    if path in _FIXED_PATHS:
        return path

    def mark(segment: str) -> str:
        return link_hash(segment, key=key) if key else "~"

    first, *rest = path.removeprefix("/").split("/")
    if first == "pay" and len(rest) == 2 and rest[0] in _PAY_NOTIFY and rest[1] in _PROVIDERS:
        return path  # POST /pay/notify/{provider}: no secret in it
    if first in _LINK_ROUTES and rest and rest[0]:
        shown = f"/{first}/{mark(rest[0])}"
        tail = rest[1:]
        if not tail:
            return shown
        if first in ("pay", "topup") and len(tail) == 1 and tail[0] in _PAY_ACTIONS:
            return f"{shown}/{tail[0]}"
        if first in ("export", "backup") and tail == ["file"]:
            return f"{shown}/file"
        if first == "live" and len(tail) == 1 and tail[0] in ("events", "click"):
            return f"{shown}/{tail[0]}"
        return f"{shown}/{MORE}"
    if first == "products" and len(rest) == 1 and _PRODUCT_ID.fullmatch(rest[0]):
        return path  # a product id is public: it is in every product card
    if first in _KNOWN_FIRST:
        return f"/{first}/{MORE}" if rest else f"/{first}"
    return f"/{mark(first)}/{MORE}" if rest else f"/{mark(first)}"


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, redacted path, status, bytes, milliseconds, and the
    request id and hashed user when the handler set them (`ContextFilter` adds them; the
    access log is written in the request's own task, so it sees them).

    Never the query string, the User-Agent or the Referer. Not the client's address
    either: an IP address is personal data, and behind the reverse proxy it is the
    proxy's anyway; the proxy's own log is the place to investigate abuse.

    aiohttp builds the logger itself from (logger, log_format), so the key of the link
    hashes rides on the class: `web.run_app(app, access_log_class=AccessLogger.keyed(key))`.
    Without a key, link segments are hidden whole (`~`).
    """

    key: ClassVar[bytes] = b""

    @classmethod
    def keyed(cls, key: bytes) -> type[AccessLogger]:
        """A subclass that hashes with `key` (the signing key): no global state to set."""
        if not key:
            raise ValueError("the access log needs the signing key")
        return type(cls.__name__, (cls,), {"key": key})

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        try:
            method = request.method if request.method in _METHODS else "OTHER"
            path = redact_path(request.path, key=self.key or None)
            status, size, ms = response.status, response.body_length, round(time * 1000, 1)
            self.logger.info(
                "%s %s %s %sB %sms", method, path, status, size, ms,
                extra={"method": method, "path": path, "status": status, "bytes": size, "ms": ms},
            )
        except Exception as exc:  # never fail a request, never quote what failed
            self.logger.error("access log line could not be written: %s", type(exc).__name__)


# ---- formatting ------------------------------------------------------------------------------------

_MOBILE = re.compile(r"(?<![0-9A-Za-z+])(?:\+?86[- ]?)?1[3-9][0-9]{9}(?![0-9A-Za-z])")  # a mainland mobile number
_QUOTED_VALUES = (
    (re.compile(r"^(\s*)\[parameters: .*$", re.M), r"\1[parameters: not logged]"),  # SQLAlchemy
    (re.compile(r"^(\s*)DETAIL: .*$", re.M), r"\1DETAIL: not logged"),  # PostgreSQL: Key (phone)=(…)
    (re.compile(r"(invalid input for query argument \$\d+): .*$", re.M), r"\1: not logged"),  # asyncpg
)


def scrub(text: str) -> str:
    """Take out what a library's error text quotes of the data: the bound parameters of
    a failed statement, PostgreSQL's DETAIL line (it quotes the row or the key), and any
    mobile number. A safety net: our own code never passes these to the logger."""
    for pattern, replacement in _QUOTED_VALUES:
        text = pattern.sub(replacement, text)
    return _MOBILE.sub("1**********", text)


def _message(record: logging.LogRecord) -> str:
    if record.name == "aiohttp.server" and isinstance(record.msg, str) and record.msg.startswith("Error handling request"):
        return "Error handling request"  # "... from %s": the client's address
    return record.getMessage()


def _exception(formatter: logging.Formatter, exc_info: ExcInfo) -> str:
    exc = exc_info[1]
    if isinstance(exc, HttpProcessingError):  # aiohttp quotes the raw request line or header
        return f"{type(exc).__name__}: HTTP {exc.code} (the request could not be parsed; its text is not logged)"
    return scrub(logging.Formatter.formatException(formatter, exc_info))


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.user = USER.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str | int | float | bool | None] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(_message(record)),
        }
        for key in ("request_id", "user"):
            if getattr(record, key, ""):
                entry[key] = getattr(record, key)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _MOBILE.sub("1**********", json.dumps(entry, ensure_ascii=False))  # also in extra= fields

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802 (logging's name)
        return _exception(self, ei)


class TextFormatter(logging.Formatter):
    """A line for a terminal, with the same care as `JsonFormatter`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(user)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(vars(record))  # a copy: other handlers see the record as it was
        safe.msg, safe.args = _message(record), None
        safe.exc_text = None  # formatted here, not taken from another formatter's cache
        for key in ("request_id", "user"):
            if not hasattr(safe, key):
                setattr(safe, key, "")
        return scrub(super().format(safe))

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802 (logging's name)
        return _exception(self, ei)


def configure_logging(*, fmt: str = "text", level: int = logging.INFO) -> None:
    """Root logging for the command line: "json" (production) or "text" (a terminal)."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

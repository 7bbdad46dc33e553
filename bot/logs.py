"""Structured logs: one JSON object a line, with the request id and a hashed openid.

Every record logged while a webhook request is handled (also in the task that
processes the message, which inherits the context) carries `request_id` and `user`,
an HMAC of the openid: lines of one customer can be followed without the raw openid
ever being written. Phone numbers and secrets are never passed to the logger.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import time
import uuid

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
USER: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="")

# attributes every LogRecord has; anything else came in through `extra=`
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "user"}


def new_request_id() -> str:
    request_id = uuid.uuid4().hex[:12]
    REQUEST_ID.set(request_id)
    return request_id


def hash_openid(openid: str, *, key: bytes) -> str:
    return hmac.new(key, openid.encode(), hashlib.sha256).hexdigest()[:12]


def bind_user(openid: str, *, key: bytes) -> None:
    USER.set(hash_openid(openid, key=key))


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.user = USER.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "user"):
            if getattr(record, key, ""):
                entry[key] = getattr(record, key)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, fmt: str = "text", level: int = logging.INFO) -> None:
    """Root logging for the command line: "json" (production) or "text" (a terminal)."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(user)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

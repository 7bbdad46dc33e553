"""Structured logs carry a request id and a hashed openid, never the raw openid."""

from __future__ import annotations

import io
import json
import logging

from bot.inbox import Inbox
from bot.keys import INBOX
from bot.logs import ContextFilter, JsonFormatter, hash_openid
from tests.bot.chat import Shop


async def test_a_failure_is_logged_with_request_id_and_hashed_user(sqlite_shop: Shop) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    inbox: Inbox = sqlite_shop.client.app[INBOX]

    async def broken(msg):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    inbox.respond = broken
    openid = "o_secret_openid_42"
    try:
        reply = await sqlite_shop.user(openid).say("苹果")
    finally:
        root.removeHandler(handler)
    assert "抱歉" in reply.text  # the customer gets the polite error, not a 500
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    failure = next(r for r in records if r["message"] == "reply failed")
    assert failure["level"] == "error" and "RuntimeError: boom" in failure["exception"]
    assert len(failure["request_id"]) == 12
    assert failure["user"] == hash_openid(openid, key=sqlite_shop.config.signing_key)
    assert openid not in stream.getvalue()


def test_the_formatter_keeps_extra_fields_as_json() -> None:
    record = logging.makeLogRecord({"name": "storefront", "levelno": 20, "levelname": "INFO",
                                    "msg": "job done", "job": "expire_unpaid_orders", "handled": 3})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "job done" and entry["job"] == "expire_unpaid_orders" and entry["handled"] == 3

"""Structured logs carry a request id and a hashed openid, never the raw openid."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest
from aiohttp import ClientSession, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.test_utils import TestServer

from bot.keys import INBOX
from bot.logs import (
    AccessLogger,
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    bind_user,
    hash_openid,
    link_hash,
    new_request_id,
    redact_path,
)
from bot.wechat.inbox import Inbox
from tests.bot.driver import Shop


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


# ---- the access log: redacted paths ------------------------------------------------------------

KEY = b"unit-test-signing-key"
TOKEN = "eyJvcmRlciI6IlNGMSJ9.c2lnbmF0dXJlLW9mLXRoZS1saW5r"


def _h(segment: str) -> str:
    return link_hash(segment, key=KEY)


def test_a_link_hash_is_short_keyed_and_stable() -> None:
    assert re.fullmatch(r"~[0-9a-f]{8}", _h(TOKEN))
    assert _h(TOKEN) == _h(TOKEN)
    assert _h(TOKEN) != link_hash(TOKEN, key=b"another key")
    assert _h(TOKEN) != _h(TOKEN + "x")
    # its own derived key: never a prefix of what the signing key makes for an openid or a link
    assert _h(TOKEN)[1:] not in hash_openid(TOKEN, key=KEY)
    assert _h(TOKEN)[1:] not in hmac.new(KEY, TOKEN.encode(), hashlib.sha256).hexdigest()[:8]


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/wechat", "/wechat"),
        ("/healthz", "/healthz"),
        ("/metrics", "/metrics"),
        ("/", "/"),
        ("/dev/chat", "/dev/chat"),
        ("/dev/chat/outbox", "/dev/chat/outbox"),
        (f"/pay/{TOKEN}", f"/pay/{_h(TOKEN)}"),
        (f"/pay/{TOKEN}/status", f"/pay/{_h(TOKEN)}/status"),
        (f"/pay/{TOKEN}/jsapi", f"/pay/{_h(TOKEN)}/jsapi"),
        (f"/pay/{TOKEN}/simulate", f"/pay/{_h(TOKEN)}/simulate"),
        (f"/pay/{TOKEN}/other/thing", f"/pay/{_h(TOKEN)}/…"),
        ("/pay/notify/sandbox", "/pay/notify/sandbox"),
        ("/pay/refund-notify/wechatpay_v3", "/pay/refund-notify/wechatpay_v3"),
        ("/pay/notify/o_someone_s_openid", f"/pay/{_h('notify')}/…"),
        (f"/export/{TOKEN}", f"/export/{_h(TOKEN)}"),
        (f"/export/{TOKEN}/more", f"/export/{_h(TOKEN)}/…"),
        (f"/export/{TOKEN}/file", f"/export/{_h(TOKEN)}/file"),
        (f"/ship/{TOKEN}", f"/ship/{_h(TOKEN)}"),
        (f"/live/{TOKEN}", f"/live/{_h(TOKEN)}"),
        (f"/live/{TOKEN}/events", f"/live/{_h(TOKEN)}/events"),
        (f"/live/{TOKEN}/other", f"/live/{_h(TOKEN)}/…"),
        ("/g/XYZ789", f"/g/{_h('XYZ789')}"),
        ("/r/AB12CD", f"/r/{_h('AB12CD')}"),
        ("/s/v1.g.XYZ789", f"/s/{_h('v1.g.XYZ789')}"),
        ("/products/123", "/products/123"),
        ("/products/0123", "/products/…"),
        ("/products/o_openid_in_a_path", "/products/…"),
        ("/products/1/2", "/products/…"),
        ("/static/products/apple.jpg", "/static/…"),
        ("/pay/", "/pay/…"),
        ("/pay", "/pay"),
    ],
)
def test_each_route_family_is_shown_without_its_secret(path: str, shown: str) -> None:
    assert redact_path(path, key=KEY) == shown


def test_query_strings_never_reach_the_log() -> None:
    query = "?signature=abc&timestamp=1&nonce=42&openid=o_raw&msg_signature=def&encrypt_type=aes"
    assert redact_path("/wechat" + query, key=KEY) == "/wechat"
    assert redact_path(f"/pay/{TOKEN}/status{query}", key=KEY) == f"/pay/{_h(TOKEN)}/status"
    assert redact_path("/healthz?token=x#frag", key=KEY) == "/healthz"


@pytest.mark.parametrize(
    "path",
    [
        f"/{TOKEN}",  # a token pasted without its route
        f"/o_secret_openid_42/{TOKEN}",
        "/wp-login.php",
        "/../../etc/passwd",
        "//pay/" + TOKEN,
        "/wechat/" + TOKEN,
        "/pay%2F" + TOKEN,
        "/张三 13812345678",
        "/line\nbreak\r\ninjected: yes",
        "/" + "x" * 5000,
    ],
)
def test_weird_paths_keep_nothing_the_client_chose(path: str) -> None:
    shown = redact_path(path, key=KEY)
    assert re.fullmatch(r"/([a-z-]+|~[0-9a-f]{8})(/…)?", shown), shown
    for secret in (TOKEN, "o_secret_openid_42", "13812345678", "passwd", "injected", "xxxxxxxx"):
        assert secret not in shown


def test_without_a_key_a_link_segment_is_hidden_whole() -> None:
    assert redact_path(f"/pay/{TOKEN}/status", key=None) == "/pay/~/status"
    assert redact_path("/o_secret", key=None) == "/~"


# ---- the access log: through a real server ----------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(ContextFilter())
        self.setFormatter(formatter)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@contextlib.contextmanager
def _captured(formatter: logging.Formatter) -> Iterator[_Capture]:
    capture = _Capture(formatter)
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


def _tiny_app() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        if request.match_info.get("token"):
            new_request_id()
            bind_user("o_the_customer", key=KEY)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/pay/{token}/status", ok)
    app.router.add_post("/wechat", ok)
    return app


async def _serve(app: web.Application, logger: type[AbstractAccessLogger]) -> TestServer:
    server = TestServer(app)  # its constructor drops server options: they go to start_server
    await server.start_server(access_log_class=logger)
    return server


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
async def test_the_access_log_writes_one_redacted_line_per_request(formatter: logging.Formatter) -> None:
    server = await _serve(_tiny_app(), AccessLogger.keyed(KEY))
    headers = {"User-Agent": "Secret-Agent/1.0 MicroMessenger", "Referer": f"https://x.example/pay/{TOKEN}"}
    with _captured(formatter) as capture:
        async with ClientSession() as http:
            status = await http.get(server.make_url(f"/pay/{TOKEN}/status?openid=o_raw&sig=s1gnature"), headers=headers)
            assert status.status == 200
            missing = await http.get(server.make_url("/nowhere/at/all?signature=s1gnature"), headers=headers)
            assert missing.status == 404
        await server.close()
    access = [r for r in capture.records if r.name == "aiohttp.access"]
    assert [(r.method, r.path, r.status) for r in access] == [  # type: ignore[attr-defined]
        ("GET", f"/pay/{_h(TOKEN)}/status", 200), ("GET", f"/{_h('nowhere')}/…", 404)]
    assert all(r.bytes >= 0 and r.ms >= 0 for r in access)  # type: ignore[attr-defined]
    first, second = (capture.lines[capture.records.index(r)] for r in access)
    for line in (first, second):
        for secret in (TOKEN, "o_raw", "s1gnature", "Secret-Agent", "MicroMessenger", "x.example", "127.0.0.1"):
            assert secret not in line, line
    assert hash_openid("o_the_customer", key=KEY) in first  # the handler bound the user
    assert hash_openid("o_the_customer", key=KEY) not in second  # and it did not leak into the next request
    if isinstance(formatter, JsonFormatter):
        entry = json.loads(first)
        assert entry["logger"] == "aiohttp.access" and entry["path"] == f"/pay/{_h(TOKEN)}/status"
        assert entry["method"] == "GET" and entry["status"] == 200 and isinstance(entry["ms"], float)
        assert len(entry["request_id"]) == 12 and entry["user"] == hash_openid("o_the_customer", key=KEY)
        assert entry["message"] == f"GET /pay/{_h(TOKEN)}/status 200 {entry['bytes']}B {entry['ms']}ms"
    else:
        assert re.search(rf"\[[0-9a-f]{{12}} [0-9a-f]{{12}}\] GET /pay/{_h(TOKEN)}/status 200 \d+B [\d.]+ms$", first), first


async def test_a_request_aiohttp_cannot_parse_is_logged_without_its_text() -> None:
    server = await _serve(_tiny_app(), AccessLogger.keyed(KEY))
    bad = [
        f"GET /pay/{TOKEN} TOKEN?signature=s1gnature HTTP/1.1\r\nHost: x\r\n\r\n",  # a space in the target
        f"GET /pay/{TOKEN}?signature=s1gnature HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b{TOKEN}\r\n\r\n",
        f"G\x01T /pay/{TOKEN}?signature=s1gnature HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    with _captured(JsonFormatter()) as capture:
        for raw in bad:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(raw.encode("latin-1"))
            await writer.drain()
            assert (await reader.read(100)).startswith(b"HTTP/1.0 400")
            writer.close()
        await server.close()
    errors = [line for line, r in zip(capture.lines, capture.records, strict=True) if r.name == "aiohttp.server"]
    assert len(errors) == len(bad)
    for line in capture.lines:
        for secret in (TOKEN, "s1gnature", "127.0.0.1"):
            assert secret not in line, line
    assert all("Error handling request" in line and "HTTP 400" in line for line in errors)


def test_the_formatters_take_out_what_a_database_error_quotes() -> None:
    try:
        raise RuntimeError(
            "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) <class 'asyncpg.exceptions.UniqueViolationError'>: "
            'duplicate key value violates unique constraint "uq_customers_openid"\n'
            "DETAIL:  Key (openid)=(o_secret_openid_42) already exists.\n"
            "[SQL: INSERT INTO addresses (name, phone, address) VALUES ($1, $2, $3)]\n"
            "[parameters: ('张三', '13812345678', '上海市浦东新区世纪大道100号')]\n"
            "invalid input for query argument $2: 'o_secret_openid_42' (expected str)"
        )
    except RuntimeError:
        record = logging.makeLogRecord({"name": "sqlalchemy.pool", "levelno": 40, "levelname": "ERROR",
                                        "msg": "call 138-1234-5678 or +86 13812345678 or 13812345678",
                                        "exc_info": sys.exc_info()})
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(record)
        assert "o_secret_openid_42" not in line and "13812345678" not in line and "世纪大道" not in line, line
        assert "uq_customers_openid" in line and "INSERT INTO addresses" in line  # what failed stays
        assert "[parameters: not logged]" in line and "DETAIL: not logged" in line
    assert "1**********" in TextFormatter().format(record)
    assert record.getMessage().endswith("13812345678")  # the record itself is untouched for other handlers


def test_a_text_line_without_the_context_filter_still_formats() -> None:
    record = logging.makeLogRecord({"name": "x", "levelno": 20, "levelname": "INFO", "msg": "hello %s", "args": ("you",)})
    assert TextFormatter().format(record).endswith("INFO x [ ] hello you")

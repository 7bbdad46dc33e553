"""A whole day of the shop with JSON logs: no line may carry what opens a link, proves a
request or names a customer.

Every record of every logger is captured at DEBUG (the root handler, with the production
`JsonFormatter` and `ContextFilter`), and the server runs our own access log, as
`storefront serve` does. A customer searches, opens a card, fills a cart, checks out with
a name, phone number and address, opens the payment page and its status, pays in the
sandbox and is told; the owner runs /stats, /orders and /export and downloads the file; a
stranger types /stats; a forged request and a malformed one arrive. Then every line is
scanned for the raw openids, the phone number, the link tokens, the signatures and nonces
sent, and the shop's secrets.

Two loggers keep their own level, and the test leaves them so: SQLAlchemy's (WARNING
unless `database.echo` is set; off by default, checked here) and aiosqlite's (INFO, set
by `bot.logs`); at DEBUG both write every statement with its parameters, phone numbers
included.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from wechatpy.crypto import PrpCrypto

from bot.app import create_app
from bot.devtools.simulator import build_message_xml, sign
from bot.keys import PAYMENTS
from bot.logs import AccessLogger, ContextFilter, JsonFormatter, hash_openid, link_hash
from bot.outbound.sender import MemoryOutbox
from commerce.payments.sandbox import SIGNATURE_HEADER
from tests.bot.conftest import make_config, seed
from tests.bot.driver import ACCOUNT, AES_KEY, ChatUser, Shop
from tests.bot.test_search_chat import numbered

BUYER = "o_privacy_buyer_7f3k2m9q"
OWNER = "o_privacy_owner_5x8w1z4c"
STRANGER = "o_privacy_stranger_2b6n"
NAME, PHONE, ADDRESS = "张三", "13812345678", "上海市浦东新区世纪大道100号"
SECRET_KEY = "privacy-test-server-secret-0123456789"
SANDBOX_SECRET = "privacy-test-sandbox-secret-9876543210"
BASE = "https://shop.example.com"
LINK = re.compile(re.escape(BASE) + r"(/(?:pay|export)/[^\s<>\"'/]+)")


@dataclass
class Sent:
    """What the test sent: the webhook's query values and the sandbox's signature header,
    as the server saw them."""

    query_values: dict[str, set[str]] = field(default_factory=dict)

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
            for name in ("signature", "msg_signature", "nonce", "openid", "echostr"):
                if request.query.get(name):
                    self.query_values.setdefault(name, set()).add(request.query[name])
            if request.headers.get(SIGNATURE_HEADER):  # the sandbox's notification to ourselves
                self.query_values.setdefault("sandbox signature", set()).add(request.headers[SIGNATURE_HEADER])
            return await handler(request)

        return record


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every record of every logger, at DEBUG, as the production JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def _shop(db_url: str, aiohttp_client: Callable[..., Awaitable[TestClient]], sent: Sent) -> Shop:
    """The real app on the demo catalog, served with the production access log."""
    await seed(db_url)
    config = make_config(
        db_url,
        staff={"owners": [OWNER]},
        server={"secret_key": SECRET_KEY, "log_format": "json"},
        pay={"sandbox_secret": SANDBOX_SECRET},
    )
    outbox = MemoryOutbox()
    app = create_app(config, outbound=outbox)
    app.middlewares.append(sent.middleware())
    server = TestServer(app)  # its constructor drops server options: they go to start_server
    await server.start_server(access_log_class=AccessLogger.keyed(config.signing_key))
    return Shop(await aiohttp_client(server), config, outbox)


def _link(text: str, kind: str) -> str:
    """The path of the first /pay/ or /export/ link in a reply (whatever the token's format)."""
    paths = [m.group(1) for m in LINK.finditer(text) if m.group(1).startswith(f"/{kind}/")]
    assert paths, text
    return paths[0]


async def _buy(shop: Shop, buyer: ChatUser) -> str:
    """Search, open a card, add to cart, check out with an address; the payment link's path."""
    results = numbered((await buyer.say("苹果")).text)
    number = next(n for n, line in results.items() if "烟台红富士苹果" in line)
    card = await buyer.say(str(number))
    assert card.kind == "news", card
    product_page = card.articles[0].url.removeprefix(BASE)
    assert (await shop.client.get(product_page)).status == 200  # the card's page
    assert "有多个规格" in (await buyer.say("加入购物车 2")).text
    await buyer.say("2")
    assert "×2" in (await buyer.say("加入购物车 2")).text
    assert "请发送收货信息" in (await buyer.say("结算")).text
    parsed = await buyer.say(f"{NAME} {PHONE} {ADDRESS}")
    assert "138****5678" in parsed.text, parsed.text
    assert "应付" in (await buyer.say("确认")).text
    pay = await buyer.say("确认")
    assert pay.kind == "news", pay
    return _link(pay.articles[0].url, "pay")


async def _pay(shop: Shop, pay_path: str) -> None:
    assert (await shop.client.get(pay_path)).status == 200
    assert (await (await shop.client.get(pay_path + "/status")).json())["paid"] is False
    paid = await shop.client.post(pay_path + "/simulate")
    assert paid.status == 200, await paid.text()
    assert (await (await shop.client.get(pay_path + "/status")).json())["paid"] is True
    await shop.client.app[PAYMENTS].drain()
    (received,) = await shop.outbox.wait_for(BUYER)  # "payment received", through the outbound sender
    assert received.text or received.kind


async def _staff_day(shop: Shop) -> str:
    owner = shop.user(OWNER, aes=True)
    assert "【今日】" in (await owner.say("/stats")).text
    assert (await owner.say("/orders")).text
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    export = await owner.say(f"/export orders {today - timedelta(days=1)} {today}")
    export_path = _link(export.text, "export")
    download = await shop.client.get(f"{export_path}/file")
    assert download.status == 200
    assert PHONE in (await download.read()).decode("utf-8-sig")  # the file has it; the logs must not
    stranger = await shop.user(STRANGER, aes=True).say("/stats")
    assert "【今日】" not in stranger.text  # a customer's "command" is a search
    return export_path


def _envelope(plaintext: str, appid: str) -> str:
    return PrpCrypto(base64.b64decode(AES_KEY + "=")).encrypt(plaintext, appid).decode("ascii")


async def _hostile_requests(shop: Shop) -> None:
    """Forged signatures (plain and encrypted), a garbled body and one that decrypts to no XML."""
    token, appid, now = shop.config.wechat.token, shop.config.wechat.appid, str(int(time.time()))
    xml = build_message_xml(to_user=ACCOUNT, from_user=BUYER, kind="text", create_time=int(now),
                            msg_id=99_000_001, content="苹果")
    forged = {"signature": "f" * 40, "timestamp": now, "nonce": "7340912285", "openid": BUYER}
    assert (await shop.client.post("/wechat", params=forged, data=xml.encode())).status == 403
    encrypt = _envelope(xml, appid)
    forged_aes = {**forged, "nonce": "3306148257", "encrypt_type": "aes", "msg_signature": "e" * 40}
    body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    assert (await shop.client.post("/wechat", params=forged_aes, data=body.encode())).status == 403

    def signed(nonce: str, encrypt: str) -> dict[str, str]:
        return {"signature": sign(token, now, nonce), "timestamp": now, "nonce": nonce, "openid": BUYER,
                "encrypt_type": "aes", "msg_signature": sign(token, now, nonce, encrypt)}

    garbled = "<xml><Encrypt>not base64 and no closing tag"
    assert (await shop.client.post("/wechat", params=signed("5518230941", garbled), data=garbled.encode())).status in (400, 403)
    not_xml = _envelope(f"{NAME} {PHONE} is not a message", appid)
    body = f"<xml><Encrypt><![CDATA[{not_xml}]]></Encrypt></xml>"
    assert (await shop.client.post("/wechat", params=signed("6629104473", not_xml), data=body.encode())).status == 400
    verify = {"signature": sign(token, now, "9021857731"), "timestamp": now, "nonce": "9021857731",
              "echostr": "echo-4471902356"}
    assert (await shop.client.get("/wechat", params=verify)).status == 200


def _forbidden(shop: Shop, sent: Sent, tokens: list[str]) -> dict[str, str]:
    """{what: text} that no log line may contain."""
    forbidden = {
        "buyer openid": BUYER, "owner openid": OWNER, "stranger openid": STRANGER,
        "phone": PHONE, "phone with spaces": "138 1234 5678", "phone with dashes": "138-1234-5678",
        "name": NAME, "address": ADDRESS, "street": "世纪大道100号",
        "wechat token": shop.config.wechat.token, "AES key": AES_KEY,
        "server secret_key": SECRET_KEY, "sandbox secret": SANDBOX_SECRET,
    }
    for n, token in enumerate(tokens):
        forbidden[f"link token {n}"] = token
        for start in range(0, max(1, len(token) - 19)):  # nor any 20 characters of one
            forbidden[f"link token {n} [{start}:{start + 20}]"] = token[start : start + 20]
    for name in ("signature", "msg_signature", "nonce", "echostr", "sandbox signature"):
        for value in sent.query_values.get(name, ()):
            forbidden[f"{name} sent ({value[:6]}…)"] = value
    return forbidden


async def test_a_day_of_the_shop_leaves_no_secret_in_the_logs(
    db_url: str, demo_catalog: None, aiohttp_client: Callable[..., Awaitable[TestClient]], log_lines: io.StringIO
) -> None:
    sent = Sent()
    shop = await _shop(db_url, aiohttp_client, sent)
    assert shop.config.database.echo is False  # echo logs every statement's parameters
    assert not logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)  # bot.logs holds it: it logs values

    pay_path = await _buy(shop, shop.user(BUYER, aes=True))
    await _pay(shop, pay_path)
    export_path = await _staff_day(shop)
    await _hostile_requests(shop)
    await shop.client.close()  # the server's shutdown logs too

    tokens = [pay_path.split("/")[2], export_path.split("/")[2]]
    assert all(len(t) >= 20 for t in tokens), tokens
    assert all(sent.query_values.get(name) for name in ("signature", "msg_signature", "nonce", "sandbox signature")), sent
    lines = log_lines.getvalue().splitlines()
    forbidden = _forbidden(shop, sent, tokens)
    for number, line in enumerate(lines, start=1):
        for what, secret in forbidden.items():
            if secret in line:
                pytest.fail(f"log line {number} of {len(lines)} carries the {what} ({secret!r}):\n{line}")

    entries = [json.loads(line) for line in lines]
    access = [e for e in entries if e["logger"] == "aiohttp.access"]
    paths = {e["path"] for e in access}
    key = shop.config.signing_key
    pay_mark, export_mark = link_hash(tokens[0], key=key), link_hash(tokens[1], key=key)
    assert {"/wechat", f"/pay/{pay_mark}", f"/pay/{pay_mark}/status", f"/pay/{pay_mark}/simulate",
            "/pay/notify/sandbox", f"/export/{export_mark}/file"} <= paths, paths
    assert len(access) >= 20 and all({"method", "status", "bytes", "ms"} <= e.keys() for e in access)
    assert {e["status"] for e in access if e["path"] == "/wechat"} >= {200, 400, 403}
    users = {e.get("user") for e in entries}
    assert {hash_openid(BUYER, key=key), hash_openid(OWNER, key=key), hash_openid(STRANGER, key=key)} <= users
    webhook = [e for e in access if e["path"] == "/wechat" and e["status"] == 200 and e.get("user")]
    assert webhook and all(len(e["request_id"]) == 12 for e in webhook)  # each message line names its request


# ---- the day's newer flows: an address changed after paying, staff in words, a corrected
# tracking number, a refund by order number, a top-up, membership by SMS, a hand-off ----------

NEW_NAME, NEW_PHONE, NEW_ADDRESS = "欧阳小明", "13987651234", "北京市朝阳区建国路77号"
NEW_STREET = "建国路77号"
SECOND_PHONE = "13566667777"
MEMBER_PHONE = "13711112222"
REASON = "苹果坏了几个请尽快处理"
TICKET_TEXT = "快递放在物业那里我明天才能去拿"
STAFF_REPLY = "好的已经备注给快递员了"
ANY_LINK = re.compile(re.escape(BASE) + r"(/(?:topup|dashboard)/[^\s<>\"'/]+)")


def _any_link(text: str, kind: str) -> str:
    paths = [m.group(1) for m in ANY_LINK.finditer(text) if m.group(1).startswith(f"/{kind}/")]
    assert paths, text
    return paths[0]


async def _change_address(buyer: ChatUser) -> None:
    assert "改订单" in (await buyer.say("地址写错了")).text
    assert "139****1234" in (await buyer.say(f"{NEW_NAME} {NEW_PHONE} {NEW_ADDRESS}")).text
    assert "已改为" in (await buyer.say("确认")).text
    assert "135****7777" in (await buyer.say(f"电话改成{SECOND_PHONE}")).text
    assert "已改为" in (await buyer.say("确认")).text


async def _staff_in_words(shop: Shop, owner: ChatUser) -> tuple[str, str]:
    """The order's number and the dashboard link's path."""
    orders = (await owner.say("有新订单吗")).text
    order_no = re.search(r"SF\d{16}", orders)
    assert order_no, orders
    stats = (await owner.say("今天卖了多少")).text
    dashboard = _any_link(stats, "dashboard")
    assert (await shop.client.get(dashboard)).status == 200
    number = order_no.group(0)
    assert "已发货" in (await owner.say(f"/ship {number} 顺丰 SF1234567890123")).text
    assert "将更正为" in (await owner.say(f"/ship {number} 顺丰 SF9999888877776")).text
    assert "已更正" in (await owner.say("确认")).text
    assert "¥15.00" in (await owner.say("/price 香蕉 15")).text
    assert "龙井" in (await owner.say("/product 龙井")).text
    return number, dashboard


async def _top_up(shop: Shop, buyer: ChatUser, owner: ChatUser) -> str:
    if "确认" in (await owner.say("/topup set 100 10")).text:
        await owner.say("确认")
    card = await buyer.say("充100")
    assert card.kind == "news", card
    path = _any_link(card.articles[0].url, "topup")
    assert (await shop.client.get(path)).status == 200
    assert (await shop.client.post(path + "/simulate")).status == 200
    assert (await shop.client.get(path + "/status")).status == 200
    await shop.client.app[PAYMENTS].drain()
    return path


async def _become_member(buyer: ChatUser) -> str:
    await buyer.say("会员")
    sent = (await buyer.say(MEMBER_PHONE)).text
    code = re.search(r"验证码：(\d{6})", sent)  # the sandbox shows it in the reply
    assert code, sent
    assert "注册成功" in (await buyer.say(code.group(1))).text
    return code.group(1)


async def _refund_and_hand_off(shop: Shop, buyer: ChatUser, owner: ChatUser, order_no: str) -> None:
    assert "退款申请" in (await buyer.say(f"退款 {REASON}")).text
    assert "同意售后申请" in (await owner.say(f"/approve {order_no}")).text
    assert "已同意" in (await owner.say("确认")).text
    await shop.client.app[PAYMENTS].drain()
    assert "人工" in (await buyer.say("人工")).text
    await buyer.say(TICKET_TEXT)
    assert "已回复" in (await owner.say(f"/reply 1 {STAFF_REPLY}")).text
    await buyer.say("有优惠吗")
    await buyer.say("我要参团 ABC123")


@pytest.mark.sqlite_only  # the flows' words and logs; their database work is tested on both
async def test_changed_address_refund_top_up_and_hand_off_leave_nothing_in_the_logs(
    db_url: str, demo_catalog: None, aiohttp_client: Callable[..., Awaitable[TestClient]], log_lines: io.StringIO
) -> None:
    sent = Sent()
    shop = await _shop(db_url, aiohttp_client, sent)
    buyer, owner = shop.user(BUYER, aes=True), shop.user(OWNER, aes=True)
    pay_path = await _buy(shop, buyer)
    await _pay(shop, pay_path)
    await _change_address(buyer)
    order_no, dashboard = await _staff_in_words(shop, owner)
    topup = await _top_up(shop, buyer, owner)
    code = await _become_member(buyer)
    await _refund_and_hand_off(shop, buyer, owner, order_no)
    await shop.client.close()

    tokens = [pay_path.split("/")[2], dashboard.split("/")[2], topup.split("/")[2]]
    forbidden = _forbidden(shop, sent, tokens) | {
        "new name": NEW_NAME, "new phone": NEW_PHONE, "new address": NEW_ADDRESS, "new street": NEW_STREET,
        "second phone": SECOND_PHONE, "member phone": MEMBER_PHONE, "SMS code": code,
        "masked new phone": "139****1234", "refund reason": REASON, "ticket text": TICKET_TEXT,
        "staff reply": STAFF_REPLY, "words typed": "地址写错了",
    }
    lines = log_lines.getvalue().splitlines()
    assert lines, "nothing was logged: the capture is broken"
    for number, line in enumerate(lines, start=1):
        for what, secret in forbidden.items():
            if secret in line:
                pytest.fail(f"log line {number} of {len(lines)} carries the {what} ({secret!r}):\n{line}")

    # the access log names each link by its own mark, as it does a payment link
    paths = {e["path"] for e in map(json.loads, lines) if e["logger"] == "aiohttp.access"}
    key = shop.config.signing_key
    topup_mark, dashboard_mark = link_hash(tokens[2], key=key), link_hash(tokens[1], key=key)
    assert {f"/topup/{topup_mark}", f"/topup/{topup_mark}/simulate", f"/topup/{topup_mark}/status",
            f"/dashboard/{dashboard_mark}"} <= paths, paths


async def test_a_shop_error_no_handler_expected_is_logged_without_its_details(
    db_url: str, demo_catalog: None, aiohttp_client: Callable[..., Awaitable[TestClient]], log_lines: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A business refusal that escapes its handler is logged with its traceback: the
    error's text names its code and the names of its details, never their values (an
    openid, a phone, a name, a code that grants money); the customer sees no internals."""
    from bot.handlers import deals
    from commerce.errors import ErrorCode, ShopError

    details = {"coupon_code": "VIPFREE500", "openid": BUYER, "name": NAME, "address": ADDRESS,
               "phone_tail": PHONE[-4:]}

    async def refuse(*_args: object, **_kwargs: object) -> None:
        raise ShopError(ErrorCode.COUPON_INVALID, **details)  # a traceback quotes this line, not the values

    monkeypatch.setattr(deals.coupons, "usable_coupons", refuse)
    shop = await _shop(db_url, aiohttp_client, Sent())
    reply = (await shop.user(BUYER, aes=True).say("有优惠吗")).text
    await shop.client.close()

    for internal in ("coupon_invalid", "VIPFREE500", "Traceback", "ShopError", ".py"):
        assert internal not in reply, reply
    text = log_lines.getvalue()
    for what, secret in {"coupon code": "VIPFREE500", "openid": BUYER, "name": NAME, "address": ADDRESS,
                         "phone tail": f"'{PHONE[-4:]}'"}.items():
        assert secret not in text, f"the log carries the {what}"
    assert "coupon_invalid (coupon_code, openid, name, address, phone_tail)" in text  # the code still says what failed

"""The edge as an attacker meets it: replay, downgrade, forged plaintext, the public surface.

Each test is named after what an outsider tried. The attack of the security review
(one signed triple copied from a log, posted again without `encrypt_type` with a
plaintext body from the owner's openid saying `/stats`) is run end to end through
the real app and must change nothing.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from wechatpy.crypto import PrpCrypto

from bot.app import create_app
from bot.cli import prepare_database, security_warnings
from bot.devtools.simulator import build_message_xml, sign
from bot.keys import CONFIG
from bot.outbound.sender import MemoryOutbox
from bot.wechat.protocol import aes_key
from commerce.catalog.models import Product
from commerce.staff.models import AuditEntry
from commerce.system_models import InstallSecret
from tests.bot.conftest import ShopFactory, make_config
from tests.bot.driver import ACCOUNT, Shop, db
from tests.bot.web.conftest import pay_path, place_apple_order

pytestmark = pytest.mark.sqlite_only  # what the test checks is the conversation, not the database

OWNER = "o_owner_0001"
V2_PAY = {"provider": "wechatpay_v2", "mchid": "1900000109", "api_v2_key": "k" * 32}


def _xml(openid: str, text: str, *, kind: str = "text") -> str:
    return build_message_xml(
        to_user=ACCOUNT, from_user=openid, kind=kind, create_time=int(time.time()),
        msg_id=secrets.randbelow(10**15), **({"content": text} if kind == "text" else {}),
    )


def _triple(token: str, *, timestamp: int | None = None) -> dict[str, str]:
    ts, nonce = str(timestamp or int(time.time())), str(secrets.randbelow(10**10))
    return {"timestamp": ts, "nonce": nonce, "signature": sign(token, ts, nonce)}


def _encrypted(shop: Shop, xml: str, params: dict[str, str]) -> tuple[dict[str, str], bytes]:
    """WeChat's safe-mode request for `xml` under `params`' timestamp and nonce."""
    wechat = shop.config.wechat
    encrypt = PrpCrypto(aes_key(wechat.encoding_aes_key)).encrypt(xml, wechat.appid).decode()
    signed = {**params, "encrypt_type": "aes",
              "msg_signature": sign(wechat.token, params["timestamp"], params["nonce"], encrypt)}
    return signed, f"<xml><ToUserName>{ACCOUNT}</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()


async def _post(shop: Shop, params: dict[str, str], body: bytes) -> tuple[int, str]:
    response = await shop.client.post("/wechat", params=params, data=body)
    return response.status, await response.text()


async def _audit_rows(shop: Shop) -> int:
    async with db(shop.client.app)() as session:
        return await session.scalar(select(func.count()).select_from(AuditEntry)) or 0


async def _metric(shop: Shop, line_start: str) -> float:
    shop_config = shop.client.app[CONFIG]
    headers = {"Authorization": f"Bearer {shop_config.server.metrics_token}"} if shop_config.server.metrics_token else {}
    text = await (await shop.client.get("/metrics", headers=headers)).text()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
async def staffed(make_shop: ShopFactory, db_url: str) -> Shop:
    """A safe-mode shop (the test config carries an EncodingAESKey) with an owner."""
    return await make_shop(db_url, staff={"owners": [OWNER]})


# --------------------------------------------------------------------------- replay and downgrade


async def test_the_log_replay_attack_is_refused_and_changes_nothing(staffed: Shop) -> None:
    """The review's attack: the owner's triple, reused without encrypt_type, plaintext /stats."""
    token = staffed.config.wechat.token
    params, body = _encrypted(staffed, _xml(OWNER, "/stats"), _triple(token))
    status, answer = await _post(staffed, params, body)
    assert status == 200 and "<Encrypt>" in answer  # the owner's own request works
    rows = await _audit_rows(staffed)

    copied = {k: params[k] for k in ("timestamp", "nonce", "signature")}  # what an access log held
    for forged in (_xml(OWNER, "/stats"), _xml(OWNER, "/export orders 2026-01-01 2026-12-31")):
        status, answer = await _post(staffed, copied, forged.encode())
        assert status == 403 and "成交额" not in answer and "export" not in answer
        # the same with the msg_signature copied too, but a body of the attacker's
        status, _ = await _post(staffed, {**copied, "encrypt_type": "aes",
                                          "msg_signature": params["msg_signature"]},
                                _encrypted(staffed, forged, copied)[1])
        assert status == 403
    assert await _audit_rows(staffed) == rows  # nothing recorded as the owner's action
    assert staffed.outbox.for_user(OWNER) == []
    assert await _metric(staffed, 'storefront_rejected_requests_total{reason="plaintext"}') == 2


async def test_a_plaintext_post_to_a_safe_mode_shop_is_refused_even_when_freshly_signed(staffed: Shop) -> None:
    token = staffed.config.wechat.token
    status, _ = await _post(staffed, _triple(token), _xml(OWNER, "/stats").encode())
    assert status == 403
    assert await _audit_rows(staffed) == 0


async def test_a_triple_reused_with_another_body_is_a_replay(make_shop: ShopFactory, db_url: str) -> None:
    """Plain mode: the signature covers no body, so the cache ties one body to each triple."""
    shop = await make_shop(db_url, wechat={"encoding_aes_key": ""}, staff={"owners": [OWNER]})
    token = shop.config.wechat.token
    triple = _triple(token)
    status, answer = await _post(shop, triple, _xml("o_customer_1", "苹果").encode())
    assert status == 200 and "烟台红富士苹果" in answer
    status, answer = await _post(shop, triple, _xml(OWNER, "/stats").encode())
    assert status == 403 and "成交额" not in answer
    assert await _audit_rows(shop) == 0
    assert await _metric(shop, 'storefront_webhook_replays_total{outcome="refused"}') == 1
    assert await _metric(shop, 'storefront_rejected_requests_total{reason="replay"}') == 1


async def test_the_same_request_twice_is_a_retry_answered_once(staffed: Shop) -> None:
    """WeChat's own retry carries the same body: answered from the first delivery, never run twice."""
    params, body = _encrypted(staffed, _xml(OWNER, "/stats"), _triple(staffed.config.wechat.token))
    first = await _post(staffed, params, body)
    rows = await _audit_rows(staffed)
    again = await _post(staffed, params, body)
    assert first[0] == again[0] == 200
    assert await _audit_rows(staffed) == rows  # /stats audited once
    assert await _metric(staffed, 'storefront_webhook_replays_total{outcome="retry"}') == 1


async def test_the_replay_cache_is_shared_by_workers_through_redis(
    make_shop: ShopFactory, sqlite_url: str, redis_url: str
) -> None:
    sections: dict[str, Any] = {"wechat": {"encoding_aes_key": ""}, "redis": {"url": redis_url}}
    one = await make_shop(sqlite_url, **sections)
    other = await make_shop(sqlite_url, **sections)
    triple = _triple(one.config.wechat.token)
    assert (await _post(one, triple, _xml("o_customer_1", "苹果").encode()))[0] == 200
    assert (await _post(other, triple, _xml("o_customer_2", "香蕉").encode()))[0] == 403


async def test_an_old_timestamp_is_refused_by_default(staffed: Shop) -> None:
    token = staffed.config.wechat.token
    params, body = _encrypted(staffed, _xml("o_customer_1", "苹果"), _triple(token, timestamp=int(time.time()) - 301))
    assert (await _post(staffed, params, body))[0] == 403
    for odd in ("１７００００００００", " 1700000000", "1_700_000_000", "-5"):
        params, body = _encrypted(staffed, _xml("o_customer_1", "苹果"),
                                  {"timestamp": odd, "nonce": "1", "signature": sign(token, odd, "1")})
        assert (await _post(staffed, params, body))[0] == 403, odd
    assert await _metric(staffed, 'storefront_rejected_requests_total{reason="stale"}') == 5


async def test_the_published_safe_mode_sample_without_plain_signature_is_accepted(staffed: Shop) -> None:
    """WeChat's sample request carries msg_signature, timestamp, nonce, encrypt_type only."""
    params, body = _encrypted(staffed, _xml("o_customer_1", "苹果"), _triple(staffed.config.wechat.token))
    del params["signature"]
    status, answer = await _post(staffed, params, body)
    assert status == 200 and "<Encrypt>" in answer


async def test_a_plain_signature_that_disagrees_with_msg_signature_is_refused(staffed: Shop) -> None:
    params, body = _encrypted(staffed, _xml("o_customer_1", "苹果"), _triple(staffed.config.wechat.token))
    params["signature"] = "0" * 40
    assert (await _post(staffed, params, body))[0] == 403


async def test_compatible_mode_answers_plaintext_as_a_customer_never_as_staff(
    make_shop: ShopFactory, db_url: str
) -> None:
    shop = await make_shop(db_url, wechat={"message_mode": "compatible"}, staff={"owners": [OWNER]})
    plain = await shop.user(OWNER, aes=False).say("/stats")
    assert "成交额" not in plain.text  # a search, not the stats
    (entry,) = [e async for e in _entries(shop)]
    assert (entry.command, entry.outcome, entry.role) == ("stats", "refused", "")
    assert "/stats" not in (await shop.user(OWNER, aes=False).say("/help")).text  # the customer help
    encrypted = await shop.user(OWNER, aes=True).say("/stats")
    assert "成交额" in encrypted.text
    customer = await shop.user("o_customer_1", aes=False).say("苹果")  # customers may still write plain
    assert "烟台红富士苹果" in customer.text


async def _entries(shop: Shop):  # type: ignore[no-untyped-def]
    async with db(shop.client.app)() as session:
        for entry in (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all():
            yield entry


async def test_an_encrypted_request_to_a_plain_mode_shop_is_refused(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url, wechat={"message_mode": "plain"})
    params, body = _encrypted(shop, _xml("o_customer_1", "苹果"), _triple(shop.config.wechat.token))
    assert (await _post(shop, params, body))[0] == 403


# --------------------------------------------------------------------------- metrics labels


async def test_invented_message_types_do_not_mint_metric_labels(make_shop: ShopFactory, sqlite_url: str) -> None:
    shop = await make_shop(sqlite_url)
    user = shop.user("o_customer_1")
    for n in range(3):
        await user.send(user.xml(f"evil{n}kind", msg_id=900 + n))
        await user.send(user.xml("event", event=f"Evil{n}Event"))
    text = await (await shop.client.get("/metrics")).text()
    assert "evil" not in text.lower()
    assert 'storefront_messages_total{event="",kind="other"} 3.0' in text
    assert 'storefront_messages_total{event="other",kind="event"} 3.0' in text


# --------------------------------------------------------------------------- the public surface


@pytest.mark.parametrize(
    "path",
    ["/products/99999999999999999999999", "/products/2147483648", "/products/１２", "/products/-1",
     "/products/0", "/products/1e3", "/g/" + "9" * 40, "/r/%F0%9F%8D%8E", "/s/v1.p.99999999999",
     "/pay/x.y", "/export/" + "A" * 500],
)
async def test_bad_path_parameters_are_404_never_500(sqlite_shop: Shop, path: str) -> None:
    response = await sqlite_shop.client.get(path)
    assert response.status in (403, 404), (path, response.status)


async def test_metrics_of_a_live_shop_need_a_token(make_shop: ShopFactory, sqlite_url: str) -> None:
    closed = await make_shop(sqlite_url, pay=V2_PAY)
    assert (await closed.client.get("/metrics")).status == 404

    guarded = await make_shop(sqlite_url, pay=V2_PAY, server={"metrics_token": "scrape-secret"})
    assert (await guarded.client.get("/metrics")).status == 401
    wrong = await guarded.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    right = await guarded.client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert right.status == 200 and "storefront_orders" in await right.text()


async def test_metrics_on_their_own_address_only(
    make_shop: ShopFactory, sqlite_url: str, unused_tcp_port: int
) -> None:
    shop = await make_shop(sqlite_url, server={"metrics_listen": f"127.0.0.1:{unused_tcp_port}"})
    assert (await shop.client.get("/metrics")).status == 404
    private = await shop.client.session.get(f"http://127.0.0.1:{unused_tcp_port}/metrics")
    assert private.status == 200 and "storefront_orders" in await private.text()
    assert (await shop.client.session.get(f"http://127.0.0.1:{unused_tcp_port}/healthz")).status == 404


async def test_dev_tools_answer_only_this_machine_in_sandbox_and_nobody_live(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    sandbox = await make_shop(sqlite_url)
    assert (await sandbox.client.get("/dev/chat")).status == 200  # the test client is on loopback
    proxied = await sandbox.client.get("/dev/chat", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status == 404  # behind a proxy on this machine every request looks local
    send = await sandbox.client.post("/dev/chat/send", json={"openid": OWNER, "text": "/stats"},
                                     headers={"X-Real-IP": "203.0.113.9"})
    assert send.status == 404
    outbox = await sandbox.client.get(f"/dev/chat/outbox?openid={OWNER}", headers={"Forwarded": "for=1.2.3.4"})
    assert outbox.status == 404

    off = await make_shop(sqlite_url, server={"dev_tools": "off"})
    assert (await off.client.get("/dev/chat")).status == 404
    anyone = await make_shop(sqlite_url, server={"dev_tools": "any"})
    assert (await anyone.client.get("/dev/chat", headers={"X-Forwarded-For": "203.0.113.9"})).status == 200

    live = await make_shop(sqlite_url, pay=V2_PAY, server={"dev_tools": "any"})
    assert (await live.client.get("/dev/chat")).status == 404
    assert (await live.client.post("/dev/chat/send", json={"openid": OWNER, "text": "hi"})).status == 404


async def test_a_live_shop_never_seeds_the_demo_catalog(sqlite_template) -> None:  # type: ignore[no-untyped-def]
    empty = sqlite_template.new_database()
    live = make_config(empty, pay=V2_PAY)
    assert await prepare_database(live, seed=True) == 0
    development = make_config(empty)
    assert await prepare_database(development, seed=True) > 60


async def _secrets_of(aiohttp_client, db_url: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    config = make_config(db_url, server={"secret_key": ""}, pay={"sandbox_secret": ""})
    client: TestClient = await aiohttp_client(create_app(config, outbound=MemoryOutbox()))
    resolved = client.app[CONFIG]
    await client.close()
    return resolved.server.secret_key, resolved.pay.sandbox_secret


async def test_unset_secrets_are_random_per_install_and_kept(aiohttp_client, db_url: str, sqlite_template) -> None:  # type: ignore[no-untyped-def]
    link_key, sandbox = await _secrets_of(aiohttp_client, db_url)
    assert len(link_key) >= 40 and len(sandbox) >= 40 and link_key != sandbox
    assert sandbox != "sandbox-secret"
    assert await _secrets_of(aiohttp_client, db_url) == (link_key, sandbox)  # a restart keeps them
    other_install = await _secrets_of(aiohttp_client, sqlite_template.new_database())
    assert other_install[0] != link_key and other_install[1] != sandbox


async def test_the_sandbox_pays_with_the_install_secret(make_shop: ShopFactory, sqlite_url: str) -> None:
    """Simulated payments still work end to end on a secret nobody configured."""
    shop = await make_shop(sqlite_url, server={"secret_key": ""}, pay={"sandbox_secret": ""})
    async with db(shop.client.app)() as session:
        names = set((await session.scalars(select(InstallSecret.name))).all())
        assert await session.scalar(select(func.count()).select_from(Product)) > 0
    assert names == {"link_key", "sandbox_notify"}
    order = await place_apple_order(shop.client.app, "o_customer_1")
    path = pay_path(shop.client.app[CONFIG], order)  # signed with the install's link key
    paid = await shop.client.post(f"{path}/simulate")
    assert paid.status == 200, await paid.text()
    delivered = await shop.outbox.wait_for("o_customer_1", 1, timeout=5)
    assert order.order_no in delivered[0].text


def test_serve_warns_about_what_a_live_shop_must_set() -> None:
    live = make_config("sqlite+aiosqlite:///unused.db", pay=V2_PAY, server={"base_url": "http://shop.example.com"},
                       wechat={"encoding_aes_key": "", "token": "storefront-dev-token", "max_clock_skew_seconds": 0})
    warnings = " ".join(security_warnings(live))
    assert "max_clock_skew_seconds" in warnings and "plain message mode" in warnings
    assert "development token" in warnings and "https://" in warnings
    assert "one-time code in the chat" in warnings  # members' codes from the sandbox in a live shop
    assert security_warnings(make_config("sqlite+aiosqlite:///unused.db")) == []

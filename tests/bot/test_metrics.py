"""`/metrics` through the real app: the counters move where things happen.

Requests by type and outcome, deadline misses, dialog transitions, payment
notifications by result, and the gauges read from the database when scraped (outbox
depth, orders by status).
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.keys import INBOX, METRICS, PAYMENTS
from bot.wechat.inbox import Inbox
from commerce.payments.sandbox import build_notification
from tests.bot.admin.test_orders import pay, place_order, view
from tests.bot.conftest import ShopFactory
from tests.bot.driver import Shop, slow_turns
from tests.bot.world import CUSTOMER, WorldFactory
from tests.fakes.wechat import Failure

# The exposition is checked, not the database (its few counting queries run in the domain tests).
pytestmark = pytest.mark.sqlite_only

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(shop: Shop) -> Samples:
    response = await shop.client.get("/metrics")
    assert response.status == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_requests_by_type_and_outcome_count_a_retry_as_a_duplicate(sqlite_shop: Shop) -> None:
    user = sqlite_shop.user()
    xml = user.xml("text", content="苹果", msg_id=818181)
    await user.send(xml)
    await user.send(xml)  # WeChat's retry
    await user.event("subscribe")
    await sqlite_shop.client.app[INBOX].drain()
    samples = await scrape(sqlite_shop)
    assert value(samples, "storefront_requests_total", kind="text", outcome="replied") == 1
    assert value(samples, "storefront_requests_total", kind="text", outcome="duplicate") == 1
    assert value(samples, "storefront_requests_total", kind="event", outcome="replied") == 1
    assert value(samples, "storefront_deadline_misses_total", kind="text") == 0


async def test_a_failing_handler_is_counted_as_failed(sqlite_shop: Shop) -> None:
    inbox: Inbox = sqlite_shop.client.app[INBOX]

    async def broken(msg):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    inbox.respond = broken
    await sqlite_shop.user().say("苹果")
    samples = await scrape(sqlite_shop)
    assert value(samples, "storefront_requests_total", kind="text", outcome="failed") == 1


async def test_a_reply_past_the_deadline_is_one_deadline_miss(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    shop = await make_shop(sqlite_url, server={"reply_deadline_seconds": 0.5})
    inbox: Inbox = shop.client.app[INBOX]
    slow_turns(shop, 0.9)
    user = shop.user()
    xml = user.xml("text", content="苹果", msg_id=828282)
    assert (await user.send(xml)).kind == "none"
    assert (await user.send(xml)).kind == "none"  # the retry: another delivery, still one miss
    await inbox.drain()
    assert len(shop.outbox.for_user(user.openid)) == 1
    samples = await scrape(shop)
    assert value(samples, "storefront_deadline_misses_total", kind="text") == 1
    assert value(samples, "storefront_deferred_replies_total") == 2  # deliveries answered "success"
    assert value(samples, "storefront_requests_total", kind="text", outcome="replied") == 1


async def test_dialog_transitions_name_the_dialog_and_both_states(sqlite_shop: Shop) -> None:
    user = sqlite_shop.user()
    await user.say("苹果")  # a result list opens
    await user.say("2")  # its second product's card
    samples = await scrape(sqlite_shop)
    name = "storefront_dialog_transitions_total"
    assert value(samples, name, dialog="search", from_state="start", to_state="results") == 1
    assert value(samples, name, dialog="search", from_state="results", to_state="card") == 1


async def test_payments_by_result_and_orders_by_status(make_shop: ShopFactory, db_url: str) -> None:
    shop = await make_shop(db_url)
    user = shop.user(CUSTOMER)
    order_no = await place_order(shop, user)
    samples = await scrape(shop)
    assert value(samples, "storefront_orders", status="pending_payment") == 1
    assert value(samples, "storefront_orders", status="paid") == 0
    await pay(shop, order_no)
    order = await view(shop, order_no)
    signed = build_notification(
        secret=shop.config.pay.sandbox_secret, order_no=order_no, amount_fen=order.payable_fen
    )
    response = await shop.client.post(
        "/pay/notify/sandbox", data=signed.body, headers=signed.headers
    )
    assert response.status == 200  # another copy (another transaction): already paid, refunded
    await shop.client.app[PAYMENTS].drain()
    samples = await scrape(shop)
    name = "storefront_payment_notifications_total"
    assert value(samples, name, kind="payment", result="applied") == 1
    assert value(samples, name, kind="payment", result="already_paid") == 1
    assert value(samples, "storefront_orders", status="pending_payment") == 0
    assert value(samples, "storefront_orders", status="paid") == 1


async def test_outbox_depth_is_read_from_the_database_when_scraped(
    make_world: WorldFactory, db_url: str
) -> None:
    world = await make_world(db_url)
    await world.shop.user(CUSTOMER).say("你好")
    samples = await scrape(world.shop)
    assert value(samples, "storefront_outbox_messages", status="pending") == 0
    world.wechat.fail_next(Failure(errcode=-1), times=4)  # unreachable: the row waits for a retry
    await world.notify_paid()
    samples = await scrape(world.shop)
    assert value(samples, "storefront_outbox_messages", status="pending") == 1
    await world.make_due()
    assert await world.deliver_job() == 1
    samples = await scrape(world.shop)
    assert value(samples, "storefront_outbox_messages", status="pending") == 0
    assert value(samples, "storefront_outbox_messages", status="failed") == 0
    assert value(samples, "storefront_metrics_refresh_failures_total") == 0


async def test_a_slow_database_does_not_hang_the_scrape(sqlite_shop: Shop) -> None:
    metrics = sqlite_shop.client.app[METRICS]
    await sqlite_shop.user().say("你好")
    assert await metrics.refresh(_SlowSessions(), timeout=0.1) is False  # type: ignore[arg-type]
    samples = await scrape(sqlite_shop)  # the app's own database answers: gauges are there
    assert value(samples, "storefront_metrics_refresh_failures_total") == 1
    assert ("storefront_orders", frozenset({("status", "paid")})) in samples


class _SlowSessions:
    """A session factory whose database takes far too long to answer."""

    def __call__(self) -> _SlowSessions:
        return self

    async def __aenter__(self) -> _SlowSessions:
        await asyncio.sleep(10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

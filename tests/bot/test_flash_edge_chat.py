"""The rush at the webhook's edge (bot/flash_edge.py), through the real app: a flash sale's
losers are answered from a prepared reply with no statement run and no journal row written,
WeChat's retries of a loser's message get the same answer (decided once), a winner still
gets the pay card, and a unit that comes back after its payment window is grabbed again.
With Redis (the Lua gate, answers kept in Redis) and without (the same decision in process)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from bot.analytics import FLUSH_TASK
from bot.flash_edge import FlashEdge
from bot.keys import ENGINE, INBOX, JOBS
from commerce.catalog.models import Variant
from commerce.catalog.read import REFRESH_TASK
from commerce.customers.models import Customer
from commerce.messaging.models import InboundMessage
from commerce.orders.models import Order
from commerce.promotions import flash_sales
from commerce.promotions.models import FlashSale
from commerce.rules import utcnow
from scheduler.runner import run_job
from tests.bot.conftest import ShopFactory
from tests.bot.driver import ChatUser, Shop, db
from tests.commerce.factories import make_address

BACKGROUND = {FLUSH_TASK, REFRESH_TASK}


async def _shop(make_shop: ShopFactory, sqlite_url: str, redis_url: str, gate: str) -> Shop:
    return await make_shop(sqlite_url, redis={"url": redis_url}) if gate == "redis" else await make_shop(sqlite_url)


async def _buyer(shop: Shop, openid: str) -> ChatUser:
    user = shop.user(openid)
    await user.say("帮助")  # the customer exists once they wrote
    async with db(shop.client.app)() as session:
        customer_id = await session.scalar(select(Customer.id).where(Customer.openid == openid))
        assert customer_id is not None
        await make_address(session, customer_id)
        await session.commit()
    return user


async def _one_unit_sale(shop: Shop) -> int:
    async with db(shop.client.app)() as session:
        variant = await session.scalar(select(Variant).where(Variant.stock >= 5).order_by(Variant.id).limit(1))
        assert variant is not None
        sale = await flash_sales.create_sale(
            session, variant_id=variant.id, price_fen=variant.price_fen - 1, units=1,
            starts_at=utcnow() - timedelta(minutes=1), ends_at=utcnow() + timedelta(hours=1),
            per_user_limit=1, pay_minutes=10, now=utcnow(),
        )
        await session.commit()
        return sale.id


async def _journal_rows(shop: Shop) -> int:
    async with db(shop.client.app)() as session:
        return int(await session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


@contextmanager
def _statements(shop: Shop) -> Iterator[list[str]]:
    """Every statement the shop's engine runs meanwhile for a request (the journal's own writes
    show as rows). The shop's background loops, the events' writer and the catalog's refresh,
    run on their own clock and are left out: they are not any customer's turn."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        task = asyncio.current_task()
        if task is None or task.get_name() not in BACKGROUND:
            seen.append(statement)

    engine = shop.client.app[ENGINE].sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _edge(shop: Shop) -> FlashEdge:
    edge = shop.client.app[INBOX].edge
    assert isinstance(edge, FlashEdge)
    return edge


@pytest.mark.parametrize("gate", ["redis", "memory"])
async def test_losers_are_answered_at_the_edge_and_a_unit_that_comes_back_is_grabbed_again(
    make_shop: ShopFactory, sqlite_url: str, redis_url: str, gate: str
) -> None:
    shop = await _shop(make_shop, sqlite_url, redis_url, gate)
    sale_id = await _one_unit_sale(shop)
    winner, loser = await _buyer(shop, "o_edge_winner_1"), await _buyer(shop, "o_edge_loser_1")

    won = await winner.say("抢")
    assert won.kind == "news" and "抢到了" in won.articles[0].title  # the winner: the pay card, as before

    _edge(shop).recheck_seconds = 3600.0  # the sale as read: a loser now reads nothing at all
    rows = await _journal_rows(shop)
    lost_xml = loser.xml("text", content="抢")
    with _statements(shop) as statements:
        lost = await loser.send(lost_xml)
        again = await loser.send(lost_xml)  # WeChat's retry of the same MsgId
    assert "抢光" in lost.text and "看看同类的" in lost.text  # told, with something else to look at
    assert again.text == lost.text
    assert statements == []  # decided at the edge: not one statement
    assert await _journal_rows(shop) == rows  # nor written down in the journal
    with _statements(shop) as statements:
        assert "sold out" in (await loser.say("grab")).text  # in English when asked in English
    assert statements == []

    # the winner's order runs past its payment window: the unit is on sale again, at once
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Order).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await run_job("expire_unpaid_orders", shop.client.app[JOBS]) == 1
    assert (await loser.send(lost_xml)).text == lost.text  # the old message keeps its answer
    taken = await loser.say("抢")  # a new one takes the unit that came back
    assert taken.kind == "news" and "抢到了" in taken.articles[0].title
    async with db(shop.client.app)() as session:
        sale = await session.scalar(select(FlashSale).where(FlashSale.id == sale_id))
        assert sale is not None and (sale.held, sale.sold) == (1, 0)
    assert "抢光" in (await shop.user("o_edge_late_1").say("抢")).text  # and it is gone again


async def test_a_winner_s_retry_goes_on_to_its_turn_and_gets_the_pay_card(
    make_shop: ShopFactory, sqlite_url: str, redis_url: str
) -> None:
    shop = await make_shop(sqlite_url, redis={"url": redis_url})
    await _one_unit_sale(shop)
    winner = await _buyer(shop, "o_edge_winner_2")
    grab = winner.xml("text", content="抢")
    first = await winner.send(grab)
    retried = await winner.send(grab)  # the same MsgId: the turn's stored reply, not "holding" or "limit"
    assert first.kind == retried.kind == "news"
    assert first.articles[0].description == retried.articles[0].description
    async with db(shop.client.app)() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1


@pytest.mark.sqlite_only
async def test_customers_ask_for_a_unit_in_their_own_words(make_shop: ShopFactory, sqlite_url: str) -> None:
    """Not only the bare "抢": with a mark, a particle, "我要", a count, in English. Before, these
    fell through to a search for "抢" that found nothing, in the middle of a rush."""
    shop = await make_shop(sqlite_url)
    sale_id = await _one_unit_sale(shop)
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(FlashSale).where(FlashSale.id == sale_id).values(units=20))
    phrasings = ["抢！", "我要抢一个", "抢一个吧", "马上抢!!", "给我抢", "抢一件~", "grab!", "Grab", "grab one"]
    for n, text in enumerate(phrasings):
        user = await _buyer(shop, f"o_words_{n}")
        won = await user.say(text)
        assert won.kind == "news" and ("抢到了" in won.articles[0].title or "Got" in won.articles[0].title), (text, won)
    late = await _buyer(shop, "o_words_late")
    _edge(shop).recheck_seconds = 3600.0
    async with db(shop.client.app)() as session, session.begin():  # the rest sold elsewhere
        await session.execute(update(FlashSale).where(FlashSale.id == sale_id).values(units=len(phrasings)))
    assert "没有找到" not in (await late.say("我要抢！")).text


@pytest.mark.sqlite_only
async def test_customers_ask_whether_they_got_one_and_see_their_unit_or_where_to_look(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    """"抢到了吗", "我抢到了没有", "有没有抢到?", "did I get one?": a winner sees the pay card of
    the unit held for them again; someone holding none is told so and where to look. Before,
    the question was searched for as a product name and found nothing."""
    shop = await make_shop(sqlite_url)
    await _one_unit_sale(shop)
    winner, other = await _buyer(shop, "o_asks_winner"), await _buyer(shop, "o_asks_other")
    won = await winner.say("抢")
    assert won.kind == "news" and "抢到了" in won.articles[0].title
    for question in ("抢到了吗", "我抢到了没有", "有没有抢到？", "did I get one?"):
        again = await winner.say(question)
        assert again.kind == "news", (question, again)
        assert _order_no(again) == _order_no(won)  # the same unit, the same order (in the asker's language)
    for question in ("抢到了吗", "我抢到了没有"):
        told = await other.say(question)
        assert "没有抢到" in told.text and "秒杀" in told.text and "没有找到" not in told.text, (question, told)
    assert "no flash-sale unit" in (await other.say("did I get one?")).text


def _order_no(card: Any) -> str:
    found = re.search(r"SF\d+", card.articles[0].description)
    assert found is not None, card
    return found.group(0)

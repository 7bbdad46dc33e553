"""PostgreSQL restarted under a running shop: its pooled connections are dead.

The pool does not ping a connection before each use (commerce/db.py: a round trip and
~0.1 ms a transaction). A connection found dead instead makes the pool drop its stale
connections, and the chat turn, or the intake journal's write, runs again at once on a
fresh one: the customer gets the real answer, never the error text.
"""

from __future__ import annotations

from sqlalchemy import text

from commerce.db import create_engine
from tests.bot.conftest import ShopFactory


async def _kill_other_connections(url: str) -> int:
    """What a server restart does to a client's pool: every other backend of the database ends."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            killed = await conn.scalar(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ))
    finally:
        await engine.dispose()
    return int(killed or 0)


async def test_connections_killed_under_the_shop_cost_no_answer(
    make_shop: ShopFactory, postgres_url: str, redis_url: str
) -> None:
    shop = await make_shop(postgres_url, redis={"url": redis_url})
    user = shop.user("o_stale_pool")
    assert "香蕉" in (await user.say("香蕉")).text  # the pool now holds open connections
    assert await _kill_other_connections(postgres_url) > 0

    card = await user.say("1")  # the journal's claim, the dialog and the card read all meet dead connections
    assert "香蕉" in card.text + "".join(a.title for a in card.articles)
    added = await user.say("加入购物车")
    assert "已加入购物车" in added.text

    assert await _kill_other_connections(postgres_url) > 0
    cart = await user.say("购物车")
    assert "香蕉" in cart.text and "×1" in cart.text  # the add was kept once, not repeated

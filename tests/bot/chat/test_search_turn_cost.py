"""What a search turn costs the database, counted on the real app: statements and transactions.

A search is the commonest message. Its turn writes the message down (the journal's claim),
records the customer (at most once a minute), reads the stock of the page shown and writes
the reply: nothing more. Who is staff comes from one read of the whole staff, not one per
customer. Counted with a SQLAlchemy listener on every engine of this process (the app's
async engine and its blocking SQLite ones); the scheduler is off and the analytics batch
waits, so that nothing else runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

import bot.services
from commerce.messaging.models import InboundMessage
from tests.bot.conftest import OWNER, ShopFactory
from tests.bot.driver import Shop, db

# claim (the journal's row) + waking notices held for the window + touch + stock + reply; on
# PostgreSQL the wake rides in the claim's statement (`commerce.messaging.inbound._claim_and_wake`)
SEARCH_TURN_STATEMENTS = {"sqlite": 5, "postgres": 4}
SEARCH_TURN_TRANSACTIONS = 4
CLAIM = "WITH claimed AS"  # the claim and the wake, one statement on PostgreSQL


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0

    def about(self, table: str) -> list[str]:
        """The statements that name `table`, the journal's claim aside (it names `customers`
        on PostgreSQL, resetting the window's count when it woke held notices)."""
        return [s for s in self.statements if re.search(rf"\b{table}\b", s) and not s.startswith(CLAIM)]


@contextmanager
def counting() -> Iterator[Counted]:
    counted = Counted()

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if not sql.lstrip().upper().startswith("PRAGMA"):
            counted.statements.append(" ".join(sql.split()))

    def begun(conn: Any) -> None:
        counted.transactions += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "begin", begun)
    try:
        yield counted
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "begin", begun)


def _kind(db_url: str) -> str:
    return "postgres" if db_url.startswith("postgresql") else "sqlite"


async def quiet_shop(make_shop: ShopFactory, db_url: str) -> Shop:
    # the analytics events of these turns wait in memory (flushed as one batched INSERT every
    # `flush_seconds` or 500 events, off the reply path): not within the counted turn
    shop = await make_shop(
        db_url, scheduler={"enabled": False}, staff={"owners": [OWNER]}, analytics={"flush_seconds": 300.0}
    )
    assert "烟台红富士苹果" in (await shop.user("o_warm").say("苹果")).text  # the catalog is loaded
    return shop


async def test_a_search_turn_costs_five_statements_in_four_transactions(
    make_shop: ShopFactory, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five on SQLite; four on PostgreSQL, whose claim wakes the held notices itself."""
    shop = await quiet_shop(make_shop, db_url)
    customer = shop.user("o_searcher")
    await customer.say("龙井")  # known to the shop from now on
    monkeypatch.setattr(bot.services, "TOUCH_INTERVAL_SECONDS", 0.0)  # not seen this minute: touched again
    with counting() as counted:
        reply = await customer.say("苹果")
    assert "烟台红富士苹果" in reply.text
    assert len(counted.statements) == SEARCH_TURN_STATEMENTS[_kind(db_url)], counted.statements
    assert counted.transactions == SEARCH_TURN_TRANSACTIONS, counted.statements
    assert len(counted.about("customers")) == 1 and counted.about("customers")[0].startswith("UPDATE customers")
    assert len(counted.about("variants")) == 1  # the page's stock, one indexed query
    assert not counted.about("staff_members")


async def test_a_customer_seen_this_minute_is_not_written_again(make_shop: ShopFactory, db_url: str) -> None:
    shop = await quiet_shop(make_shop, db_url)
    customer = shop.user("o_searcher")
    await customer.say("龙井")
    with counting() as counted:
        reply = await customer.say("苹果")
    assert "烟台红富士苹果" in reply.text
    assert not counted.about("customers")
    assert len(counted.statements) == SEARCH_TURN_STATEMENTS[_kind(db_url)] - 1, counted.statements


async def test_many_customers_cost_no_staff_query_each(make_shop: ShopFactory, db_url: str) -> None:
    shop = await quiet_shop(make_shop, db_url)
    with counting() as counted:
        for n in range(5):
            assert "烟台红富士苹果" in (await shop.user(f"o_new_{n}").say("苹果")).text
    assert not counted.about("staff_members"), counted.statements


@pytest.mark.sqlite_only
async def test_a_staff_change_counts_at_once_though_the_staff_is_read_whole(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    shop = await quiet_shop(make_shop, sqlite_url)  # the staff has been read: nobody but the owner
    newcomer, owner = shop.user("o_new_helper"), shop.user(OWNER)
    assert "/mute" not in (await newcomer.say("/help")).text  # a customer: an ordinary answer
    assert "已添加员工" in (await owner.say("/staff add o_new_helper service")).text
    assert "/mute" in (await newcomer.say("/help")).text  # staff at once, not after the 30-s re-read
    code = (await owner.say("/staff remove o_new_helper")).text.split("确认码 ")[1][:4]
    assert "已移除员工" in (await owner.say(code)).text
    assert "/mute" not in (await newcomer.say("/help")).text


async def test_a_pinyin_word_of_six_letters_is_searched_without_looking_for_a_group(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    shop = await quiet_shop(make_shop, sqlite_url)
    with counting() as counted:
        reply = await shop.user("o_pinyin").say("caomei")  # six letters, as a group code has
    assert "草莓" in reply.text
    assert not counted.about("group_buys"), counted.statements


async def test_the_customer_step_touches_outside_the_fence_and_a_subscribe_inside_it(
    make_shop: ShopFactory, db_url: str
) -> None:
    """The touch before the route shares the journal's commit and marks no effects: a search
    run again after a crash is run in full. A subscribe's touch is the turn's own change,
    fenced: run again, it is not repeated."""
    shop = await quiet_shop(make_shop, db_url)
    await shop.user("o_reader").say("苹果")
    await shop.user("o_follower").event("subscribe")
    async with db(shop.client.app)() as session:
        rows = (await session.execute(select(InboundMessage.openid, InboundMessage.effects))).all()
    effects = {openid: wrote for openid, wrote in rows}
    assert effects["o_reader"] is False and effects["o_follower"] is True

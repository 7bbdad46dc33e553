"""SQLite's write lock held by another connection past the busy timeout (issue 13, item 6).

Before: the turn's write failed with "database is locked", the customer got the error
text and the order was never made. Now the turn runs again until the lock is released;
WeChat's wait passes meanwhile, so the real answer arrives as a customer-service message,
once. Past the turn's deadline the customer is told the message is kept, and it stays in
the intake journal, unanswered, for the sweeper.

The lock is taken (a plain `sqlite3` connection, `BEGIN IMMEDIATE`) right after the
message is written down, as another process would between the claim and the turn; the
busy timeout is 0.3 s and WeChat's passive deadline 0.5 s, to keep the test quick.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.chat.render import Rendered
from bot.devtools.simulator import Reply
from bot.keys import DELIVERY, INBOX, SERVICES
from bot.wechat import intake
from bot.wechat.inbox import Inbox
from bot.wechat.intake import DurableReplyStore
from commerce.cart.models import CartLine
from commerce.messaging.models import InboundMessage, InboundStatus
from commerce.orders.models import Order
from tests.bot.conftest import ShopFactory
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_shopping_chat import _open, _sku, _stock

FAST = {"server": {"reply_deadline_seconds": 0.5}, "database": {"busy_timeout_seconds": 0.3}}
ERROR_TEXT = "系统开小差了"
RELEASE_AT_LATEST = 30.0  # a lock held `until` the test says is released by then whatever happens


@contextmanager
def lock_after_claim(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, *, hold: float, until: asyncio.Event | None = None
) -> Iterator[None]:
    """Every message written down meanwhile: another connection takes SQLite's write lock
    at once, and releases it `hold` seconds later, or (with `until`) once the test sets
    `until` (at the latest after RELEASE_AT_LATEST): a lock held for as long as it takes."""
    store = _store(shop)
    claim = store.claim
    path = make_url(shop.config.database.url).database

    async def claim_then_lock(key: str, *, msg: Any = None) -> bool:
        claimed = await claim(key, msg=msg)
        other = sqlite3.connect(str(path), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the write lock, until the COMMIT (the timer below)
        if until is None:
            asyncio.get_running_loop().call_later(hold, _release, other)
        else:
            releases.append(asyncio.create_task(_release_when(until, other)))
        return claimed

    releases: list[asyncio.Task[None]] = []  # kept: a task nobody holds may be collected

    monkeypatch.setattr(store, "claim", claim_then_lock)
    try:
        yield
    finally:  # the lock taken stays held its time: the turn waits for it
        monkeypatch.setattr(store, "claim", claim)


def _release(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")
    conn.close()


async def _release_when(until: asyncio.Event, conn: sqlite3.Connection) -> None:
    try:
        await asyncio.wait_for(until.wait(), RELEASE_AT_LATEST)
    except TimeoutError:
        pass
    finally:
        _release(conn)


async def _loaded(shop: Shop) -> None:
    """The shop's catalog loaded, as in a shop that has served before: the first search waits
    for the first load, which a busy machine stretched past the 0.5 s reply deadline here
    (the search then answered "success" and the test found no results to pick from)."""
    await shop.client.app[SERVICES].catalog.snapshot()


def _store(shop: Shop) -> DurableReplyStore:
    store = shop.client.app[INBOX].replies
    assert isinstance(store, DurableReplyStore)
    return store


async def _late_answer(shop: Shop, user: ChatUser, passive: Reply) -> Rendered:
    """The one answer the customer got: passive, or (after WeChat gave up waiting) the
    customer-service message."""
    await shop.client.app[INBOX].drain()
    await shop.client.app[DELIVERY].drain()
    late = shop.outbox.for_user(user.openid)
    if passive.kind != "none":
        assert late == []
        return Rendered(passive.kind, text=passive.text)
    assert len(late) == 1, late
    return late[0]


async def test_a_lock_held_past_the_busy_timeout_still_gets_the_real_answers_and_one_order(
    make_shop: ShopFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await make_shop(sqlite_url, **FAST)
    await _loaded(shop)
    user = shop.user()
    banana = await _sku(shop, "香蕉", "")
    before = await _stock(shop, banana)
    await _open(user, "香蕉", "香蕉")

    with lock_after_claim(monkeypatch, shop, hold=1.0):
        passive = await user.say("加入购物车 2")
    added = await _late_answer(shop, user, passive)
    assert ERROR_TEXT not in added.text and "香蕉" in added.text and "×2" in added.text, added
    assert passive.kind == "none"  # WeChat's wait passed while the lock was held

    checkout = await user.say("结算")
    if "请发送收货信息" in checkout.text:
        await user.say("张三 13800138000 上海市浦东新区世纪大道100号")
        await user.say("确认")
    shop.outbox.sent.clear()
    with lock_after_claim(monkeypatch, shop, hold=1.0):
        passive = await user.say("确认")  # places the order
    card = await _late_answer(shop, user, passive)
    assert card.kind == "news", card
    assert card.articles[0].title.startswith("订单待支付")

    async with db(shop.client.app)() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
    assert await _stock(shop, banana) == before - 2  # the stock ledger balances: the order's two


async def test_past_the_turn_deadline_the_message_is_kept_and_the_sweeper_answers_it_later(
    make_shop: ShopFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # swept again 3 s after the lock's release, not 5 s: time enough to look at the journal
    # first (the notice goes out when the lock is released; at 0.2 s a loaded machine's
    # sweeper answered the message before the test read it)
    monkeypatch.setattr(intake, "POSTPONE_SECONDS", 3.0)
    shop = await make_shop(sqlite_url, database={**FAST["database"], "busy_deadline_seconds": 0.5},
                           server=FAST["server"])
    await _loaded(shop)
    user = shop.user()
    inbox: Inbox = shop.client.app[INBOX]
    await _open(user, "香蕉", "香蕉")  # before the lock: the card, so that the next turn writes

    with lock_after_claim(monkeypatch, shop, hold=1.5):
        passive = await user.say("加入购物车 2")  # a cart line: a write that must wait for the lock
    assert passive.kind == "none"
    told = await shop.outbox.wait_for(user.openid, 1)  # the turn gave up at its deadline, the lock held
    assert "保存" in told[0].text and ERROR_TEXT not in told[0].text, told
    [(status, reply)] = (await _journal(shop, user))[-1:]
    assert status != InboundStatus.ANSWERED.value and reply is None  # kept, unanswered, for a sweeper

    told = await shop.outbox.wait_for(user.openid, 2, timeout=10)  # the lock released: swept, run
    await inbox.drain()
    assert len(shop.outbox.for_user(user.openid)) == 2  # the notice, then the answer: once
    assert "香蕉" in told[1].text and "×2" in told[1].text and ERROR_TEXT not in told[1].text, told[1]
    [(status, reply)] = (await _journal(shop, user))[-1:]
    assert status == InboundStatus.ANSWERED.value and reply is not None


async def test_a_lock_held_for_long_gets_success_not_an_error_and_the_answer_comes_once_after(
    make_shop: ShopFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds SQLite's write lock past the reply's deadline and past every
    write's wait (a long import, a shell left open): the delivery that stops waiting cannot
    write so either. WeChat is answered "success" all the same (it was answered HTTP 500,
    which WeChat shows the customer as "this account cannot serve you now"), and once the
    lock goes the answer reaches the customer as a message, once."""
    monkeypatch.setattr(intake, "POSTPONE_SECONDS", 0.2)
    shop = await make_shop(sqlite_url, database={**FAST["database"], "busy_deadline_seconds": 0.5},
                           server=FAST["server"])
    await _loaded(shop)
    user = shop.user()
    await _open(user, "香蕉", "香蕉")
    released = asyncio.Event()
    with lock_after_claim(monkeypatch, shop, hold=0, until=released):
        passive = await user.say("加入购物车 2")  # a write that must wait for the lock: it does not get it
    assert passive.kind == "none"  # "success": not an error, and within WeChat's 5 seconds
    released.set()
    # the answer, perhaps after the "kept, we will answer" notice (when the postponement got
    # written before the sweeper ran the turn again)
    for count in (1, 2):
        told = await shop.outbox.wait_for(user.openid, count, timeout=15)
        if any("×2" in m.text for m in told):
            break
    await asyncio.sleep(1.0)  # time for a second answer, if one were coming
    sent = shop.outbox.for_user(user.openid)
    answers = [m for m in sent if "香蕉" in m.text and "×2" in m.text]
    assert len(answers) == 1 and all(ERROR_TEXT not in m.text for m in sent), sent
    async with db(shop.client.app)() as session:
        lines = await session.scalar(select(func.count()).select_from(CartLine))
    assert lines == 1  # the cart line added once


async def test_a_search_under_a_held_lock_is_answered_without_waiting_for_it(
    make_shop: ShopFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search writes nothing in its turn (the touch, the dialog and the reply go with the
    journal's own batched write), so the lock held past the turn's deadline does not stop
    its answer; the journal records it once the lock is released."""
    monkeypatch.setattr(intake, "POSTPONE_SECONDS", 0.2)
    shop = await make_shop(sqlite_url, database={**FAST["database"], "busy_deadline_seconds": 0.5},
                           server=FAST["server"])
    await _loaded(shop)
    user = shop.user()
    with lock_after_claim(monkeypatch, shop, hold=1.5):
        passive = await user.say("香蕉")
    answer = await _late_answer(shop, user, passive)
    assert "香蕉" in answer.text and "保存" not in answer.text and ERROR_TEXT not in answer.text, answer
    await asyncio.sleep(1.6)  # the lock released
    await shop.client.app[INBOX].drain()
    assert len(shop.outbox.for_user(user.openid)) <= 1  # never a second answer
    [(status, _reply)] = await _journal(shop, user)
    assert status == InboundStatus.ANSWERED.value


async def _journal(shop: Shop, user: ChatUser) -> list[tuple[str, Any]]:
    async with db(shop.client.app)() as session:
        rows = (await session.scalars(select(InboundMessage).where(InboundMessage.openid == user.openid))).all()
    return [(row.status, row.reply) for row in rows]

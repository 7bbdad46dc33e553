"""Durable intake: a message is written down before it is answered, and survives its worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType

import pytest
from redis.asyncio import Redis
from sqlalchemy import event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import cli
from bot.chat.middleware import Answer, Turn, opens_window
from bot.chat.render import Rendered
from bot.chat.replies import Text
from bot.cli import DeadWorkerLeases
from bot.devtools.simulator import SimulatorError
from bot.dialogs.store import DurableDialogStore, RedisDialogStore, StoredDialog
from bot.keys import INBOX
from bot.redis_link import RedisLink
from bot.wechat import intake
from bot.wechat.inbox import Inbox, LeaseLost
from bot.wechat.intake import POSTPONE_SECONDS, DurableReplyStore, Sweeper, fence, row_key
from bot.wechat.protocol import Inbound
from commerce.customers.customers import touch_customer
from commerce.customers.models import Customer
from commerce.db import create_engine
from commerce.messaging import inbound
from commerce.messaging.dialog_states import load_dialog, save_dialog
from commerce.messaging.models import InboundMessage, InboundStatus
from commerce.wiring import shop_uows
from tests.bot.conftest import ShopFactory
from tests.bot.driver import db


def _msg(msg_id: int, text: str = "苹果", openid: str = "o_intake") -> Inbound:
    return Inbound(openid=openid, account="gh", kind="text", create_time=1_700_000_000, msg_id=str(msg_id), text=text)


def _worker(engine: AsyncEngine, **options: float) -> DurableReplyStore:
    return DurableReplyStore(engine, opens_window=opens_window, **options)


def _die(store: DurableReplyStore) -> None:
    """The worker is killed: its leases are no longer renewed, its memory is gone."""
    if store._renewer is not None:
        store._renewer.cancel()
    store._held.clear()


async def test_a_message_is_claimed_by_one_worker_and_its_reply_reaches_the_other(engine: AsyncEngine) -> None:
    one, two = _worker(engine), _worker(engine)
    msg = _msg(1)
    assert await one.claim(msg.dedupe_key, msg=msg)
    assert not await two.claim(msg.dedupe_key, msg=msg)
    waiting = asyncio.create_task(two.wait(msg.dedupe_key, 5))
    assert await one.finish(msg.dedupe_key, Rendered("text", text="hi")) is False
    assert await waiting == Rendered("text", text="hi")
    await one.close()
    await two.close()


async def test_a_retry_of_a_message_this_worker_works_on_waits_for_it_without_a_write(engine: AsyncEngine) -> None:
    one = _worker(engine)
    msg = _msg(2)
    assert await one.claim(msg.dedupe_key, msg=msg)
    writes: list[object] = []
    real_run = one._writes.run

    async def counted(write: object) -> object:
        writes.append(write)
        return await real_run(write)  # type: ignore[arg-type]

    one._writes.run = counted  # type: ignore[method-assign]
    assert not await one.claim(msg.dedupe_key, msg=msg)  # WeChat's retry, while the turn runs
    assert writes == []  # not claimed again: no journal write
    waiting = asyncio.create_task(one.wait(msg.dedupe_key, 5))
    one._writes.run = real_run  # type: ignore[method-assign]
    assert await one.finish(msg.dedupe_key, Rendered("text", text="hi")) is False
    assert await waiting == Rendered("text", text="hi")  # the retry gets the turn's reply
    await one.close()


async def test_a_dead_workers_message_is_taken_over_by_a_retry_once_its_lease_ran_out(
    engine: AsyncEngine,
) -> None:
    dead, other = _worker(engine, lease_seconds=0.3), _worker(engine, lease_seconds=0.3)
    msg = _msg(2)
    assert await dead.claim(msg.dedupe_key, msg=msg)
    _die(dead)
    assert not await other.claim(msg.dedupe_key, msg=msg)  # a retry while the lease may be alive
    await asyncio.sleep(0.4)
    assert await other.claim(msg.dedupe_key, msg=msg)  # a later retry takes it over
    # the worker presumed dead finishes after all: the fence refuses it, the other answers
    with pytest.raises(LeaseLost):
        await dead.finish(msg.dedupe_key, Rendered("text", text="late"))
    assert await other.finish(msg.dedupe_key, Rendered("text", text="hi")) is False
    assert await other.wait(msg.dedupe_key, 0.1) == Rendered("text", text="hi")
    async with shop_uows(engine)() as uow:
        row = await uow.session.get(InboundMessage, row_key(msg.dedupe_key))
        assert row is not None and (row.status, row.attempts) == (InboundStatus.ANSWERED.value, 2)
    await other.close()


async def test_a_dead_workers_messages_released_by_its_supervisor_are_taken_over_at_once(
    engine: AsyncEngine, db_url: str
) -> None:
    """`serve --workers N`: the supervisor saw the worker die and hands its messages back
    (bot.cli.DeadWorkerLeases, the path it runs): a retry and a sweeper take them over at once,
    long before the (default, long) lease would have run out; the others' stay held."""
    dead, other = _worker(engine), _worker(engine)
    retried, left, held = _msg(20, openid="o_released"), _msg(21, openid="o_released"), _msg(22, openid="o_kept")
    for msg in (retried, left):
        assert await dead.claim(msg.dedupe_key, msg=msg)
    assert await other.claim(held.dedupe_key, msg=held)
    _die(dead)
    assert not await other.claim(retried.dedupe_key, msg=retried)  # its lease is alive: held by the dead one
    leases = DeadWorkerLeases(db_url)
    await asyncio.to_thread(leases.release, dead.owner)
    assert leases.pending == []
    assert await other.claim(retried.dedupe_key, msg=retried)  # WeChat's retry, at once
    assert [(taken, attempts) for taken, attempts in await other.take_expired()] == [(left, 2)]  # the sweeper's
    with pytest.raises(LeaseLost):  # the dead worker's fence: nothing of it is written any more
        await dead.finish(left.dedupe_key, Rendered("text", text="late"))
    for msg in (retried, left, held):
        assert await other.finish(msg.dedupe_key, Rendered("text", text="hi")) is (msg is left)
    await other.close()


async def test_a_release_the_database_refused_is_tried_again(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor's release waits a bounded time for a locked (or absent) database and
    keeps the dead worker's owner until a later round gets through."""
    monkeypatch.setattr(cli, "RELEASE_TIMEOUT_SECONDS", 0.05)
    engine = create_engine(sqlite_url)
    dead = _worker(engine)
    msg = _msg(23, openid="o_release_later")
    try:
        assert await dead.claim(msg.dedupe_key, msg=msg)
        _die(dead)
        leases = DeadWorkerLeases(sqlite_url)
        other = sqlite3.connect(str(make_url(sqlite_url).database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            await asyncio.to_thread(leases.release, dead.owner)
            assert leases.pending == [dead.owner]
        finally:
            other.execute("COMMIT")
            other.close()
        await asyncio.to_thread(leases.retry)  # the supervisor's next round
        assert leases.pending == []
        taker = _worker(engine)
        assert [taken for taken, _attempts in await taker.take_expired()] == [msg]
        await taker.close()
    finally:
        await engine.dispose()


async def test_a_delivery_that_cannot_write_its_give_up_lets_wechat_ask_again_and_the_answer_comes_once(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers on one SQLite file; the one that did not take the message waits for the
    other's reply while another process holds the write lock past its deadline. It cannot
    write that it stopped waiting, so it neither answers "success" (the reply would then be
    stored for nobody) nor fails (HTTP 500): it answers only after WeChat's 5 seconds, and
    WeChat's retry is answered with the reply, or "success" when the reply went as a message."""
    monkeypatch.setattr(intake, "PAST_WECHAT_SECONDS", 0.3)
    engine = create_engine(sqlite_url, busy_timeout_ms=0)
    working, polling = _worker(engine, poll_seconds=0.02), _worker(engine, poll_seconds=0.02)
    msg = _msg(31, openid="o_polling_under_a_lock")
    try:
        assert await working.claim(msg.dedupe_key, msg=msg)
        assert not await polling.claim(msg.dedupe_key, msg=msg)  # a retry, landed on the other worker
        other = sqlite3.connect(str(make_url(sqlite_url).database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            started = time.monotonic()
            assert await polling.wait(msg.dedupe_key, 0.2) is None  # no error: no answer (WeChat retries)
            assert time.monotonic() - started >= 0.2 + intake.PAST_WECHAT_SECONDS
        finally:
            other.execute("COMMIT")
            other.close()
        deferred = await working.finish(msg.dedupe_key, Rendered(kind="text", text="香蕉 ¥12.90"))
        retried = await polling.wait(msg.dedupe_key, 1.0)  # WeChat's retry of the message
        # exactly one way to the customer: the passive reply to the retry, or a message
        assert (retried is not None) != deferred
        assert retried is None or retried.text == "香蕉 ¥12.90"
    finally:
        await working.close()
        await polling.close()
        await engine.dispose()


def _ignore_sigterm_and_wait(ready: EventType) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(60)


async def test_a_worker_killed_at_shutdown_has_its_messages_handed_back(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that does not stop on SIGTERM within the stop timeout is killed by the
    supervisor, and what it held is handed back like a dead worker's."""
    monkeypatch.setattr(cli, "STOP_TIMEOUT_SECONDS", 0.2)
    engine = create_engine(sqlite_url)
    stuck = _worker(engine)
    msg = _msg(25, openid="o_stuck_at_shutdown")
    try:
        assert await stuck.claim(msg.dedupe_key, msg=msg)
        _die(stuck)
        context = multiprocessing.get_context("fork")
        ready = context.Event()
        process = context.Process(target=_ignore_sigterm_and_wait, args=(ready,))
        process.start()
        assert await asyncio.to_thread(ready.wait, 10)  # its signal handler in place
        slot = cli._Slot(0, process, stuck.owner, time.monotonic())
        leases = DeadWorkerLeases(sqlite_url)
        assert await asyncio.to_thread(cli._stop_workers, [slot], leases) == 1  # not a clean stop
        assert not process.is_alive() and leases.pending == []
        taker = _worker(engine)
        assert [taken for taken, _attempts in await taker.take_expired()] == [msg]
        await taker.close()
    finally:
        await engine.dispose()


async def test_a_reply_that_could_not_be_stored_hands_its_message_back_once_the_database_answers(
    engine: AsyncEngine,
) -> None:
    """A live worker's turn ended while the database was away: the message is run again as
    soon as the database is back (the sweeper's next round), not when the long lease runs out."""
    live, other = _worker(engine), _worker(engine)
    msg = _msg(24, openid="o_stranded")
    assert await live.claim(msg.dedupe_key, msg=msg)
    run = live._writes.run

    async def away(write: object) -> object:
        raise ConnectionError("database away")

    live._writes.run = away  # type: ignore[method-assign, assignment]
    with pytest.raises(ConnectionError):
        await live.finish(msg.dedupe_key, Rendered("text", text="系统开小差了"))
    with pytest.raises(ConnectionError):
        await live.hand_back()  # a round while it is still away: kept for the next
    assert await other.take_expired() == []  # still held by its lease
    live._writes.run = run  # type: ignore[method-assign]
    assert await live.hand_back() == 1
    assert [(taken, attempts) for taken, attempts in await other.take_expired()] == [(msg, 2)]
    assert await live.hand_back() == 0
    assert await other.finish(msg.dedupe_key, Rendered("text", text="hi")) is True  # goes out as a message
    await other.close()
    await live.close()


async def test_a_lease_is_renewed_while_the_message_is_worked_on(engine: AsyncEngine) -> None:
    # renewed every third of a lease: a loaded machine may hold a renewal back a while, so the
    # lease leaves it 0.6 s, and the wait still outlasts two leases
    working, other = _worker(engine, lease_seconds=1.0), _worker(engine, lease_seconds=1.0)
    msg = _msg(3)
    assert await working.claim(msg.dedupe_key, msg=msg)
    await asyncio.sleep(2.5)  # two and a half leases long
    assert not await other.claim(msg.dedupe_key, msg=msg)
    assert await other.take_expired() == []
    assert await working.finish(msg.dedupe_key, Rendered("text", text="hi")) is False
    await working.close()


async def test_answered_messages_are_pruned_after_the_deduplication_window(engine: AsyncEngine) -> None:
    store = _worker(engine, keep_seconds=0)
    msg = _msg(4)
    assert await store.claim(msg.dedupe_key, msg=msg)
    await store.finish(msg.dedupe_key, Rendered("text", text="hi"))
    await asyncio.sleep(0.01)
    assert await store.prune() == 1
    async with shop_uows(engine)() as uow:
        assert await uow.session.scalar(select(InboundMessage.key)) is None


async def test_answered_messages_are_kept_for_the_conversations_retention(engine: AsyncEngine) -> None:
    store = _worker(engine, keep_seconds=0, history_seconds=3600)
    msg = _msg(6)
    assert await store.claim(msg.dedupe_key, msg=msg)
    await store.finish(msg.dedupe_key, Rendered("text", text="hi"))
    await asyncio.sleep(0.01)
    assert await store.prune() == 0  # the conversation is kept an hour
    async with shop_uows(engine)() as uow:
        await uow.session.execute(update(InboundMessage).values(received_at=datetime.now(UTC) - timedelta(hours=2)))
    assert await store.prune() == 1
    await store.close()


async def test_a_stopping_worker_hands_back_what_it_did_not_finish(engine: AsyncEngine) -> None:
    stopping, other = _worker(engine), _worker(engine)
    msg = _msg(5)
    assert await stopping.claim(msg.dedupe_key, msg=msg)
    await stopping.close()
    [(taken, attempts)] = await other.take_expired()
    assert (taken, attempts) == (msg, 2)
    await other.close()


async def test_a_long_event_key_is_kept_under_a_hashed_key(engine: AsyncEngine) -> None:
    store = _worker(engine)
    msg = Inbound(openid="o_intake", account="gh", kind="event", create_time=1, event="click", event_key="k" * 300)
    assert await store.claim(msg.dedupe_key, msg=msg)
    assert len(row_key(msg.dedupe_key)) <= 160
    assert await store.finish(msg.dedupe_key, Rendered("text", text="hi")) is False
    await store.close()


# ---- through the app -----------------------------------------------------------------------------


async def test_the_sweeper_answers_what_a_dead_worker_left_as_a_customer_service_message(
    make_shop: ShopFactory, db_url: str
) -> None:
    shop = await make_shop(db_url, scheduler={"enabled": False})
    inbox: Inbox = shop.client.app[INBOX]
    engine = create_engine(db_url)
    try:
        dead = _worker(engine, lease_seconds=0.2)
        user = shop.user("o_left_behind")
        msg = _msg(6, "苹果", user.openid)
        assert await dead.claim(msg.dedupe_key, msg=msg)  # the webhook answered nothing yet
        _die(dead)
    finally:
        await engine.dispose()
    await asyncio.sleep(0.3)
    assert isinstance(inbox.replies, DurableReplyStore)
    await Sweeper(inbox, inbox.replies).sweep()  # or the shop's own sweeper, each second, took it first
    await inbox.drain()
    [sent] = await shop.outbox.wait_for(user.openid, 1)
    assert "烟台红富士苹果" in sent.text
    # WeChat's late retry is answered "success": the reply went out already
    retry = await user.send(user.xml("text", content="苹果", msg_id=6))
    assert retry.kind == "none"
    assert len(shop.outbox.for_user(user.openid)) == 1
    async with db(shop.client.app)() as session:
        row = await session.get(InboundMessage, msg.dedupe_key)
        assert row is not None and row.status == InboundStatus.ANSWERED.value and row.reply is not None


async def test_a_message_that_cannot_be_written_down_is_not_answered_success(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    shop = await make_shop(sqlite_url)
    inbox: Inbox = shop.client.app[INBOX]

    async def broken(key: str, *, msg: Inbound | None = None) -> bool:
        raise ConnectionError("database away")

    inbox.replies.claim = broken  # type: ignore[method-assign]
    with pytest.raises(SimulatorError, match="503"):
        await shop.user().say("苹果")


# ---- the turn's own transactions are fenced --------------------------------------------------------


async def _turn_writes(engine: AsyncEngine, store: DurableReplyStore, msg: Inbound) -> None:
    """What a turn's route does: a unit of work that changes something, fenced on `msg`."""
    with inbound.fenced(key=row_key(msg.dedupe_key), owner=store.owner):
        async with shop_uows(engine)() as uow:
            await touch_customer(uow.session, msg.openid, messaged=True)


async def test_a_turn_that_committed_before_its_worker_died_is_not_processed_again(engine: AsyncEngine) -> None:
    dead, other = _worker(engine, lease_seconds=0.2), _worker(engine, lease_seconds=0.2)
    msg = _msg(7)
    assert await dead.claim(msg.dedupe_key, msg=msg)
    await _turn_writes(engine, dead, msg)  # the cart line is added...
    _die(dead)  # ...and the worker is killed before the reply is written down
    await asyncio.sleep(0.3)
    [(taken, _attempts)] = await other.take_expired()
    assert taken == msg and other.already_done(msg.dedupe_key)
    await other.close()


async def _effects(engine: AsyncEngine, msg: Inbound) -> bool:
    async with shop_uows(engine)() as uow:
        row = await uow.session.get(InboundMessage, row_key(msg.dedupe_key))
        assert row is not None
        return bool(row.effects)


async def test_a_message_marked_early_is_marked_once_and_unmarked_by_a_rollback(engine: AsyncEngine) -> None:
    """`mark_early` (a flash grab's turn: its commit comes right after the contended rows):
    the mark is the transaction's, so a rollback takes it back; the next transaction that
    writes marks the message at its commit as any other; marked early, the commit does not
    mark it a second time; a worker that lost the message is refused. (On SQLite the mark
    stays at the commit, and these hold all the same.)"""
    store = _worker(engine, lease_seconds=30)
    msg = _msg(11, openid="o_marked_early")
    assert await store.claim(msg.dedupe_key, msg=msg)
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with inbound.fenced(key=row_key(msg.dedupe_key), owner=store.owner):
        async with shop_uows(engine)() as uow:
            await inbound.mark_early(uow.session)
            await uow.session.rollback()  # a grab refused after its writes
        assert not await _effects(engine, msg)
        async with shop_uows(engine)() as uow:  # a later transaction of the turn that writes
            await touch_customer(uow.session, msg.openid, messaged=True)
        assert await _effects(engine, msg)
        statements.clear()
        async with shop_uows(engine)() as uow:
            await inbound.mark_early(uow.session)
            await touch_customer(uow.session, msg.openid, messaged=True)
        marks = [s for s in statements if s.startswith("UPDATE inbound_messages SET effects")]
        assert len(marks) == 1, statements
    _die(store)
    other = _worker(engine, lease_seconds=30)
    async with shop_uows(engine)() as uow:  # another worker holds it now: refused before any write
        await uow.session.execute(
            update(InboundMessage).where(InboundMessage.key == row_key(msg.dedupe_key)).values(lease_owner=other.owner)
        )
    with inbound.fenced(key=row_key(msg.dedupe_key), owner=store.owner), pytest.raises(inbound.TakenOver):
        async with shop_uows(engine)() as uow:
            await inbound.mark_early(uow.session)  # refused here on PostgreSQL, at the commit on SQLite
            await touch_customer(uow.session, msg.openid, messaged=True)
    await store.close()
    await other.close()


async def test_a_worker_that_lost_its_message_cannot_commit_the_turn(engine: AsyncEngine) -> None:
    slow, other = _worker(engine, lease_seconds=0.2), _worker(engine, lease_seconds=0.2)
    msg = _msg(8, openid="o_fenced_out")
    assert await slow.claim(msg.dedupe_key, msg=msg)
    _die(slow)  # stalled past its lease
    await asyncio.sleep(0.3)
    assert await other.claim(msg.dedupe_key, msg=msg)
    assert not other.already_done(msg.dedupe_key)  # nothing was committed: processed in full
    with pytest.raises(inbound.TakenOver):
        await _turn_writes(engine, slow, msg)
    async with shop_uows(engine)() as uow:
        assert await uow.session.scalar(select(Customer.id).where(Customer.openid == msg.openid)) is None
    await other.close()


async def test_a_dialog_step_saved_by_a_turn_is_state_not_an_effect(engine: AsyncEngine, redis_url: str) -> None:
    """A turn that only moved the dialog (a search, a pick) is run again after a takeover,
    and a slow worker whose lease was taken can still save the step (any run saves it)."""
    redis = Redis.from_url(redis_url)
    slow, other = _worker(engine, lease_seconds=0.2), _worker(engine, lease_seconds=0.2)
    dialogs = DurableDialogStore(
        RedisDialogStore(redis, prefix="t:dialog-state:"), RedisLink(redis), shop_uows(engine), slow.write
    )
    msg = _msg(10, "1", "o_dialog_state")
    step = StoredDialog("search", "card", 1, {"product_id": 1}, expires_at=9e9)
    assert await slow.claim(msg.dedupe_key, msg=msg)
    with inbound.fenced(key=row_key(msg.dedupe_key), owner=slow.owner):
        await dialogs.put(msg.openid, step)
    _die(slow)
    await asyncio.sleep(0.3)
    assert await other.claim(msg.dedupe_key, msg=msg)
    assert not other.already_done(msg.dedupe_key)  # the pick is run again, not "already done"
    with inbound.fenced(key=row_key(msg.dedupe_key), owner=slow.owner):
        await dialogs.put(msg.openid, step)  # the slow worker's save is not refused
    await redis.flushdb()  # read back from the database
    assert await dialogs.get(msg.openid) == step
    await other.close()
    await redis.aclose()


async def test_a_swept_message_whose_turn_committed_is_answered_with_a_notice(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    shop = await make_shop(sqlite_url, scheduler={"enabled": False})
    inbox: Inbox = shop.client.app[INBOX]
    engine = create_engine(sqlite_url)
    try:
        dead = _worker(engine, lease_seconds=0.2)
        msg = _msg(9, "加入购物车", "o_committed")
        assert await dead.claim(msg.dedupe_key, msg=msg)
        await _turn_writes(engine, dead, msg)
        _die(dead)
    finally:
        await engine.dispose()
    await asyncio.sleep(0.3)
    assert isinstance(inbox.replies, DurableReplyStore)
    await Sweeper(inbox, inbox.replies).sweep()  # or the shop's own sweeper, each second, took it first
    await inbox.drain()
    [sent] = await shop.outbox.wait_for(msg.openid, 1)
    assert "已经处理好了" in sent.text  # not "已加入购物车": the add is not made twice


# ---- a turn the database kept busy ------------------------------------------------------------------


async def test_a_postponed_message_stays_unanswered_for_a_sweeper(engine: AsyncEngine) -> None:
    busy = _worker(engine)
    msg = _msg(11, openid="o_postponed")
    assert await busy.claim(msg.dedupe_key, msg=msg)
    waiting = asyncio.create_task(busy.wait(msg.dedupe_key, 5))
    await asyncio.sleep(0)  # the delivery waits for the reply
    notice = Rendered("text", text="kept")
    assert await busy.postpone(msg.dedupe_key, notice) is False  # a delivery waits: it gets the notice
    assert await waiting == notice
    assert len(busy) == 0  # no longer held (nor renewed) here
    async with shop_uows(engine)() as uow:
        row = await uow.session.get(InboundMessage, row_key(msg.dedupe_key))
        assert row is not None and (row.status, row.reply) == (InboundStatus.RECEIVED.value, None)
    later = datetime.now(UTC) + timedelta(seconds=POSTPONE_SECONDS + 1)
    sweeper = DurableReplyStore(engine, opens_window=opens_window, clock=lambda: later)
    assert [taken for taken, _attempts in await sweeper.take_expired()] == [msg]  # run again, in full
    assert not sweeper.already_done(msg.dedupe_key)
    with pytest.raises(LeaseLost):  # and the first worker has nothing more to say about it
        await busy.postpone(msg.dedupe_key, notice)
    await sweeper.close()
    await busy.close()


async def test_a_turn_that_committed_before_the_database_got_busy_is_not_run_again(engine: AsyncEngine) -> None:
    store = _worker(engine)
    msg = _msg(12, openid="o_busy_after_commit")
    assert await store.claim(msg.dedupe_key, msg=msg)
    runs: list[int] = []

    async def route(turn: Turn) -> Answer:
        runs.append(1)
        async with shop_uows(engine)() as uow:
            await touch_customer(uow.session, msg.openid, messaged=True)  # committed: a cart line, say
        raise OperationalError("UPDATE ...", {}, sqlite3.OperationalError("database is locked"))

    step = fence(store)
    with pytest.raises(OperationalError):
        await step(Turn(msg, "zh"), route)
    again = await step(Turn(msg, "zh"), route)  # the busy retry: the committed write is not repeated
    assert again.reply == Text("message_recovered") and runs == [1]
    await store.close()


async def test_a_reply_waits_for_a_lock_held_longer_than_the_journals_busy_timeout(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake, "SQLITE_BUSY_TIMEOUT_MS", 200)  # one wait of the batcher: 0.2 s
    engine = create_engine(sqlite_url)
    store = _worker(engine, busy_deadline_seconds=5)
    msg = _msg(13, openid="o_late_reply")
    assert await store.claim(msg.dedupe_key, msg=msg)
    other = sqlite3.connect(str(make_url(sqlite_url).database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writes for 1 s: five of the batcher's waits
    asyncio.get_running_loop().call_later(1.0, other.execute, "COMMIT")
    try:
        assert await store.finish(msg.dedupe_key, Rendered("text", text="hi")) is False
        assert await store.wait(msg.dedupe_key, 0.1) == Rendered("text", text="hi")
    finally:
        other.close()
        await store.close()
        await engine.dispose()


async def test_a_dialog_step_waits_out_a_lock_longer_than_one_busy_wait(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dialog's save (after a turn's order may have committed) waits for SQLite's lock
    as the reply does: failing, it would fail the turn, which would run again and be
    answered `message_recovered` instead of with its pay card."""
    monkeypatch.setattr(intake, "SQLITE_BUSY_TIMEOUT_MS", 100)  # one wait of the journal's writer
    engine = create_engine(sqlite_url)
    store = _worker(engine)
    other = sqlite3.connect(str(make_url(sqlite_url).database), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock: 3 waits' worth
        keep = datetime.now(UTC) + timedelta(days=1)
        saving = asyncio.create_task(store.write(lambda conn: save_dialog(conn, "o_locked", "{}", keep_until=keep)))
        await asyncio.sleep(0.3)
        assert not saving.done()
        other.execute("COMMIT")
        await saving
        async with shop_uows(engine)() as uow:
            assert await load_dialog(uow.session, "o_locked", now=datetime.now(UTC)) == "{}"
    finally:
        other.close()
        await store.close()
        await engine.dispose()

"""Durable intake: every message written down in the database before it is answered.

`DurableReplyStore` is the inbox's `ReplyStore` for the app. Its claim writes the message
down (`commerce.messaging.inbound`) in the transaction that claims it, so the webhook
answers "success" only for a message some worker holds in the database, and the row's
unique key is the claim across workers. The claimer holds a lease that it renews while it
works (one UPDATE per worker every `lease / 3`, only while it holds messages). When a
worker dies, its messages are handed back at once by the supervisor of
`serve --workers N`, which sees the death the moment it happens and knows the worker's
lease owner (it gave it: `owner`; `commerce.messaging.inbound.release_owner`); without
that supervisor (another process manager, or it died with them), when their leases
run out. Then:

- WeChat's next retry of the message claims it again and processes it itself;
- else a `Sweeper` (in every worker, every `every` seconds) takes it over and processes
  it, one user's messages in the order they came, and the reply goes out as a
  customer-service message through the outbound sender (nobody waits for it any more).

A live worker whose turn ended while the database was away (its reply could not be
stored) hands the message back itself at its sweeper's first round that reaches the
database again (`hand_back`), so it is run again then, not when its lease runs out.

The lease is long (`LEASE_SECONDS`) because the supervisor, not its running out, is how a
dead worker's messages are normally taken over: a worker whose event loop is starved by
a burst renews late, and a short lease would hand a live worker's message to another
(which then answers `message_recovered` instead of the turn's own reply).

The journal's statements are built once and, on SQLite, run on the event loop without
ever waiting there for the lock (`WriteBatcher`): a claim and a finishing write measured
0.3 ms of CPU together. The finishing write is fenced (it stores the reply only while
its writer holds the lease), so of a worker presumed dead and the one that took over,
one answers. A retry waits for the reply in process (a future) when this worker works on
the message, else polls the row by its key, every 0.1 s doubling to 1 s: retries come
when answers are late, that is when the shop is busiest, and hundreds of them polling
every 0.1 s would add their load exactly then. Answered rows keep their reply for the
de-duplication window, then the sweeper prunes them.

A turn's changes are committed before its reply is written down. So that a worker killed
between the two does not leave a message that is processed again (a cart line added
twice), the turn's transactions are fenced (`fence`, a step of the message chain, and
`commerce.messaging.inbound.fenced`): a transaction that writes marks the message's row,
and a worker that takes over a marked message answers it with `message_recovered`
instead of processing it; a transaction of a worker that lost the message is refused.
What stays outside the fence: a dialog's step (in Redis, and in the database through this
journal's own connection, `write`), and writes of the steps before the route (the
customer touch: harmless to repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.chat.middleware import Answer, Middleware, Next, Turn
from bot.chat.render import Rendered, RenderedArticle
from bot.chat.replies import Text
from bot.wechat.inbox import DEDUPE_SECONDS, Inbox, LeaseLost
from bot.wechat.protocol import Inbound
from commerce.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    TURN_DEADLINE_SECONDS,
    SqliteBusy,
    blocking_sqlite_engine_for,
    is_stale_connection,
    run_nonblocking_sqlite,
)
from commerce.messaging import inbound
from commerce.uow import Clock, wall_clock

log = logging.getLogger(__name__)

# Renewed every third: a live worker keeps its messages through 20 s of a starved event loop
# (the slowest answers measured under 200 customers at once took 5 s). It only decides how
# soon a dead worker's messages are taken over when no supervisor hands them back at once.
LEASE_SECONDS = 30.0
KEY_LIMIT = 160  # the row key's column; longer keys (a long EventKey) are hashed
MAX_ATTEMPTS = 4  # a message that killed its worker this often is answered politely instead
BATCH_LIMIT = 64  # writes in one transaction at most
PARALLEL_BATCHES = 4  # transactions of queued writes at once on PostgreSQL (SQLite: one)
PRUNE_ROUNDS = 100  # batches of old answers deleted per pruning at most (50,000 rows)
BUSY_PAUSE_SECONDS = 0.001  # SQLite's lock is taken: the first pause before trying again (doubles)
# ...up to this. Short: the turns' own transactions (another connection, waiting in SQLite's
# busy handler) take the lock back to back under a rush, and a journal writer pausing 50 ms
# found it free only once they were all done: a flash sale's 100 winners, their replies
# written by then, were answered in the same instant, 2.4 s in. A try costs tens of µs.
BUSY_PAUSE_MAX_SECONDS = 0.002
POLL_MAX_SECONDS = 1.0  # a retry waiting for another worker's reply polls at most this far apart
POSTPONE_SECONDS = 5.0  # a message postponed (the database stayed busy) is swept again after this
# a delivery that stops waiting writes so (`inbound.give_up`) for at most this long; past it
# (another process holds SQLite's lock) it answers "success" and the worker remembers
GIVE_UP_WAIT_SECONDS = 0.5
# a delivery polling another worker's turn that cannot write that it stops waiting answers
# only this long after its deadline, past WeChat's 5 seconds: WeChat asks again (its retry)
PAST_WECHAT_SECONDS = 1.5
_INBOUND_FIELDS = frozenset(f.name for f in fields(Inbound))
T = TypeVar("T")
Write = Callable[[Connection], Any]


def row_key(key: str) -> str:
    """The journal's key for a de-duplication key (hashed when too long for the column)."""
    if len(key) <= KEY_LIMIT:
        return key
    return "h:" + hashlib.sha256(key.encode()).hexdigest()


def dump_message(msg: Inbound) -> dict[str, Any]:
    return asdict(msg)


def load_message(data: dict[str, Any]) -> Inbound:
    return Inbound(**{k: v for k, v in data.items() if k in _INBOUND_FIELDS})


def dump_reply(rendered: Rendered) -> dict[str, Any]:
    return asdict(rendered)


def load_reply(data: dict[str, Any]) -> Rendered:
    articles = tuple(RenderedArticle(**article) for article in data.get("articles") or ())
    return Rendered(str(data.get("kind", "text")), text=str(data.get("text", "")), articles=articles)


class WriteBatcher:
    """Runs the journal's statements handed to it, sharing transactions when they queue.

    On SQLite a write's few short statements run at once on the event loop
    (`create_blocking_sqlite_engine`: no thread hand-over per statement, which measured
    several times their cost), over a connection that never waits for SQLite's lock: when
    another connection holds it, the write queues here and waits without blocking. Queued
    writes go together, one transaction for all that arrived meanwhile (group commit), so a
    worker never has two of its own writers waiting for the lock, and writes run in the
    order they came.

    On PostgreSQL (and an in-memory SQLite) every write queues and a batch runs through
    `AsyncConnection.run_sync`, up to `PARALLEL_BATCHES` batches at once on their own
    connections: a batch's statements are round trips one after another, so a single
    writer made every claim, dialog step and reply of a swamped worker wait in one line.
    Writes a caller issues one after another (awaiting each) still happen in that order.

    A batch that fails is retried write by write, so a bad write fails alone.
    """

    def __init__(self, engine: AsyncEngine, *, limit: int = BATCH_LIMIT) -> None:
        self._engine = engine
        self._blocking: Engine | None = blocking_sqlite_engine_for(engine)
        self._limit = limit
        # one writer on SQLite (one write lock; an in-memory database is one connection's)
        self._parallel = 1 if engine.dialect.name == "sqlite" else PARALLEL_BATCHES
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def run(self, write: Callable[[Connection], T]) -> T:
        if self._blocking is not None and not self._pending and not self._writers:
            try:  # SQLite, nothing queued: at once, on the loop (it cannot interleave with anything)
                return run_nonblocking_sqlite(self._blocking, write)
            except SqliteBusy:
                pass  # another connection writes: queue up and wait without blocking
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future))
        if len(self._writers) < self._parallel:
            writer = asyncio.create_task(self._write_all())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return cast(T, await asyncio.shield(future))

    async def _write_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._limit], self._pending[self._limit :]
            await self._write(batch)

    async def _write(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        writes = [write for write, _future in batch]
        try:
            results = await self._in_transaction(writes)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            for item in batch:  # one bad write must not fail the others
                await self._write([item])
            return
        for (_write, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    async def _in_transaction(self, writes: list[Write]) -> list[Any]:
        if self._blocking is None:
            try:
                return await self._on_engine(writes)
            except Exception as exc:
                if not is_stale_connection(exc):
                    raise
                return await self._on_engine(writes)  # the pool dropped its dead connections: once more
        pause, deadline = BUSY_PAUSE_SECONDS, time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return run_nonblocking_sqlite(self._blocking, lambda conn: [write(conn) for write in writes])
            except SqliteBusy:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(pause)  # someone else writes: let them, then try again
            pause = min(pause * 2, BUSY_PAUSE_MAX_SECONDS)

    async def _on_engine(self, writes: list[Write]) -> list[Any]:
        async with self._engine.begin() as conn:
            return await conn.run_sync(lambda sync: [write(sync) for write in writes])

    def close(self) -> None:
        if self._blocking is not None:
            self._blocking.dispose()


def _settle(future: asyncio.Future[Any], *, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class DurableReplyStore:
    """The inbox's claims, waits and replies on the inbound journal (see the module)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        opens_window: Callable[[Inbound], bool],
        lease_seconds: float = LEASE_SECONDS,
        keep_seconds: float = DEDUPE_SECONDS,
        history_seconds: float = 0.0,
        poll_seconds: float = 0.1,
        busy_deadline_seconds: float = TURN_DEADLINE_SECONDS,
        clock: Clock = wall_clock,
        owner: str | None = None,
    ) -> None:
        # this worker, while it lives; given by the supervisor that releases its messages when it dies
        self.owner = owner or inbound.new_owner()
        if len(self.owner) > inbound.OWNER_LIMIT:
            raise ValueError(f"a lease owner is at most {inbound.OWNER_LIMIT} characters")
        self._busy_deadline = busy_deadline_seconds  # a reply waits this long for SQLite's lock
        self._engine = engine
        self._opens_window = opens_window
        self._lease = timedelta(seconds=lease_seconds)
        self._keep = timedelta(seconds=keep_seconds)
        # answered messages (with their replies) are kept this long: the conversations staff
        # may read back (`service.keep_days`); 0: only the de-duplication window
        self._history = timedelta(seconds=history_seconds)
        self._poll = poll_seconds
        self._clock = clock
        # keys this worker works on -> (reply, deferred) once finished
        self._held: dict[str, asyncio.Future[tuple[Rendered, bool]]] = {}
        self._done: set[str] = set()  # held keys whose turn committed changes before (not run again)
        # held keys whose waiting delivery stopped waiting (answered "success") without getting
        # that written down: the turn's finish (or postponement) writes it, and the reply goes
        # out as a message
        self._given_up: set[str] = set()
        # keys whose reply (or postponement) could not be written down (the database was away):
        # still ours in the database, handed back by the sweeper's next round that gets through
        self._stranded: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._writes = WriteBatcher(engine)

    # ---- ReplyStore ---------------------------------------------------------------------------

    async def claim(self, key: str, *, msg: Inbound | None = None) -> bool:
        if msg is None:
            raise ValueError("the durable store writes the message down: pass it")
        if key in self._held:  # a retry of a message this worker works on: wait for that work,
            return False  # without a write (under a rush, retries came when writes were slowest)
        message, opens = dump_message(msg), self._opens_window(msg)
        claimed = await self._writes.run(
            lambda conn: inbound.claim(
                conn, key=row_key(key), openid=msg.openid, message=message, owner=self.owner,
                now=self._clock(), lease=self._lease, opens_window=opens,
            )
        )
        if claimed is None:
            return False
        if claimed.attempts > 1:
            # its last holder stopped, handed it back, or (under overload) ran past its lease
            # or its deadline and WeChat's retry came: not always a worker that died
            log.warning("message claimed again", extra={"attempts": claimed.attempts})
        self._hold(key, done=claimed.effects)
        return True

    async def wait(self, key: str, timeout: float) -> Rendered | None:
        future = self._held.get(key)
        if future is not None:  # worked on here: no need to poll
            try:
                rendered, deferred = await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                return await self._give_up_held(key, future)
            return None if deferred else rendered  # deferred: it goes out as a message
        until, pause = time.monotonic() + timeout, self._poll
        while True:
            entry = await self._writes.run(lambda conn: inbound.entry(conn, row_key(key)))
            if entry is None or entry.answered or entry.deferred:
                return _passive(entry)  # deferred: someone gave up waiting, it goes out as a message
            left = until - time.monotonic()
            if left <= 0:
                return await self._give_up_polled(key)
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, POLL_MAX_SECONDS)

    async def write(self, work: Callable[[Connection], None]) -> None:
        """Another short write (a dialog's state, `bot.dialogs.store`) in the journal's group
        commit: concurrent turns' writes share one transaction. Committed when it returns.
        It waits out SQLite's lock as a reply does: failing, it would fail a turn whose
        order may already be committed, which then runs again and is answered
        `message_recovered` instead of with its pay card."""
        await self._write_when_free(work)

    async def _give_up(self, key: str) -> Rendered | None:
        return _passive(await self._writes.run(lambda conn: inbound.give_up(conn, row_key(key))))

    async def _give_up_polled(self, key: str) -> Rendered | None:
        """A delivery stops waiting for a turn another worker runs. When the give-up cannot be
        written (another process holds SQLite's write lock), that worker will not know to send
        the reply as a message: so this delivery lets WeChat's own wait run out instead of
        answering "success" (it was answered HTTP 500), and WeChat's retry asks again, to be
        answered with the stored reply, or "success" once the give-up did land and the reply
        went as a message. The write stays queued meanwhile."""
        try:
            return await asyncio.wait_for(self._give_up(key), GIVE_UP_WAIT_SECONDS)
        except (TimeoutError, SqliteBusy):
            log.warning("a delivery could not stop waiting while the database was locked; WeChat will ask again")
            await asyncio.sleep(PAST_WECHAT_SECONDS)
            return None

    async def _give_up_held(self, key: str, future: asyncio.Future[tuple[Rendered, bool]]) -> Rendered | None:
        """A delivery stops waiting for a turn this worker runs. When the give-up cannot be
        written at once (another process holds SQLite's write lock), the delivery is answered
        "success" all the same and the worker remembers it (`_given_up`): the turn's finish
        writes it with the reply and sends the reply as a message. Waiting for the write
        instead held the request past WeChat's 5 seconds, and failing it answered HTTP 500."""
        try:
            return await asyncio.wait_for(self._give_up(key), GIVE_UP_WAIT_SECONDS)
        except (TimeoutError, SqliteBusy):
            if future.done() and not future.cancelled():  # finished meanwhile: as its write says
                rendered, deferred = future.result()
                return None if deferred else rendered
            log.warning("a delivery stopped waiting while the database was locked; the reply goes as a message")
            self._given_up.add(key)
            return None

    async def finish(self, key: str, rendered: Rendered) -> bool:
        future = self._held.pop(key, None)
        self._done.discard(key)
        reply = dump_reply(rendered)
        given_up = key in self._given_up
        deferred = await self._stranded_unless_written(key, lambda conn: inbound.finish(
            conn, key=row_key(key), owner=self.owner, reply=reply, now=self._clock(), keep=self._keep,
            given_up=given_up,
        ))
        self._given_up.discard(key)  # written (or the message is another worker's now)
        if deferred is None:
            raise LeaseLost(key)  # waiters here time out and read the other worker's answer
        if future is not None and not future.done():
            future.set_result((rendered, deferred))
        return deferred

    async def postpone(self, key: str, rendered: Rendered) -> bool:
        """The turn could not run now (the database stayed busy past the turn's deadline):
        hand the message back unanswered, for a sweeper to run again shortly, and answer a
        waiting delivery with `rendered` (the "kept, we will answer" notice). True when no
        delivery waits for it: the notice must go out through the sender."""
        future = self._held.pop(key, None)
        self._done.discard(key)
        until = self._clock() + timedelta(seconds=POSTPONE_SECONDS)
        given_up = key in self._given_up
        deferred = await self._stranded_unless_written(
            key, lambda conn: inbound.postpone(conn, key=row_key(key), owner=self.owner, until=until, given_up=given_up)
        )
        self._given_up.discard(key)
        if deferred is None:
            raise LeaseLost(key)
        if future is not None and not future.done():
            future.set_result((rendered, deferred))
        return deferred

    async def _stranded_unless_written(self, key: str, write: Callable[[Connection], T]) -> T:
        """`write` (the end of the turn of the message `key`); when it fails (the database is
        away or stayed locked), the message, still held here in the database but no longer
        renewed, is kept to be handed back (`hand_back`) as soon as the database answers,
        rather than waiting for its lease to run out."""
        try:
            return await self._write_when_free(write)
        except Exception:
            self._stranded.add(key)
            raise

    async def _write_when_free(self, write: Callable[[Connection], T]) -> T:
        """`write`, tried again while SQLite stays locked (each try waits out the batcher's
        own busy timeout), up to the busy deadline: the reply of a turn that ran is not lost
        to a lock that outlasts one wait."""
        until = time.monotonic() + self._busy_deadline
        while True:
            try:
                return await self._writes.run(write)
            except SqliteBusy:
                if time.monotonic() >= until:
                    raise
                log.warning("a journal write waits for the database's write lock")

    # ---- leases -------------------------------------------------------------------------------

    def _hold(self, key: str, *, done: bool) -> None:
        self._held[key] = asyncio.get_running_loop().create_future()
        if done:
            self._done.add(key)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_while_held())

    async def _renew_while_held(self) -> None:
        """One UPDATE for all the messages this worker holds, every third of a lease."""
        while self._held:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            keys = [row_key(key) for key in self._held]
            if not keys:
                return
            try:
                renew = functools.partial(inbound.renew, owner=self.owner, keys=keys, now=self._clock(),
                                          lease=self._lease)
                kept = await self._writes.run(renew)
            except Exception:
                log.warning("message leases could not be renewed", exc_info=True)
                continue
            if kept < len(keys):
                log.info("some held messages were answered or taken over meanwhile", extra={"lost": len(keys) - kept})

    # ---- what the sweeper does -----------------------------------------------------------------

    async def take_expired(self, *, limit: int = 50) -> list[tuple[Inbound, int]]:
        """Messages whose lease ran out, now held here, oldest first, with their attempts."""
        keys = await self._writes.run(lambda conn: inbound.expired_keys(conn, now=self._clock(), limit=limit))
        taken: list[tuple[Inbound, int]] = []
        for key in keys:
            take = functools.partial(inbound.take_expired, key=key, owner=self.owner, now=self._clock(),
                                     lease=self._lease)
            claimed = await self._writes.run(take)
            if claimed is None:
                continue  # another worker was first
            msg = load_message(claimed.message)
            self._hold(msg.dedupe_key, done=claimed.effects)
            taken.append((msg, claimed.attempts))
        return taken

    async def hand_back(self) -> int:
        """Hand back, due at once, the messages whose turn ended while the database was away
        (their reply could not be stored): a sweeper runs them again. How many went back;
        raises while the database is still away (the sweeper tries again next round)."""
        if not self._stranded:
            return 0
        stranded = set(self._stranded)
        keys = [row_key(key) for key in stranded]
        released = await self._writes.run(
            lambda conn: inbound.release(conn, owner=self.owner, keys=keys, now=self._clock())
        )
        self._stranded -= stranded
        if released:
            log.warning("messages whose reply could not be stored handed back", extra={"count": released})
        return released

    async def prune(self, *, rounds: int = PRUNE_ROUNDS) -> int:
        """Delete answered rows past the de-duplication window and older than the history kept,
        a batch at a time (a short transaction each, so the lock is never held long), until none
        is left or `rounds`."""
        pruned = 0
        for _round in range(rounds):
            deleted = await self._writes.run(
                lambda conn: inbound.prune(conn, now=self._clock(), keep=self._history)
            )
            pruned += deleted
            if deleted < inbound.PRUNE_BATCH:
                break
            await asyncio.sleep(0)  # let the messages waiting for the lock in
        return pruned

    async def close(self) -> None:
        """Stop renewing; hand back what this worker did not finish (taken at once by another)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        keys = [row_key(key) for key in (*self._held, *self._stranded)]
        self._held.clear()
        self._done.clear()
        self._stranded.clear()
        if keys:
            await self._writes.run(lambda conn: inbound.release(conn, owner=self.owner, keys=keys, now=self._clock()))
        self._writes.close()

    def mark_done(self, key: str) -> None:
        """The held message's turn committed changes: it is answered, not run again."""
        if key in self._held:
            self._done.add(key)

    def already_done(self, key: str) -> bool:
        """Whether the turn of this held message committed its changes before (a dead worker's)."""
        return key in self._done

    def __len__(self) -> int:
        return len(self._held)


def fence(store: DurableReplyStore) -> Middleware:
    """The step before the route: the turn's transactions are fenced on the message's lease,
    and a message whose turn committed before its worker died is answered, not run again."""

    async def step(turn: Turn, call_next: Next) -> Answer:
        key = turn.msg.dedupe_key
        if store.already_done(key):
            log.warning("message taken over after its changes were committed: not processed again")
            return Answer(Text("message_recovered"), turn.locale)
        with inbound.fenced(key=row_key(key), owner=store.owner) as turn_fence:
            try:
                return await call_next(turn)
            except BaseException:
                if turn_fence.marked:  # a run again (busy database) must not repeat its writes
                    store.mark_done(key)
                raise

    return step


def _passive(entry: inbound.Entry | None) -> Rendered | None:
    """The reply a delivery answers with: the stored one, unless it goes out later (deferred)."""
    if entry is None or not entry.answered or entry.deferred or entry.reply is None:
        return None
    return load_reply(entry.reply)


class Sweeper:
    """In every worker: processes what dead workers left, and prunes old answers."""

    def __init__(
        self,
        inbox: Inbox,
        store: DurableReplyStore,
        *,
        every: float = 1.0,
        prune_every: float = 10.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._inbox = inbox
        self._store = store
        self._every = every
        self._prune_every = prune_every
        self._max_attempts = max_attempts
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """Take over every expired message now (a dead worker's, a released or postponed one,
        this worker's own that it could not answer while the database was away); how many.
        One user's run in their order."""
        await self._store.hand_back()
        taken = await self._store.take_expired()
        by_user: dict[str, list[tuple[Inbound, bool]]] = {}
        for msg, attempts in taken:
            by_user.setdefault(msg.openid, []).append((msg, attempts > self._max_attempts))
        for messages in by_user.values():
            self._inbox.recover(messages)
        if taken:
            log.warning("unfinished messages taken over (a stopped worker's, or postponed)", extra={"count": len(taken)})
        return len(taken)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        pruned_at = time.monotonic()
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.sweep()
                if time.monotonic() - pruned_at >= self._prune_every:
                    pruned_at = time.monotonic()
                    await self._store.prune()
            except Exception:  # the database is away: the next sweep tries again
                log.warning("inbound sweep failed", exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

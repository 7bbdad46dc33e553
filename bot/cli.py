"""`storefront`: the one command-line entry point (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess

from aiohttp import web
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot.config import Config, ConfigError, load_config, parse_plan
from bot.logs import AccessLogger, configure_logging
from commerce.balance import topups
from commerce.catalog.seed import catalog_is_empty, seed_demo_catalog, seed_demo_group_buys
from commerce.db import create_engine, run_blocking
from commerce.media.store import LocalMediaStore
from commerce.messaging import inbound
from commerce.migrate import upgrade
from commerce.wiring import shop_uows

log = logging.getLogger("storefront")


async def prepare_database(config: Config, *, seed: bool) -> int:
    """Migrate the database to the newest schema; load the demo catalog (and its group
    buys, and its pictures drawn into media.dir) when asked, the catalog is empty and the
    shop is a development one: a shop taking real money never gets the demo products."""
    engine = create_engine(config.database.url)
    try:
        await upgrade(engine)
        if not seed or not config.is_development:
            return 0
        # imported here: bot.services brings in the whole bot (a second of start-up
        # that `db upgrade`, `--help` and the config checks do not need)
        from bot.services import shop_rules

        rules = shop_rules(config)
        async with shop_uows(engine, rules=rules)() as uow:
            session = uow.session
            if not await catalog_is_empty(session):
                return 0
            created = await seed_demo_catalog(session, media=LocalMediaStore(config.media.dir))
            await seed_demo_group_buys(session, rules=rules, now=uow.now)
            for plan in config.balance.demo_plans:  # "充值" shows something on the demo shop
                pay_fen, bonus_fen = parse_plan(plan)
                await topups.set_plan(session, pay_fen=pay_fen, bonus_fen=bonus_fen)
            return created
    finally:
        await engine.dispose()


def _cmd_serve(config: Config, args: argparse.Namespace) -> int:
    if not 1 <= args.workers <= 64:
        print("storefront: --workers must be between 1 and 64", file=sys.stderr)
        return 2
    if args.workers > 1 and not config.redis.url:
        print("storefront: several workers share dialog state, de-duplication, per-user order, "
              "rate limits and the access token through Redis: set redis.url "
              "(STOREFRONT_REDIS__URL)", file=sys.stderr)
        return 2
    seeded = asyncio.run(prepare_database(config, seed=config.shop.seed_demo))
    config = asyncio.run(_resolve_secrets(config))  # every worker and the access log share them
    from bot.chat.render import precompile

    precompile()  # the message templates compiled once, here: no worker compiles on its loop
    base = config.public_base_url
    modes = {"safe": "safe mode (AES)", "compatible": "compatible mode (AES and plaintext)", "plain": "plain mode"}
    print(f"{config.shop.name} is starting ({modes[config.message_mode]})")
    if seeded:
        print(f"  loaded the demo catalog: {seeded} products")
    print(f"  webhook:  {base}/wechat   (set this URL and the token in the WeChat console)")
    print(f"  health:   {base}/healthz   metrics: {_metrics_where(config)}")
    if config.is_development:
        if config.server.dev_tools != "off":
            print(f"  chat simulator (browser): {base}/dev/chat"
                  + ("   (from this machine only)" if config.server.dev_tools == "loopback" else ""))
        print("  payments: SANDBOX - simulated payments mark orders paid; set [pay] provider before going live")
    for warning in security_warnings(config):
        print(f"  WARNING: {warning}", file=sys.stderr)
    url = f"http://{_connect_host(config.server.host)}:{config.server.port}/wechat"
    chat = f"storefront chat --url {url}"
    if args.config_path:
        chat += f" --config {args.config_path}"
    print(f"  chat with it from another terminal:  {chat}", flush=True)
    if args.workers > 1:
        return _serve_workers(config, args.workers)
    return _serve_one(config, reuse_port=False)


async def _resolve_secrets(config: Config) -> Config:
    from bot.install import resolve_install_secrets

    engine = create_engine(config.database.url)
    try:
        return await resolve_install_secrets(config, shop_uows(engine))
    finally:
        await engine.dispose()


def _metrics_where(config: Config) -> str:
    server = config.server
    if server.metrics_listen:
        return f"http://{server.metrics_listen}/metrics (its own address)"
    if server.metrics_token:
        return f"{config.public_base_url}/metrics (Authorization: Bearer <server.metrics_token>)"
    if config.is_development:
        return f"{config.public_base_url}/metrics"
    return "off (set server.metrics_listen or server.metrics_token)"


def security_warnings(config: Config) -> list[str]:
    """What an operator should fix before this shop takes real customers' messages."""
    warnings = []
    if config.wechat.max_clock_skew_seconds == 0:
        warnings.append("wechat.max_clock_skew_seconds = 0: a signature copied from any request never "
                        "expires (the default is 300)")
    if config.message_mode == "plain" and not config.is_development:
        warnings.append("plain message mode: the signature covers no message body; set "
                        "wechat.encoding_aes_key and choose safe mode (安全模式) in the WeChat console")
    if config.message_mode == "compatible":
        warnings.append("compatible message mode: plaintext requests are answered as customers only; "
                        "staff commands need encrypted requests (switch the console to 安全模式 when you can)")
    if not config.is_development and config.wechat.token == "storefront-dev-token":
        warnings.append("wechat.token is the built-in development token: anyone can sign requests with it")
    if not config.is_development and not config.server.base_url.startswith("https://"):
        warnings.append("server.base_url is not an https:// address: payment and export links would travel in clear")
    if not config.is_development and config.sms.provider == "sandbox":
        warnings.append('sms.provider = "sandbox" shows each member\'s one-time code in the chat: anyone can '
                        'bind any phone number; set [sms] provider = "tencent"')
    return warnings


def _serve_one(config: Config, *, reuse_port: bool, intake_owner: str | None = None) -> int:
    from bot.app import create_app

    loop = _event_loop(config)  # before the app: nothing of it may bind to another loop
    try:
        web.run_app(
            create_app(config, intake_owner=intake_owner), host=config.server.host, port=config.server.port,
            print=None, reuse_port=reuse_port or None, backlog=config.server.backlog, loop=loop,
            # aiohttp's own access log writes whole request lines: link tokens, signatures, openids
            access_log_class=AccessLogger.keyed(config.signing_key),
        )
    except OSError as exc:
        print(f"storefront: cannot listen on {config.server.host}:{config.server.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _event_loop(config: Config) -> asyncio.AbstractEventLoop:
    """A new event loop of the kind `server.event_loop` names, set as the thread's loop."""
    if config.server.event_loop == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def _worker(config: Config, intake_owner: str) -> None:
    configure_logging(fmt=config.server.log_format)
    _stop_when_orphaned()
    sys.exit(_serve_one(config, reuse_port=True, intake_owner=intake_owner))


ORPHAN_CHECK_SECONDS = 1.0


def _stop_when_orphaned() -> None:
    """A worker whose supervisor died (kill -9, out of memory) stops as on SIGTERM, finishing
    what it holds: left running, it would keep serving the port beside the next `serve`'s
    workers, with old code and settings, and nobody would restart or stop it."""
    import signal
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_SECONDS)
        log.error("the supervisor (pid %s) is gone; this worker stops", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


RESTART_PAUSE_SECONDS = 1.0  # the first pause before a dead worker is started again; doubles
RESTART_PAUSE_MAX_SECONDS = 30.0
STEADY_SECONDS = 60.0  # a worker that lived this long died of something new: the pause starts over
STOP_TIMEOUT_SECONDS = 30.0  # for the workers to finish their messages after SIGTERM
RELEASE_TIMEOUT_SECONDS = 5.0  # one try at handing a dead worker's messages back; tried again next round


@dataclass
class _Slot:
    """One worker place: its current process and lease owner, and how its recent deaths pace
    its restart."""

    number: int
    process: BaseProcess
    owner: str
    started: float
    quick_deaths: int = 0
    restart_at: float | None = None


@dataclass
class DeadWorkerLeases:
    """Hands a dead worker's unanswered messages back the moment it died
    (`commerce.messaging.inbound.release_owner`: one UPDATE), so that WeChat's next retry or
    a living worker's sweeper takes them over at once instead of after the lease
    (`server.intake_lease_seconds`). A release the database refused (it is away, or locked
    past `RELEASE_TIMEOUT_SECONDS`) is tried again at every round of the supervisor."""

    url: str
    pending: list[str] = field(default_factory=list)

    def release(self, owner: str) -> None:
        self.pending.append(owner)
        self.retry()

    def retry(self) -> None:
        while self.pending:
            owner = self.pending[0]
            release = functools.partial(inbound.release_owner, owner=owner, now=datetime.now(UTC))
            try:
                released = run_blocking(self.url, release, timeout=RELEASE_TIMEOUT_SECONDS)
            except Exception as exc:  # the database is away: its messages wait for the next round
                log.warning("a dead worker's messages could not be handed back yet: %s", type(exc).__name__)
                return
            self.pending.pop(0)
            if released:
                log.warning("a dead worker's %s unanswered messages handed back for another worker", released)


def _serve_workers(config: Config, count: int) -> int:
    """N stateless worker processes on one port (SO_REUSEPORT: the kernel spreads
    connections); everything they share lives in the database and Redis, and each
    scheduled tick runs once across them (a Redis lock).

    The parent supervises them: it gives each worker its lease owner, so a worker that dies
    (any exit, kill -9 included) has its unanswered messages handed back at once (`DeadWorkerLeases`)
    for the others to take over; it is logged and started again after a pause that doubles
    while it keeps dying quickly, so that no place stays empty and a crash loop does not
    spin. SIGTERM or SIGINT to the parent stops every worker cleanly (they finish what they
    hold) and then the parent."""
    import multiprocessing
    import signal

    context = multiprocessing.get_context("spawn")

    def start(number: int) -> tuple[BaseProcess, str]:
        owner = inbound.new_owner()  # the worker's lease owner: known here, released here when it dies
        process = context.Process(target=_worker, args=(config, owner), name=f"storefront-worker-{number}")
        process.start()
        return process, owner

    slots = [_Slot(n, *start(n), time.monotonic()) for n in range(count)]
    leases = DeadWorkerLeases(config.database.url)
    print(f"  {count} workers on port {config.server.port}: pids {' '.join(str(s.process.pid) for s in slots)}",
          flush=True)
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        _supervise(slots, start, leases)
    return _stop_workers(slots, leases)


def _supervise(slots: list[_Slot], start: Callable[[int], tuple[BaseProcess, str]], leases: DeadWorkerLeases) -> None:
    """Wait a moment for a worker to die; hand its messages back and schedule its restart;
    start the ones that are due."""
    from multiprocessing.connection import wait

    wait([slot.process.sentinel for slot in slots if slot.restart_at is None], timeout=0.5)
    now = time.monotonic()
    for slot in slots:
        if slot.restart_at is None and not slot.process.is_alive():
            _schedule_restart(slot, now)
            leases.release(slot.owner)
        elif slot.restart_at is not None and slot.restart_at <= now:
            (slot.process, slot.owner), slot.started, slot.restart_at = start(slot.number), now, None
            log.warning("worker %s restarted: pid %s", slot.number, slot.process.pid)
            print(f"  worker {slot.number} restarted: pid {slot.process.pid}", flush=True)
    leases.retry()


def _schedule_restart(slot: _Slot, now: float) -> None:
    slot.quick_deaths = slot.quick_deaths + 1 if now - slot.started < STEADY_SECONDS else 1
    pause = min(RESTART_PAUSE_MAX_SECONDS, RESTART_PAUSE_SECONDS * 2 ** (slot.quick_deaths - 1))
    slot.restart_at = now + pause
    log.error("worker %s (pid %s) died (%s); starting it again in %.0f s",
              slot.number, slot.process.pid, _exit_reason(slot.process.exitcode), pause)


def _exit_reason(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def _stop_workers(slots: list[_Slot], leases: DeadWorkerLeases) -> int:
    """SIGTERM to every living worker (aiohttp stops gracefully on it, handing back what it
    did not finish), then wait; a worker still running after `STOP_TIMEOUT_SECONDS` is
    killed and its messages handed back here (once: the database may be away). 0 when
    every worker stopped cleanly."""
    import signal

    owners = {slot.process: slot.owner for slot in slots}
    running = [slot.process for slot in slots if slot.restart_at is None and slot.process.is_alive()]
    for process in running:
        if process.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in running:
        process.join(max(0.0, deadline - time.monotonic()))
    stuck = [process for process in running if process.is_alive()]
    for process in stuck:
        process.kill()
        process.join()
    clean = (0, -signal.SIGINT, -signal.SIGTERM)
    failed = stuck or [process for process in running if process.exitcode not in clean]
    for process in failed:
        leases.pending.append(owners[process])
    leases.retry()
    return 1 if failed else 0


def _cmd_chat(config: Config, args: argparse.Namespace) -> int:
    from bot.devtools.simulator import run_chat

    url = args.url or f"http://{_connect_host(config.server.host)}:{config.server.port}/wechat"
    if args.aes and not config.wechat.encoding_aes_key:
        print("storefront: --aes needs wechat.encoding_aes_key in the config", file=sys.stderr)
        return 2
    if args.plain and args.aes:
        print("storefront: choose --aes or --plain, not both", file=sys.stderr)
        return 2
    # Like WeChat: encrypted whenever the shop can decrypt, unless --plain asks otherwise.
    aes = args.aes or (config.message_mode != "plain" and not args.plain)
    try:
        asyncio.run(
            run_chat(
                url=url,
                token=config.wechat.token,
                appid=config.wechat.appid,
                encoding_aes_key=config.wechat.encoding_aes_key,
                openid=args.openid,
                aes=aes,
            )
        )
    except KeyboardInterrupt:
        print()
    return 0


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _cmd_db(config: Config, args: argparse.Namespace) -> int:
    asyncio.run(prepare_database(config, seed=False))
    print("database is at the newest schema")
    return 0


def _cmd_seed(config: Config, args: argparse.Namespace) -> int:
    if not config.is_development:
        print("storefront: the demo catalog is for development shops only (pay.provider = \"sandbox\"); "
              "import your own catalog instead", file=sys.stderr)
        return 2
    created = asyncio.run(prepare_database(config, seed=True))
    print(f"demo catalog: {created} products created" if created else "catalog not empty: nothing loaded")
    return 0


def _cmd_menu_push(config: Config, args: argparse.Namespace) -> int:
    """Check the menu file, then replace the account's custom menu with it."""
    from pathlib import Path

    from bot.handlers.events import MENU_CATEGORY_PREFIX, MENU_KEYS
    from bot.wechat.menu import MenuError, load_menu

    try:
        menu = load_menu(Path(args.file), base_url=config.public_base_url)
    except MenuError as exc:
        print(f"storefront: {exc}", file=sys.stderr)
        return 2
    for key in menu.click_keys():
        if key not in MENU_KEYS and not key.startswith(MENU_CATEGORY_PREFIX):
            print(f"  note: the shop answers the click key {key!r} with the help text", file=sys.stderr)
    if not config.wechat.appsecret:
        print("storefront: pushing the menu needs wechat.appsecret (STOREFRONT_WECHAT__APPSECRET)", file=sys.stderr)
        return 2
    import aiohttp

    from bot.wechat.api import WeChatError

    try:
        asyncio.run(_push_menu(config, menu.body))
    except (WeChatError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        print(f"storefront: WeChat refused the menu or could not be reached: {exc}", file=sys.stderr)
        return 1
    print(f"menu pushed: {len(menu.body['button'])} buttons (WeChat clients show it within about 5 minutes)")
    return 0


async def _push_menu(config: Config, body: dict[str, object]) -> None:
    import aiohttp

    from bot.wechat.api import (
        AccessTokenManager,
        MemoryTokenStore,
        StableTokenFetcher,
        WeChatClient,
    )

    wechat = config.wechat
    async with aiohttp.ClientSession() as http:
        # stable_token in normal mode hands out the token the running shop holds: it stays valid
        fetch = StableTokenFetcher(http, base_url=wechat.api_base_url, appid=wechat.appid, appsecret=wechat.appsecret)
        client = WeChatClient(
            http, base_url=wechat.api_base_url, tokens=AccessTokenManager(fetch, MemoryTokenStore()),
            timeout=wechat.api_timeout_seconds,
        )
        await client.create_menu(body)


def _cmd_job(config: Config, args: argparse.Namespace) -> int:
    """Run one scheduled job now, inside the same wiring the server uses."""
    from dataclasses import replace

    from bot.app import create_app
    from bot.keys import JOBS, OUTBOUND
    from scheduler.jobs import JOBS as KNOWN_JOBS
    from scheduler.runner import run_job

    if args.name not in KNOWN_JOBS:
        print(f"storefront: unknown job {args.name!r}; jobs: {', '.join(KNOWN_JOBS)}", file=sys.stderr)
        return 2

    async def run() -> int:
        await prepare_database(config, seed=False)
        app = create_app(replace(config, scheduler=replace(config.scheduler, enabled=False)))
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            handled = await run_job(args.name, app[JOBS])
            for sent in getattr(app[OUTBOUND], "sent", ()):
                print(f"  -> {sent.openid}: {sent.message.text or sent.message.kind}")
            return handled
        finally:
            await runner.cleanup()

    handled = asyncio.run(run())
    print(f"{args.name}: {handled} handled")
    return 0


def _cmd_backup_create(config: Config, args: argparse.Namespace) -> int:
    """A backup zip of the whole database (`commerce.backup`), made while the shop may run."""
    from pathlib import Path

    from commerce.backup import BackupError
    from commerce.backup.archive import create_backup_blocking

    now = datetime.now(UTC)
    out = Path(args.out) if args.out else Path(f"storefront-backup-{now:%Y%m%d-%H%M%S}.zip")
    try:
        manifest = create_backup_blocking(config.database.url, out, now=now)
    except BackupError as exc:
        print(f"storefront: cannot make a backup: {exc}", file=sys.stderr)
        return 1
    kind = "with a SQLite snapshot" if manifest.snapshot else "CSVs only: for a PostgreSQL snapshot use pg_dump (README)"
    print(f"backup written to {out}: {manifest.total_rows} rows in {len(manifest.tables)} tables, "
          f"schema {manifest.schema_revision}, {kind}")
    return 0


def _cmd_backup_restore(config: Config, args: argparse.Namespace) -> int:
    """A backup zip into an empty database (the shop stopped): `commerce.backup.restore`."""
    from pathlib import Path

    from commerce.backup import BackupError
    from commerce.backup.restore import restore_backup

    try:
        report = asyncio.run(
            restore_backup(config.database.url, Path(args.file), force=args.force, from_csv=args.from_csv)
        )
    except BackupError as exc:
        print(f"storefront: cannot restore {args.file}: {exc}", file=sys.stderr)
        return 2
    print(f"restored {report.rows} rows in {len(report.manifest.tables)} tables from the backup's "
          f"{'SQLite snapshot' if report.source == 'snapshot' else 'CSVs'} (made {report.manifest.created_at}, "
          f"schema {report.manifest.schema_revision}); the database is at the newest schema")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storefront", description="A WeChat conversational storefront")
    parser.add_argument("--config", help="config file (default: config.toml or $STOREFRONT_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the webhook server")
    serve.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(run=_cmd_serve)

    chat = sub.add_parser("chat", help="chat with a running server from this terminal")
    chat.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    chat.add_argument("--url", help="webhook URL (default: from the config)")
    chat.add_argument("--openid", default="o_simulator_user", help="the customer's openid")
    chat.add_argument("--aes", action="store_true",
                      help="encrypt (safe mode); the default whenever wechat.encoding_aes_key is set")
    chat.add_argument("--plain", action="store_true",
                      help="send plaintext even though the shop has a key (compatible mode: never as staff)")
    chat.set_defaults(run=_cmd_chat)

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_sub.add_parser("upgrade", help="migrate the database to the newest schema")
    db_upgrade.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    db_upgrade.set_defaults(run=_cmd_db)

    seed = sub.add_parser("seed-demo", help="load the demo catalog into an empty database")
    seed.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    seed.set_defaults(run=_cmd_seed)
    menu = sub.add_parser("menu", help="the account's custom menu")
    menu_sub = menu.add_subparsers(dest="menu_command", required=True)
    menu_push = menu_sub.add_parser("push", help="check a menu file and replace the custom menu with it")
    menu_push.add_argument("file", nargs="?", default="menu.toml", help="TOML or JSON (default: menu.toml)")
    menu_push.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    menu_push.set_defaults(run=_cmd_menu_push)

    job = sub.add_parser("job", help="scheduled jobs")
    job_sub = job.add_subparsers(dest="job_command", required=True)
    job_run = job_sub.add_parser("run", help="run one scheduled job now")
    job_run.add_argument("name", help="expire_unpaid_orders, remind_unpaid_orders, complete_shipped_orders")
    job_run.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    job_run.set_defaults(run=_cmd_job)

    backup = sub.add_parser("backup", help="back up the whole shop, or restore a backup")
    backup_sub = backup.add_subparsers(dest="backup_command", required=True)
    create = backup_sub.add_parser("create", help="write a backup zip: every table as CSV, and a SQLite snapshot")
    create.add_argument("--out", help="the zip to write (default: storefront-backup-<time>.zip here)")
    create.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    create.set_defaults(run=_cmd_backup_create)
    restore = backup_sub.add_parser("restore", help="restore a backup zip into an empty database")
    restore.add_argument("file", help="the backup zip")
    restore.add_argument("--force", action="store_true", help="replace what a non-empty database holds")
    restore.add_argument("--from-csv", action="store_true", help="load the CSVs even when there is a SQLite snapshot")
    restore.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    restore.set_defaults(run=_cmd_backup_restore)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    args.config_path = getattr(args, "sub_config", None) or args.config
    try:
        config = load_config(args.config_path)
    except ConfigError as exc:
        print(f"storefront: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(fmt=config.server.log_format)
    try:
        return args.run(config, args)
    except (OperationalError, OSError) as exc:
        where = make_url(config.database.url).render_as_string(hide_password=True)
        print(f"storefront: cannot use the database at {where} (database.url): {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The operator contract (SPEC §10): the real `storefront` console script in subprocesses.

Each command runs in its own temporary working directory (so no `config.toml` of the
checkout is picked up) against its own SQLite file, configured through the
`STOREFRONT_<SECTION>__<KEY>` environment variables an operator would use. One
`storefront serve` is started for the module and shared by the tests that talk to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest

from bot import cli
from bot.config import Config
from bot.devtools.simulator import WebhookClient, build_message_xml
from commerce.models import Base  # the aggregator: every model registered, whatever ran before
from tests.ports import free_port

STOREFRONT = shutil.which("storefront", path=os.path.dirname(sys.executable))
TOKEN = "cli-test-token"
APPID = "wx_cli_test"
COMMAND_TIMEOUT = 60
STARTUP_TIMEOUT = 45  # two spawned workers on a loaded machine (tests in parallel) start slowly
STOP_TIMEOUT = 15
# Talk to the local server directly, whatever http_proxy says.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

pytestmark = pytest.mark.skipif(
    STOREFRONT is None,
    reason="the storefront console script is not installed: pip install -e '.[test]'",
)


def storefront_env(db: Path, **overrides: str) -> dict[str, str]:
    """The process environment without stray STOREFRONT_* variables, plus our overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_")}
    env["STOREFRONT_DATABASE__URL"] = f"sqlite+aiosqlite:///{db}"
    env["STOREFRONT_WECHAT__TOKEN"] = TOKEN
    env["STOREFRONT_WECHAT__APPID"] = APPID
    env.update(overrides)
    return env


def run(
    args: list[str], *, cwd: Path, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    assert STOREFRONT is not None
    return subprocess.run(
        [STOREFRONT, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=COMMAND_TIMEOUT,
    )


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --------------------------------------------------------------------------- db upgrade, seed-demo


def test_db_upgrade_creates_the_schema_and_can_run_twice(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    env = storefront_env(db)

    first = run(["db", "upgrade"], cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "newest schema" in first.stdout
    expected = {table.name for table in Base.metadata.sorted_tables} | {"alembic_version"}
    assert {"products", "variants", "categories", "customers"} <= expected
    assert tables(db) == expected
    assert count(db, "products") == 0  # upgrade never seeds

    second = run(["db", "upgrade"], cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert tables(db) == expected
    assert count(db, "alembic_version") == 1


def test_db_upgrade_defaults_to_storefront_db_in_the_working_directory(tmp_path: Path) -> None:
    env = storefront_env(tmp_path / "unused.db")
    del env["STOREFRONT_DATABASE__URL"]

    result = run(["db", "upgrade"], cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert "products" in tables(tmp_path / "storefront.db")
    assert not (tmp_path / "unused.db").exists()


def test_seed_demo_loads_the_catalog_once(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    env = storefront_env(db)

    first = run(["seed-demo"], cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    found = re.search(r"(\d+) products created", first.stdout)
    assert found, first.stdout
    created = int(found.group(1))
    assert created >= 60
    assert count(db, "products") == created
    assert count(db, "group_campaigns") == 2  # the demo's group buys, so 拼团 shows something
    assert count(db, "topup_plans") == 2  # balance.demo_plans, so 充值 shows something

    second = run(["seed-demo"], cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "nothing loaded" in second.stdout
    assert "created" not in second.stdout
    assert count(db, "products") == created
    assert count(db, "group_campaigns") == 2
    assert count(db, "topup_plans") == 2


# --------------------------------------------------------------------------- config through the CLI


def test_config_file_named_by_option_or_storefront_config(tmp_path: Path) -> None:
    db = tmp_path / "from-file.db"
    config = tmp_path / "shop.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n', encoding="utf-8")
    env = storefront_env(tmp_path / "unused.db")
    del env["STOREFRONT_DATABASE__URL"]

    by_option = run(["db", "upgrade", "--config", str(config)], cwd=tmp_path, env=env)
    assert by_option.returncode == 0, by_option.stderr
    assert "products" in tables(db)
    db.unlink()

    by_env = run(["db", "upgrade"], cwd=tmp_path, env={**env, "STOREFRONT_CONFIG": str(config)})
    assert by_env.returncode == 0, by_env.stderr
    assert "products" in tables(db)
    assert not (tmp_path / "storefront.db").exists()


def test_a_missing_config_file_is_an_error_without_traceback(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    result = run(
        ["--config", str(tmp_path / "nope.toml"), "db", "upgrade"],
        cwd=tmp_path,
        env=storefront_env(db),
    )
    assert result.returncode != 0
    assert "nope.toml" in result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists()


def test_a_bad_config_key_stops_serve_naming_the_key(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    env = storefront_env(db, STOREFRONT_SERVER__PORTT="1", STOREFRONT_SERVER__PORT=str(free_port()))

    result = run(["serve"], cwd=tmp_path, env=env)

    assert result.returncode != 0
    assert "server.portt" in result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists()  # it stopped before touching the database


def test_a_bad_config_value_stops_serve_naming_the_key(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    result = run(["serve"], cwd=tmp_path, env=storefront_env(db, STOREFRONT_SERVER__PORT="eighty"))
    assert result.returncode != 0
    assert "server.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_job_run_runs_one_scheduled_job_by_hand(tmp_path: Path, sqlite_url: str) -> None:
    import sqlite3
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.engine import make_url

    db = Path(make_url(sqlite_url).database or "")  # migrated already: the job needs no catalog
    env = storefront_env(db)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat(sep=" ")
    with sqlite3.connect(db) as conn:  # one unpaid order whose time ran out while we were down
        conn.execute("INSERT INTO customers (openid, subscribed, first_seen, last_seen) VALUES ('o_x', 1, ?, ?)",
                     (past, past))
        conn.execute(
            "INSERT INTO orders (order_no, customer_id, status, goods_fen, discount_fen, delivery_fen, points_fen,"
            " payable_fen, paid_fen, refunded_fen, address_name, address_phone, address_text, note, pay_provider,"
            " carrier, tracking_no, created_at, expires_at)"
            " VALUES ('SF1', 1, 'pending_payment', 100, 0, 0, 0, 100, 0, 0, '', '', '', '', '', '', '', ?, ?)",
            (past, past),
        )
    result = run(["job", "run", "expire_unpaid_orders"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "expire_unpaid_orders: 1 handled" in result.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM orders").fetchone() == ("cancelled",)
    again = run(["job", "run", "expire_unpaid_orders"], cwd=tmp_path, env=env)
    assert "expire_unpaid_orders: 0 handled" in again.stdout
    unknown = run(["job", "run", "no_such_job"], cwd=tmp_path, env=env)
    assert unknown.returncode == 2 and "expire_unpaid_orders" in unknown.stderr


def test_python_dash_m_bot_help_lists_the_commands(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        cwd=tmp_path,
        env=storefront_env(tmp_path / "shop.db"),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: storefront")
    for command in ("serve", "chat", "db", "seed-demo"):
        assert command in result.stdout


# --------------------------------------------------------------------------- serve + chat


@dataclass
class Server:
    """One `storefront serve` process; its output goes to files so a full pipe never blocks it."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    db: Path
    port: int
    env: dict[str, str]
    stdout_path: Path
    stderr_path: Path
    returncode: int | None = None
    stopped: bool = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"storefront serve exited with {self.proc.returncode}:\n{self.stderr()}"
                )
            try:
                with HTTP.open(f"{self.base}/healthz", timeout=2) as response:
                    if response.status == 200 and json.loads(response.read())["status"] == "ok":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        pytest.fail(
            f"storefront serve was not healthy within {STARTUP_TIMEOUT} s:\n{self.stderr()}"
        )

    def stop(self) -> int:
        """SIGINT (Ctrl-C), then terminate, then kill: always leaves no process behind."""
        if not self.stopped:
            self.stopped = True
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                # it did not stop on Ctrl-C: returncode stays None
            else:
                self.returncode = self.proc.returncode
        return -1 if self.returncode is None else self.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`storefront serve` on a free port with a fresh database, healthy before the tests run."""
    assert STOREFRONT is not None
    workdir = tmp_path_factory.mktemp("serve")
    db = workdir / "shop.db"
    port = free_port()
    env = storefront_env(db, STOREFRONT_SERVER__PORT=str(port), STOREFRONT_SERVER__HOST="127.0.0.1")
    env.pop("PYTHONUNBUFFERED", None)  # stdout is a file, as under systemd or docker
    stdout_path, stderr_path = workdir / "serve.out", workdir / "serve.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen([STOREFRONT, "serve"], cwd=workdir, env=env, stdout=out, stderr=err)
    srv = Server(proc, workdir, db, port, env, stdout_path, stderr_path)
    try:
        srv.wait_healthy()
        yield srv
    finally:
        srv.stop()


def test_serve_seeds_a_fresh_database_and_is_healthy(server: Server) -> None:
    assert server.proc.poll() is None
    assert count(server.db, "products") >= 60
    with HTTP.open(f"{server.base}/healthz", timeout=5) as response:
        assert response.status == 200
    with HTTP.open(f"{server.base}/metrics", timeout=5) as response:
        assert response.status == 200


def test_the_webhook_refuses_an_unsigned_request(server: Server) -> None:
    request = urllib.request.Request(f"{server.base}/wechat", data=b"<xml></xml>", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        HTTP.open(request, timeout=5)
    assert err.value.code == 403


async def test_a_signed_text_message_gets_search_results(server: Server) -> None:
    xml = build_message_xml(
        to_user="gh_cli_test",
        from_user="o_cli_customer",
        kind="text",
        create_time=int(time.time()),
        msg_id=int(time.time_ns() // 1000),
        content="pingguo",
    )
    async with aiohttp.ClientSession() as session:
        client = WebhookClient(
            url=f"{server.base}/wechat",
            token=TOKEN,
            appid=APPID,
            encoding_aes_key="",
            aes=False,
            session=session,
        )
        reply = await client.send(xml)
    assert reply.kind == "text"
    assert "苹果" in reply.text
    assert "烟台红富士苹果" in reply.text


def test_storefront_chat_searches_and_shows_a_product_card(server: Server) -> None:
    result = run(
        ["chat", "--url", f"{server.base}/wechat", "--openid", "o_cli_chat"],
        cwd=server.workdir,
        env=server.env,
        stdin="pingguo\n1\n/quit\n",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "!!" not in out, out  # no exchange failed
    search = out.split("you> pingguo", 1)[1].split("you> 1", 1)[0]
    assert "1. 烟台红富士苹果" in search
    card = out.split("you> 1", 1)[1].split("you> /quit", 1)[0]
    assert "┌" in card and "└" in card
    assert "烟台红富士苹果" in card
    assert f"link:  {server.base}/products/" in card


def test_serve_banner_is_visible_while_it_runs(server: Server) -> None:
    assert server.proc.poll() is None
    assert f"{server.base}/wechat" in server.stdout()


def test_serve_on_a_busy_port_fails_with_a_message(server: Server, tmp_path: Path) -> None:
    env = {**server.env, "STOREFRONT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"}
    result = run(["serve"], cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert str(server.port) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_burst_of_connections_waits_in_the_listen_queue_and_none_is_dropped(server: Server) -> None:
    """A flash sale opens: far more buyers connect at once than the worker accepts in a moment.
    They wait in the kernel's queue (`server.backlog`); with aiohttp's default of 128 the rest
    had their SYN dropped and came back only a second later."""
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())  # the kernel's cap on any backlog
    burst = min(600, somaxconn - 8)
    os.kill(server.proc.pid, signal.SIGSTOP)  # the worker accepts nothing meanwhile
    connections: list[socket.socket] = []
    try:
        for _ in range(burst):  # a dropped SYN is retried after 1 s: past this timeout
            connections.append(socket.create_connection(("127.0.0.1", server.port), timeout=0.5))
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        for connection in connections:
            connection.close()
    assert len(connections) == burst
    with HTTP.open(f"{server.base}/healthz", timeout=5) as response:  # and it serves on
        assert response.status == 200


def test_serve_runs_on_uvloop_unless_told_otherwise(server: Server) -> None:
    """`server.event_loop`: uvloop by default (its library is mapped into the serving
    process), Python's own loop when asked for."""
    assert "uvloop" in Path(f"/proc/{server.proc.pid}/maps").read_text()
    standard = cli._event_loop(replace(Config(), server=replace(Config().server, event_loop="asyncio")))
    try:
        assert type(standard).__module__.startswith("asyncio")
    finally:
        standard.close()
        asyncio.set_event_loop(None)


def test_serve_prints_the_webhook_and_chat_and_stops_on_ctrl_c(server: Server) -> None:
    """Runs last: it stops the shared server (its banner is read after exit)."""
    returncode = server.stop()
    assert returncode == 0, server.stderr()
    assert server.proc.poll() is not None
    out = server.stdout()
    assert f"{server.base}/wechat" in out
    assert "storefront chat" in out
    assert f"{server.base}/dev/chat" in out and "SANDBOX" in out
    assert re.search(r"demo catalog: \d+ products", out)
    assert "Traceback" not in server.stderr()


# --------------------------------------------------------------------------- several workers


def test_several_workers_need_redis(tmp_path: Path) -> None:
    result = run(["serve", "--workers", "2"], cwd=tmp_path, env=storefront_env(tmp_path / "shop.db"))
    assert result.returncode == 2 and "redis.url" in result.stderr


# `serve --workers 2` itself runs in tests/faults/, whose tests start it anyway: two workers
# sharing the port and a retry answered from its first delivery whichever worker gets it,
# then Ctrl-C stopping them all (test_slow_turns.py); a worker killed -9 restarted and
# logged, then SIGTERM to the parent stopping every worker cleanly (test_kill_worker.py);
# the parent killed -9 and its workers stopping by themselves (test_payment_burst.py).

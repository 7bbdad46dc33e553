"""/backup in chat, its page and its zip, and the zip restored into empty databases; through the real app."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import threading
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import select, update

from bot.keys import SERVICES
from bot.logs import redact_path
from bot.web.backup import make_backup_token
from bot.web.export import make_export_token
from bot.web.signed_links import b64decode, b64encode
from commerce.backup import archive
from commerce.backup.restore import restore_backup
from commerce.customers.models import Customer
from commerce.models import Base
from commerce.staff.models import AuditEntry
from tests.bot.admin.test_stats import place
from tests.bot.conftest import OPERATOR, OWNER, STRANGER, ShopFactory
from tests.bot.driver import Shop, db
from tests.servers import SqliteTemplate

LINK = re.compile(r"https://shop\.example\.com(/backup/[A-Za-z0-9_-]+)")
BOM = b"\xef\xbb\xbf"
Rows = dict[str, list[tuple[Any, ...]]]


def every_row(url: str) -> Rows:
    """Every row of every table of the shop, in primary-key order."""
    engine = sqlalchemy.create_engine(sqlalchemy.make_url(url).set(drivername="sqlite"))
    try:
        with engine.connect() as conn:
            return {
                table.name: [tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key.columns))]
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


async def _link(shop: Shop, openid: str = OWNER) -> str:
    reply = await shop.user(openid).say("/backup")
    match = LINK.search(reply.text)
    assert match is not None, reply.text
    return match.group(1)


async def test_a_backup_from_the_chat_restores_every_row_into_an_empty_shop(
    make_shop: ShopFactory, sqlite_url: str, sqlite_template: SqliteTemplate, tmp_path: Path
) -> None:
    # no scheduler: no job may change a row between the backup and the comparison; nor the
    # analytics' timer (their events are written below, before the backup)
    shop = await make_shop(
        sqlite_url, staff={"owners": [OWNER]}, scheduler={"enabled": False}, analytics={"flush_seconds": 300}
    )
    paid = await place(shop, "o_buyer_1", "FRU-BANANA-3J", 2)
    await place(shop, "o_buyer_2", "FRU-APPLE-5J", 1, pay=False)
    await shop.user("o_buyer_3").say("苹果")  # a customer, a journal row and a dialog
    async with db(shop.client.app)() as session, session.begin():  # bound to a friend who came later
        ids = list(await session.scalars(select(Customer.id).order_by(Customer.id)))
        await session.execute(update(Customer).where(Customer.id == ids[0]).values(referrer_id=ids[-1]))
    await shop.client.app[SERVICES].events.flush()  # the searches, cards, orders... counted so far

    reply = await shop.user(OWNER).say("/备份")
    assert "全店数据备份链接" in reply.text and "只能下载一次" in reply.text and "请勿转发" in reply.text
    path = LINK.search(reply.text).group(1)  # type: ignore[union-attr]
    page = await shop.client.get(path, headers={"User-Agent": "Mozilla/5.0 MicroMessenger/8.0.50"})
    html = await page.text()
    assert page.status == 200 and f'href="{path}/file"' in html and "在浏览器打开" in html
    assert page.headers["Cache-Control"] == "no-store"

    response = await shop.client.get(f"{path}/file")
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/zip"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="storefront-backup-')
    assert "filename*=UTF-8''%E6%B5%8B%E8%AF%95%E5%B0%8F%E5%BA%97-%E5%A4%87%E4%BB%BD-" in disposition  # 测试小店-备份-
    backup = tmp_path / "backup.zip"
    backup.write_bytes(await response.read())
    assert (await shop.client.get(f"{path}/file")).status == 410  # one download
    source = every_row(shop.config.database.url)

    with zipfile.ZipFile(backup) as zf:
        manifest = archive.read_manifest(zf)
        orders_csv = zf.read("tables/orders.csv")
        audit_csv = zf.read("tables/audit_log.csv").decode("utf-8-sig")
    assert manifest.snapshot == archive.SNAPSHOT and manifest.database == "sqlite"
    assert manifest.tables["orders"].rows == 2 and manifest.tables["order_lines"].rows == 2
    assert manifest.tables["shop_events"].rows > 0  # the analytics' events too
    assert {name: entry.rows for name, entry in manifest.tables.items()} == {n: len(r) for n, r in source.items()}
    assert orders_csv.startswith(BOM)
    header, *lines = csv.reader(io.StringIO(orders_csv[len(BOM):].decode("utf-8")))
    assert header[:4] == ["编号", "订单号", "顾客编号", "状态"] and "实付（分）" in header
    assert {line[1] for line in lines} >= {paid}
    assert "backup_download" in audit_csv  # the backup holds its own download
    assert "id,actor,role,command" in audit_csv  # raw column names where staff do not read

    from_snapshot = sqlite_template.new_database()
    report = await restore_backup(from_snapshot, backup)
    assert report.source == "snapshot" and report.rows == sum(len(r) for r in source.values())
    assert every_row(from_snapshot) == source
    from_csv = sqlite_template.new_database()
    assert (await restore_backup(from_csv, backup, from_csv=True)).source == "csv"
    assert every_row(from_csv) == source


async def test_backup_is_for_owners_and_its_links_for_their_owner_only(sqlite_staffed: Shop) -> None:
    shop = sqlite_staffed
    assert "已添加员工" in (await shop.user(OWNER).say(f"/staff add {OPERATOR} operator")).text
    assert "/backup/" not in (await shop.user(STRANGER).say("/backup")).text
    assert "您的角色不能使用 /backup" in (await shop.user(OPERATOR).say("/backup")).text
    path = await _link(shop)
    token = path.rsplit("/", 1)[1]
    assert token not in redact_path(f"{path}/file", key=b"k") and redact_path(path, key=None) == "/backup/~"

    raw = bytearray(b64decode(token))
    raw[len(raw) // 2] ^= 1
    for suffix in ("", "/file"):
        response = await shop.client.get(f"/backup/{b64encode(bytes(raw))}{suffix}")
        assert response.status == 403 and "无效" in await response.text()  # a bad signature
        assert (await shop.client.get(f"/backup/not-a-token{suffix}")).status == 404
    key = shop.config.signing_key
    soon = datetime.now(UTC) + timedelta(minutes=5)
    export = make_export_token(key=key, kind="products", openid=OWNER, expires_at=soon)
    assert (await shop.client.get(f"/backup/{export}/file")).status == 403  # an export link is no backup link
    operators = make_backup_token(key=key, openid=OPERATOR, expires_at=soon)
    response = await shop.client.get(f"/backup/{operators}/file")
    assert response.status == 403 and "只有店主" in await response.text()
    expired = make_backup_token(key=key, openid=OWNER, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = await shop.client.get(f"/backup/{expired}")
    assert response.status == 410 and "过期" in await response.text()
    assert (await shop.client.head(f"{path}/file")).status == 405  # a link preview makes nothing
    async with db(shop.client.app)() as session:
        entries = (await session.execute(select(AuditEntry.command, AuditEntry.actor, AuditEntry.outcome))).all()
    assert [tuple(e) for e in entries if e.command.startswith("backup")] == [
        ("backup", STRANGER, "refused"), ("backup", OPERATOR, "refused"), ("backup", OWNER, "ok"),
    ]  # and no download: the refused links made nothing


async def test_the_shop_answers_while_a_backup_is_made_and_a_second_one_waits(
    sqlite_staffed: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = sqlite_staffed
    entered, release = threading.Event(), threading.Event()
    snapshot = archive.snapshot_sqlite

    def slow_snapshot(source: Path, target: Path) -> None:
        entered.set()
        release.wait(10)
        snapshot(source, target)

    monkeypatch.setattr(archive, "snapshot_sqlite", slow_snapshot)
    first, second = await _link(shop), await _link(shop)
    download = asyncio.create_task(shop.client.get(f"{first}/file"))
    assert await asyncio.to_thread(entered.wait, 10)
    try:
        assert "苹果" in (await shop.user("o_buyer_1").say("苹果")).text  # the loop is free
        busy = await shop.client.get(f"{second}/file")
        assert busy.status == 429 and "正在生成另一份备份" in await busy.text()
    finally:
        release.set()
    assert (await download).status == 200
    assert (await shop.client.get(f"{second}/file")).status == 200  # the refused link was not used

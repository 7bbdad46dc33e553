"""`storefront backup create` and `storefront backup restore`, in process (the CLI's own tests start it as a program)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import cli
from tests.servers import SqliteTemplate


@pytest.mark.usefixtures("demo_catalog")
def test_backup_create_then_restore_refusing_a_full_database_and_a_damaged_zip(
    tmp_path: Path, sqlite_url: str, sqlite_template: SqliteTemplate,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)  # the test's logging stays
    monkeypatch.setenv("STOREFRONT_DATABASE__URL", sqlite_url)
    assert cli.main(["backup", "create", "--out", "shop.zip"]) == 0
    made = capsys.readouterr().out
    assert "backup written to shop.zip" in made and "with a SQLite snapshot" in made

    monkeypatch.setenv("STOREFRONT_DATABASE__URL", sqlite_template.new_database())
    assert cli.main(["backup", "restore", "shop.zip"]) == 0
    assert "from the backup's SQLite snapshot" in capsys.readouterr().out
    assert cli.main(["backup", "restore", "shop.zip", "--from-csv"]) == 2
    refused = capsys.readouterr().err
    assert "the database is not empty" in refused and "add --force to replace" in refused
    assert cli.main(["backup", "restore", "shop.zip", "--from-csv", "--force"]) == 0
    assert "from the backup's CSVs" in capsys.readouterr().out

    (tmp_path / "cut.zip").write_bytes((tmp_path / "shop.zip").read_bytes()[:-100])
    assert cli.main(["backup", "restore", "cut.zip", "--force"]) == 2
    assert "cannot restore cut.zip: cut.zip is not a readable zip (damaged or truncated?)" in capsys.readouterr().err

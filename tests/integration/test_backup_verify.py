"""`verify` fails, clearly, for every kind of damage, and leaves the original as it was.

A flipped byte, a truncated dump, a missing file, a manifest of another version or format,
the wrong secret key and a dump that no longer matches its tables each make verification
fail with a message naming the problem; the outcome is recorded as a failure, the original
database is unchanged and no scratch database is left behind. An SQLite backup taken while
another process writes is consistent.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from tests.integration.backup_world import scratch_databases, stats
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import AuditEntry
from workbench.ops.backup.api import (
    FAILED_ACTION,
    VERIFIED_ACTION,
    Backup,
    create_backup,
    list_backups,
)
from workbench.ops.backup.bundle import KEY_FILE, MANIFEST
from workbench.ops.backup.verify import verify_backup
from workbench.ops.errors import BackupVerificationError
from workbench.runs.secrets import set_secret

KEY = secrets.token_urlsafe(48)


@pytest.fixture
def bench(db_url: str, isolated_env: Path) -> Iterator[Workbench]:
    """A workbench with a table, a stored secret and a run output file to back up."""
    wb = Workbench(load_settings(secret_key=KEY), db_url)
    wb.write(pd.DataFrame({"id": [1, 2, 3], "label": ["a", "b", "c"]}), "labels")
    set_secret(wb, "api_token", "value-123456")
    output = wb.settings.home_path / "runs" / str(uuid.uuid4()) / "output.ipynb"
    output.parent.mkdir(parents=True)
    output.write_text('{"cells": []}', encoding="utf-8")
    yield wb
    wb.close()


def _database(made: Backup) -> Path:
    return Path(made.where) / made.manifest.database_file


def _flip(made: Backup) -> None:
    path = _database(made)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(made: Backup) -> None:
    path = _database(made)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _remove_output(made: Backup) -> None:
    name = next(n for n in made.manifest.files if n.startswith("files/runs/"))
    (Path(made.where) / name).unlink()


def _edit_manifest(**changes: object) -> Callable[[Backup], None]:
    def edit(made: Backup) -> None:
        path = Path(made.where) / MANIFEST
        data = json.loads(path.read_text(encoding="utf-8"))
        data.update(changes)
        path.write_text(json.dumps(data), encoding="utf-8")

    return edit


DAMAGE = {
    "flipped byte": (_flip, "does not match its sha256"),
    "truncated dump": (_truncate, "(truncated?)"),
    "missing file": (_remove_output, "output.ipynb is missing"),
    "other version": (_edit_manifest(workbench_version="0.0.1"), "made by Workbench 0.0.1"),
    "other format": (_edit_manifest(format_version=99), "backup format 99"),
}


def _failures(bench: Workbench) -> list[str]:
    with bench.session() as session:
        rows = session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("backup.%")))
        return [str(a) for a in rows if a in (FAILED_ACTION, VERIFIED_ACTION)]


def _without_audit(found: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in found.items() if k != "audit_log"}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damage_fails_verification_and_changes_nothing(bench: Workbench, damage: str) -> None:
    made = create_backup(bench)
    before = stats(bench)
    harm, message = DAMAGE[damage]
    harm(made)
    damaged = {p: p.read_bytes() for p in Path(made.where).rglob("*") if p.is_file()}
    with pytest.raises(BackupVerificationError, match="failed verification") as failed:
        verify_backup(bench, made.where)
    assert message in str(failed.value)
    assert _without_audit(stats(bench)) == _without_audit(before)
    assert _failures(bench) == [FAILED_ACTION]
    assert [b.verified for b in list_backups(bench.settings)] == [False]
    for path, data in damaged.items():
        assert path.read_bytes() == data, f"verify changed {path}"
    assert not scratch_databases()


def test_the_wrong_secret_key_fails(bench: Workbench) -> None:
    made = create_backup(bench)
    before = stats(bench)
    other = Workbench(load_settings(secret_key=secrets.token_urlsafe(48)), bench.database_url)
    try:
        with pytest.raises(BackupVerificationError, match="is not this backup's key"):
            verify_backup(other, made.where)
    finally:
        other.close()
    assert _without_audit(stats(bench)) == _without_audit(before)
    assert _failures(bench) == [FAILED_ACTION]
    assert verify_backup(bench, made.where).checks  # the right key passes


def test_a_wrong_key_file_in_the_bundle_fails(bench: Workbench) -> None:
    made = create_backup(bench, include_key=True)
    key_file = Path(made.where) / KEY_FILE
    assert key_file.read_text(encoding="utf-8").strip() == KEY
    key_file.write_text(secrets.token_urlsafe(48) + "\n", encoding="utf-8")
    with pytest.raises(BackupVerificationError, match="backup's key file is not this backup's"):
        verify_backup(bench, made.where)
    key_file.chmod(0o644)
    with pytest.raises(BackupVerificationError, match="must be mode 0600"):
        verify_backup(bench, made.where)


def _reseal(made: Backup) -> None:
    """Give the damaged database file a matching sha256, as a careless hand might."""
    path = Path(made.where) / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    database = _database(made)
    data["files"][database.name] = {
        "sha256": hashlib.sha256(database.read_bytes()).hexdigest(),
        "bytes": database.stat().st_size,
    }
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_copy_whose_rows_changed_fails_on_the_table_checksums(bench: Workbench) -> None:
    made = create_backup(bench)
    with sqlite3.connect(_database(made)) as conn:
        conn.execute("UPDATE labels SET label = 'z' WHERE id = 2")
    _reseal(made)
    with pytest.raises(BackupVerificationError, match="table labels does not match its checksum"):
        verify_backup(bench, made.where)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_truncated_dump_with_a_matching_checksum_fails_in_pg_restore(bench: Workbench) -> None:
    made = create_backup(bench)
    _truncate(made)
    _reseal(made)
    with pytest.raises(BackupVerificationError, match="pg_restore failed"):
        verify_backup(bench, made.where)
    assert not scratch_databases()


WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    n = 0
    while True:
        n += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO ledger (n) VALUES (?)", (n,))
        conn.execute("INSERT INTO ledger_copy (n) VALUES (?)", (n,))
        conn.execute("COMMIT")
        time.sleep(0.001)
    """
)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_sqlite_backup_taken_while_another_process_writes_is_consistent(
    bench: Workbench, tmp_path: Path
) -> None:
    path = str(bench.engine.url.database)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE ledger (n integer)")
        conn.execute("CREATE TABLE ledger_copy (n integer)")
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    writer = subprocess.Popen([sys.executable, str(script), path])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sqlite3.connect(path) as conn:
                if conn.execute("SELECT count(*) FROM ledger").fetchone()[0] > 50:
                    break
            time.sleep(0.05)
        counts = []
        for _ in range(3):
            made = create_backup(bench)
            verify_backup(bench, made.where)
            with sqlite3.connect(_database(made)) as copy:
                assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                ledger = copy.execute("SELECT count(*), max(n) FROM ledger").fetchone()
                mirror = copy.execute("SELECT count(*), max(n) FROM ledger_copy").fetchone()
            assert ledger == mirror, (ledger, mirror)
            assert made.manifest.tables["ledger"].rows == ledger[0]
            counts.append(ledger[0])
        assert writer.poll() is None, "the writer stopped"
        assert counts == sorted(counts) and counts[0] > 50 and counts[-1] > counts[0]
    finally:
        writer.kill()
        writer.wait()

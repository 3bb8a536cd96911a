"""Backups round trip on both databases: create, verify, restore into an empty one, use it.

The restored workbench passes the `doctor` checks, its tables equal the original's row for
row (by count and checksum), users sign in, team analysts still see only their team's rows
through their own database logins, stored secrets decrypt and the run outputs are back.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from tests import services
from tests.integration.backup_world import (
    SECRET_VALUE,
    Cluster,
    drop_roles,
    fill,
    login_roles,
    owner_cluster,
    scratch_databases,
    stats,
)
from workbench.accounts import api as accounts
from workbench.api import init
from workbench.app import Workbench
from workbench.core.config import Settings, load_settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.db.identity_connect import user_database_url
from workbench.db.models import RunResult, User
from workbench.ops.backup.api import create_backup, list_backups
from workbench.ops.backup.bundle import KEY_FILE, MANIFEST
from workbench.ops.backup.restore import restore_backup
from workbench.ops.backup.verify import verify_backup
from workbench.ops.health import run_checks
from workbench.runs.secrets import read_secret


@pytest.fixture
def cluster(postgres_available: None) -> Iterator[Cluster]:
    with owner_cluster() as made:
        yield made


def _psycopg(settings: Settings, user: User, url: str) -> psycopg.Connection:
    plain = user_database_url(settings, user, url).set(drivername="postgresql")
    return psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True)


def _labels(conn: psycopg.Connection, query: str) -> set[str]:
    return {str(row[0]) for row in conn.execute(query)}


def _same_outputs(original: Path, restored: Path) -> int:
    files = sorted(p for p in (original / "runs").rglob("*") if p.is_file())
    assert files
    for path in files:
        twin = restored / "runs" / path.relative_to(original / "runs")
        assert twin.read_bytes() == path.read_bytes(), twin
    return len(files)


def test_team_mode_round_trip(cluster: Cluster, settings: Settings, tmp_path: Path) -> None:
    """Non-superuser service, roles dropped after the backup (a lost cluster), key in the bundle."""
    ensure_home(settings)
    ensure_secret_key(settings)
    source_url = cluster.new_database()
    with Workbench(settings, source_url) as bench:
        bench.upgrade()
        filled = fill(bench, teams=True)
        made = create_backup(bench, include_key=True)
        assert (Path(made.where) / KEY_FILE).stat().st_mode & 0o777 == 0o600
        checks = verify_backup(bench, made.where).checks
        assert any("scratch restore: " in c and "checksums equal" in c for c in checks), checks
        assert any("db-credentials value decrypts" in c for c in checks), checks
        assert not scratch_databases()
        original = stats(bench)
        original_home = settings.home_path
    assert [b.verified for b in list_backups(settings)] == [True]
    # The disaster: the users' login roles are gone with the old cluster.
    drop_roles(login_roles(source_url.rsplit("/", 1)[1]))

    target_url = cluster.new_database()
    new_home = tmp_path / "restored-home"
    # An admin without a configured key: the key comes out of the bundle into the new home.
    admin = load_settings()
    result = restore_backup(admin, made.where, into=target_url, home=new_home)
    assert result.ok, result.checks
    assert {c.name for c in result.checks} >= {"database", "migrations"}
    assert any("created roles" in note for note in result.notes), result.notes
    assert (new_home / KEY_FILE).stat().st_mode & 0o777 == 0o600

    restored_settings = load_settings(home=str(new_home))
    with Workbench(restored_settings, target_url) as restored:
        assert all(c.ok for c in run_checks(restored_settings, restored.engine))
        after = stats(restored)
        assert after == made.manifest.tables
        # The original changed since only by the audit rows of the backup's own verification.
        assert {k: v for k, v in after.items() if k != "audit_log"} == {
            k: v for k, v in original.items() if k != "audit_log"
        }
        assert after["flights"].rows == filled.red_flights > 0
        assert accounts.login("ann", filled.passwords["ann"], workbench=restored).username == "ann"
        assert read_secret(restored, "api_token") == SECRET_VALUE
        with restored.session() as session:
            users = {u.username: u for u in session.scalars(select(User))}
            results = session.scalars(select(RunResult).where(RunResult.run_id == filled.run_id))
            assert {r.name for r in results} == {"rate", "count", "by_carrier"}
        with _psycopg(restored_settings, users["ann"], target_url) as conn:
            assert _labels(conn, "SELECT label FROM kpis") == {"r1", "r2"}
            assert conn.execute("SELECT count(*) FROM flights").fetchone() == (filled.red_flights,)
            assert conn.execute("SELECT count(*) FROM airlines").fetchone()[0] > 0  # type: ignore[index]
        with _psycopg(restored_settings, users["ben"], target_url) as conn:
            assert _labels(conn, "SELECT label FROM kpis") == {"b1"}
            assert conn.execute("SELECT count(*) FROM flights").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM airlines").fetchone()[0] > 0  # type: ignore[index]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM users")
    assert _same_outputs(original_home, new_home) >= 2


def test_restore_by_another_service_role_on_a_cluster_without_the_old_one(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The policies naming the original owner are moved to the role that restores."""
    settings = load_settings(secret_key=secrets.token_urlsafe(48))
    with owner_cluster() as first:
        source_url = first.new_database()
        with Workbench(settings, source_url) as bench:
            bench.upgrade()
            accounts.add_team("red", workbench=bench)
            ann = accounts.add_user("ann", teams_=("red",), workbench=bench)
            made = create_backup(bench)
        # The original service role and its databases are gone; the users' roles stay.
        roles = login_roles(source_url.rsplit("/", 1)[1])
        first.databases.clear()
        services.drop_database(source_url.rsplit("/", 1)[1])
    try:
        target_url = cluster.new_database()
        result = restore_backup(settings, made.where, into=target_url, home=tmp_path / "h2")
        assert result.ok, result.checks
        with Workbench(settings, target_url) as restored:
            assert stats(restored) == made.manifest.tables
            assert accounts.login("ann", str(ann.password), workbench=restored).username == "ann"
            with restored.engine.connect() as conn:
                owners = conn.exec_driver_sql(
                    "SELECT DISTINCT unnest(roles) FROM pg_policies WHERE policyname = 'wb_service'"
                ).scalars()
                assert set(owners) == {cluster.owner}
    finally:
        drop_roles(roles)


def test_embedded_round_trip(tmp_path: Path, isolated_env: Path) -> None:
    """SQLite: the backup API's copy, restored into a new home; the key from the settings."""
    settings = load_settings(secret_key=secrets.token_urlsafe(48))
    made_home = init(settings, admin_username="admin")
    with Workbench(settings) as bench:
        filled = fill(bench, teams=False)
        made = create_backup(bench)
        assert not (Path(made.where) / KEY_FILE).exists()
        assert made.manifest.database_kind == "sqlite"
        verify_backup(bench, made.where)
        original = stats(bench)
    new_home = tmp_path / "restored-home"
    result = restore_backup(settings, made.where, home=new_home)
    assert result.ok, result.checks
    restored_settings = settings.model_copy(update={"home": new_home})
    with Workbench(restored_settings) as restored:
        assert str(new_home / "workbench.db") in restored.database_url
        assert stats(restored) == made.manifest.tables
        assert {k: v for k, v in stats(restored).items() if k != "audit_log"} == {
            k: v for k, v in original.items() if k != "audit_log"
        }
        assert accounts.login("ann", filled.passwords["ann"], workbench=restored).username == "ann"
        assert made_home.admin_password
        accounts.login("admin", made_home.admin_password, workbench=restored)
        assert read_secret(restored, "api_token") == SECRET_VALUE
        assert restored.read_table("flights").shape[0] == filled.red_flights
    assert _same_outputs(settings.home_path, new_home) >= 2
    with sqlite3.connect(new_home / "workbench.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert (Path(made.where) / MANIFEST).is_file()

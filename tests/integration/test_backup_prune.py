"""Which backups prune keeps, real bundles pruned, and the `doctor` check of backup age.

Prune keeps the newest backup of each of the last N days, ISO weeks and months that have
one, and never deletes the newest verified backup; a bundle it cannot read is left alone.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.ops.backup.api import (
    BackupInfo,
    create_backup,
    list_backups,
    prune_backups,
    select_kept,
)
from workbench.ops.backup.bundle import MANIFEST
from workbench.ops.backup.restore import restore_backup
from workbench.ops.backup.verify import verify_backup
from workbench.ops.errors import BackupError
from workbench.ops.health import check_backups, run_checks

END = datetime(2026, 3, 31, 2, 0, tzinfo=UTC)  # a Tuesday


def _info(at: datetime, verified: bool | None = None) -> BackupInfo:
    name = "workbench-" + at.strftime("%Y%m%dT%H%M%SZ")
    return BackupInfo(name, name, at, "sqlite", "0005", 1, False, verified, None)


def _history(verified_on: datetime | None = None) -> list[BackupInfo]:
    """One backup a night for 120 nights, a second one on the last day, one failed check."""
    nights = [END - timedelta(days=d) for d in range(120)]
    backups = [_info(at, True if at == verified_on else None) for at in nights]
    backups.append(_info(END + timedelta(hours=12), False))
    return backups


def _names(*moments: datetime) -> set[str]:
    return {_info(at).name for at in moments}


def test_the_keeping_rules() -> None:
    kept = select_kept(_history(), keep_daily=3, keep_weekly=2, keep_monthly=3)
    assert set(kept) == _names(
        END + timedelta(hours=12),  # newest of Mar 31 (and of its week and month)
        END - timedelta(days=1),  # Mar 30
        END - timedelta(days=2),  # Mar 29, a Sunday: also the newest of the week before
        datetime(2026, 2, 28, 2, 0, tzinfo=UTC),
        datetime(2026, 1, 31, 2, 0, tzinfo=UTC),
    )
    newest = _info(END + timedelta(hours=12)).name
    assert kept[newest] == ["daily 2026-03-31", "weekly 2026-W14", "monthly 2026-03"]
    assert kept[_info(END - timedelta(days=2)).name] == ["daily 2026-03-29", "weekly 2026-W13"]


def test_the_newest_verified_backup_is_never_pruned() -> None:
    old = END - timedelta(days=100)
    kept = select_kept(_history(verified_on=old), keep_daily=1, keep_weekly=0, keep_monthly=0)
    assert kept == {
        _info(END + timedelta(hours=12)).name: ["daily 2026-03-31"],
        _info(old).name: ["newest verified"],
    }
    # A failed verification does not count as verified.
    assert select_kept(_history(), keep_daily=1, keep_weekly=0, keep_monthly=0) == {
        _info(END + timedelta(hours=12)).name: ["daily 2026-03-31"]
    }


def test_counts_that_would_keep_nothing_are_refused() -> None:
    with pytest.raises(BackupError, match="0 or more"):
        select_kept(_history(), keep_daily=-1, keep_weekly=1, keep_monthly=1)
    with pytest.raises(BackupError, match="above 0"):
        select_kept(_history(), keep_daily=0, keep_weekly=0, keep_monthly=0)


def _redate(where: str, at: datetime) -> None:
    path = Path(where) / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    data["created_at"] = at.isoformat()
    path.write_text(json.dumps(data), encoding="utf-8")


def test_prune_deletes_real_bundles(sqlite_url: str, isolated_env: Path) -> None:
    settings = load_settings(secret_key=secrets.token_urlsafe(48))
    now = datetime.now(UTC)
    with Workbench(settings, sqlite_url) as bench:
        made = [create_backup(bench) for _ in range(4)]
        assert len({m.name for m in made}) == 4  # made within a second, named apart
        for days, backup in zip((30, 2, 1, 0), made, strict=True):
            _redate(backup.where, now - timedelta(days=days))
        verify_backup(bench, made[0].where)
    unreadable = settings.home_path / "backups" / "workbench-20200101T000000Z"
    unreadable.mkdir()
    (unreadable / MANIFEST).write_text("{not json", encoding="utf-8")

    dry = prune_backups(settings, keep_daily=1, keep_weekly=0, keep_monthly=0, dry_run=True)
    assert sorted(dry.deleted) == sorted([made[1].name, made[2].name])
    assert len(list_backups(settings)) == 5
    result = prune_backups(settings, keep_daily=1, keep_weekly=0, keep_monthly=0)
    assert result.deleted == dry.deleted
    assert result.kept[made[0].name] == ["newest verified"]
    assert result.kept[unreadable.name] == ["unreadable manifest"]
    left = {b.name: b for b in list_backups(settings)}
    assert set(left) == {made[0].name, made[3].name, unreadable.name}
    assert left[unreadable.name].problem and "cannot be read" in left[unreadable.name].problem
    assert not Path(made[1].where).exists()


def test_doctor_warns_in_production_without_a_recent_verified_backup(
    db_url: str, isolated_env: Path
) -> None:
    settings = load_settings(secret_key=secrets.token_urlsafe(48))
    with Workbench(settings, db_url) as bench:
        none_yet = check_backups(bench.engine)
        assert none_yet.ok and none_yet.warning and "no verified backup yet" in none_yet.detail
        made = create_backup(bench)
        assert check_backups(bench.engine).warning  # made, but not verified
        verify_backup(bench, made.where)
        fresh = check_backups(bench.engine)
        assert fresh.ok and not fresh.warning, fresh
        later = check_backups(bench.engine, now=made.manifest.created_at + timedelta(hours=27))
        assert later.ok and later.warning and "27 h ago (over 26 h)" in later.detail
        # Only production runs the check.
        assert "backups" not in {c.name for c in run_checks(settings, bench.engine)}
        production = settings.model_copy(update={"env": "production"})
        assert [c.status for c in run_checks(production, bench.engine) if c.name == "backups"] == [
            "ok"
        ]


def test_backups_in_an_fsspec_store(sqlite_url: str, isolated_env: Path) -> None:
    """A URL instead of a folder: written, listed, verified, pruned and restored through fsspec."""
    location = f"memory://wbtest-{secrets.token_hex(4)}/backups"
    settings = load_settings(secret_key=secrets.token_urlsafe(48))
    with Workbench(settings, sqlite_url) as bench:
        first, second = create_backup(bench, location), create_backup(bench, location)
        assert first.where == f"{location}/{first.name}"
        verify_backup(bench, first.where)
    listed = list_backups(settings, location)
    assert [b.name for b in listed] == [second.name, first.name]
    assert [b.verified for b in listed] == [None, True]
    result = prune_backups(settings, location, keep_daily=1, keep_weekly=0, keep_monthly=0)
    assert result.deleted == [] and set(result.kept) == {first.name, second.name}
    restored = restore_backup(settings, first.where, home=isolated_env.parent / "from-url")
    assert restored.ok, restored.checks

"""Backups that prove they restore: create, list and prune bundles (verify and restore beside).

:func:`create_backup` writes one bundle (:mod:`workbench.ops.backup.bundle`) with a consistent
copy of the database (:mod:`workbench.ops.backup.database`), the run outputs of the home and, only
when asked, the secret key. :func:`~workbench.ops.backup.verify.verify_backup` restores it
into a scratch database and compares; :func:`~workbench.ops.backup.restore.restore_backup`
brings it back. The packaged notebook :data:`BACKUP_NOTEBOOK` does create, verify and prune as
a scheduled job (`workbench backup schedule`), so it is retried, alerted and recorded like any
run. Nothing here writes a password, the database URL's password or the key to a manifest or
a log.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from workbench.core.config import Settings, mask_url
from workbench.core.crypto import Encryptor
from workbench.core.home import ensure_home
from workbench.core.version import __version__
from workbench.db.failures import explain
from workbench.db.models import AuditEntry
from workbench.db.types import utcnow
from workbench.ops.backup import database as backup_db
from workbench.ops.backup import roles as backup_roles
from workbench.ops.backup.bundle import (
    DATABASE_FILES,
    KEY_FILE,
    MANIFEST,
    NAME_PREFIX,
    BackupStore,
    FileEntry,
    Manifest,
    RoleDefinition,
    TableStats,
    Verification,
    bundle_name,
    hash_file,
)
from workbench.ops.errors import BackupError

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "BACKUP_NOTEBOOK",
    "CREATED_ACTION",
    "FAILED_ACTION",
    "KEY_CHECK_PURPOSE",
    "VERIFIED_ACTION",
    "Backup",
    "BackupInfo",
    "PruneResult",
    "audit",
    "create_backup",
    "default_store",
    "key_check_token",
    "list_backups",
    "newest_verified_backup",
    "prune_backups",
    "select_kept",
    "shown_location",
    "store_for",
]

log = logging.getLogger(__name__)

BACKUP_NOTEBOOK = Path(__file__).resolve().parent / "notebooks" / "backup.ipynb"
CREATED_ACTION = "backup.create"
VERIFIED_ACTION = "backup.verified"
FAILED_ACTION = "backup.verify_failed"
#: A known text encrypted under the key at backup time: any key can be checked against it.
KEY_CHECK_PURPOSE = "backup-key-check"
KEY_CHECK_TEXT = "workbench-backup"


@dataclass(frozen=True)
class Backup:
    """A bundle just written."""

    store: BackupStore
    name: str
    manifest: Manifest

    @property
    def where(self) -> str:
        return self.store.where(self.name)


@dataclass(frozen=True)
class BackupInfo:
    """One bundle of a backup folder, for `workbench backup list` and pruning."""

    name: str
    where: str
    created_at: datetime
    database_kind: str
    revision: str
    size_bytes: int
    key_included: bool
    verified: bool | None
    verified_at: datetime | None
    problem: str | None = None
    """Why the manifest cannot be read (another format, damage); such a bundle is never pruned."""


@dataclass(frozen=True)
class PruneResult:
    kept: dict[str, list[str]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)


def default_store(settings: Settings) -> BackupStore:
    """The home's ``backups`` folder, where backups go unless told otherwise."""
    return BackupStore(ensure_home(settings).backups)


def store_for(settings: Settings, location: str | Path | None) -> BackupStore:
    return (
        default_store(settings)
        if location is None or str(location) == ""
        else BackupStore(location)
    )


def shown_location(location: str) -> str:
    """A folder or URL safe to print and record: any user:password@ part is masked."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    if "@" not in parts.netloc:
        return location
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def key_check_token(key: str | None) -> str | None:
    """The manifest's key check: :data:`KEY_CHECK_TEXT` encrypted under ``key`` (or None)."""
    if not key:
        return None
    return Encryptor(key, KEY_CHECK_PURPOSE).encrypt(KEY_CHECK_TEXT).decode("ascii")


def audit(engine: Engine, action: str, target: str, details: dict[str, Any]) -> None:
    """Append a row to the audit log of ``engine``'s database."""
    from sqlalchemy.orm import Session

    with Session(engine) as session, session.begin():
        session.add(AuditEntry(action=action, target=target[:500], details=details))


def create_backup(
    bench: Workbench, location: str | Path | None = None, *, include_key: bool = False
) -> Backup:
    """Write a bundle of ``bench``'s database and run outputs to ``location`` (default: the
    home's ``backups`` folder); with ``include_key`` also the secret key (mode 0600)."""
    settings = bench.settings
    store = store_for(settings, location)
    engine = bench.engine
    kind = engine.dialect.name
    if kind not in DATABASE_FILES:
        raise BackupError(f"Backups support PostgreSQL and SQLite, not {kind}.")
    key, _ = settings.effective_secret_key()
    if include_key and not key:
        raise BackupError("No secret key is configured, so --include-key has nothing to include.")
    try:
        manifest, name = _create(bench, store, include_key, key)
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        explained = explain(exc, bench.database_url) if isinstance(exc, SQLAlchemyError) else None
        reason = str(explained) if explained else backup_db.error_summary(exc)
        raise BackupError(f"The backup was not made: {reason}") from None
    log.info(
        "backup %s written: %s database at revision %s, %d tables, %d files%s",
        shown_location(store.where(name)),
        manifest.database_kind,
        manifest.revision,
        len(manifest.tables),
        len(manifest.files),
        ", with the secret key" if include_key else "",
    )
    return Backup(store, name, manifest)


def _create(
    bench: Workbench, store: BackupStore, include_key: bool, key: str | None
) -> tuple[Manifest, str]:
    settings = bench.settings
    engine = bench.engine
    kind = engine.dialect.name
    created = utcnow().replace(microsecond=0)
    name = store.free_name(bundle_name(created))
    # Recorded before the copy is taken, so the backup holds the record of its own making.
    audit(engine, CREATED_ACTION, name, {"location": shown_location(store.location)})
    with store.staging(name) as work:
        database = work / DATABASE_FILES[kind]
        roles: tuple[RoleDefinition, ...] = ()
        owner: str | None = None
        if kind == "postgresql":
            with backup_db.snapshot(engine) as (connection, snapshot_id):
                schema = str(connection.exec_driver_sql("SELECT current_schema()").scalar_one())
                backup_db.dump_postgresql(engine.url, snapshot_id, schema, database)
                revision = backup_db.revision_of(connection)
                tables = backup_db.postgresql_stats(connection)
                roles = backup_roles.capture_roles(connection)
                owner = str(connection.exec_driver_sql("SELECT current_user").scalar_one())
        else:
            revision, tables = _copy_sqlite(settings, engine, database)
        if revision is None:
            raise BackupError("The database has no Workbench schema yet; run `workbench init`.")
        files = {database.name: hash_file(database)}
        files.update(_copy_tree(ensure_home(settings).runs, work, Path("files") / "runs"))
        if include_key and key:
            _write_private(work / KEY_FILE, key + "\n")
        manifest = Manifest(
            created_at=created,
            workbench_version=__version__,
            database_kind=kind,
            revision=revision,
            tables=tables,
            files=files,
            roles=roles,
            owner_role=owner,
            key_included=include_key,
            key_check=key_check_token(key),
            source={"database": mask_url(str(engine.url)), "home": str(settings.home_path)},
        )
        _write_private(work / MANIFEST, manifest.to_json())
    return manifest, name


def _copy_sqlite(
    settings: Settings, engine: Engine, target: Path
) -> tuple[str | None, dict[str, TableStats]]:
    source = engine.url.database
    if not source or source == ":memory:":
        raise BackupError("An in-memory SQLite database cannot be backed up; use a file.")
    backup_db.copy_sqlite(source, target, settings.sqlite_busy_timeout_ms)
    copy = sqlite3.connect(str(target))
    try:
        row = None
        if copy.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
            row = copy.execute("SELECT version_num FROM alembic_version").fetchone()
        return (None if row is None else str(row[0])), backup_db.sqlite_stats(copy)
    finally:
        copy.close()


def _copy_tree(source: Path, work: Path, prefix: Path) -> dict[str, FileEntry]:
    """Copy the regular files under ``source`` into ``work/prefix``; symbolic links are skipped."""
    entries: dict[str, FileEntry] = {}
    if not source.is_dir():
        return entries
    for folder, dirs, names in os.walk(source, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not (Path(folder) / d).is_symlink())
        for file_name in sorted(names):
            path = Path(folder) / file_name
            if path.is_symlink() or not path.is_file():
                log.warning("backup skips %s: not a regular file", path)
                continue
            relative = prefix / path.relative_to(source)
            target = work / relative
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(path, target)
            target.chmod(0o600)
            entries[relative.as_posix()] = hash_file(target)
    return entries


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def list_backups(settings: Settings, location: str | Path | None = None) -> list[BackupInfo]:
    """The bundles of ``location`` (default: the home's backups folder), newest first."""
    store = store_for(settings, location)
    found: list[BackupInfo] = []
    for name in store.names():
        verification = store.verification(name)
        try:
            manifest = store.manifest(name)
        except BackupError as exc:
            where = shown_location(store.where(name))
            found.append(_unreadable(name, where, str(exc), verification))
            continue
        found.append(
            BackupInfo(
                name=name,
                where=shown_location(store.where(name)),
                created_at=manifest.created_at,
                database_kind=manifest.database_kind,
                revision=manifest.revision,
                size_bytes=sum(entry.bytes for entry in manifest.files.values()),
                key_included=manifest.key_included,
                verified=None if verification is None else verification.ok,
                verified_at=None if verification is None else verification.verified_at,
            )
        )
    return sorted(found, key=lambda b: (b.created_at, b.name), reverse=True)


def _unreadable(
    name: str, where: str, problem: str, verification: Verification | None
) -> BackupInfo:
    """A bundle whose manifest cannot be read, dated by its name."""
    stamp = name.removeprefix(NAME_PREFIX)[:16]
    try:
        created = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        created = datetime.fromtimestamp(0, UTC)
    verified = None if verification is None else verification.ok
    at = None if verification is None else verification.verified_at
    return BackupInfo(name, where, created, "?", "?", 0, False, verified, at, problem)


def select_kept(
    backups: Sequence[BackupInfo], *, keep_daily: int, keep_weekly: int, keep_monthly: int
) -> dict[str, list[str]]:
    """Which bundles to keep, and why: the newest of each of the last ``keep_daily`` days,
    ``keep_weekly`` ISO weeks and ``keep_monthly`` months that have one, and always the newest
    verified backup (days, weeks and months in UTC)."""
    if min(keep_daily, keep_weekly, keep_monthly) < 0:
        raise BackupError("The --keep-* counts must be 0 or more.")
    if max(keep_daily, keep_weekly, keep_monthly) == 0:
        raise BackupError(
            "Keeping no daily, weekly or monthly backup would delete nearly all of them: give "
            "--keep-daily, --keep-weekly or --keep-monthly a count above 0."
        )
    newest_first = sorted(backups, key=lambda b: (b.created_at, b.name), reverse=True)
    kept: dict[str, list[str]] = {b.name: ["unreadable manifest"] for b in backups if b.problem}
    newest_first = [b for b in newest_first if not b.problem]
    rules = (
        ("daily", keep_daily, lambda at: at.date().isoformat()),
        ("weekly", keep_weekly, lambda at: "{}-W{:02d}".format(*at.isocalendar()[:2])),
        ("monthly", keep_monthly, lambda at: f"{at.year}-{at.month:02d}"),
    )
    for rule, count, period_of in rules:
        seen: set[str] = set()
        for backup in newest_first:
            if len(seen) >= count:
                break
            period = period_of(backup.created_at.astimezone(UTC))
            if period in seen:
                continue
            seen.add(period)
            kept.setdefault(backup.name, []).append(f"{rule} {period}")
    verified = [b for b in newest_first if b.verified]
    if verified:
        kept.setdefault(verified[0].name, []).append("newest verified")
    return kept


def prune_backups(
    settings: Settings,
    location: str | Path | None = None,
    *,
    keep_daily: int,
    keep_weekly: int,
    keep_monthly: int,
    dry_run: bool = False,
) -> PruneResult:
    """Delete the bundles :func:`select_kept` does not keep (never the newest verified one)."""
    store = store_for(settings, location)
    backups = list_backups(settings, location)
    kept = select_kept(
        backups, keep_daily=keep_daily, keep_weekly=keep_weekly, keep_monthly=keep_monthly
    )
    deleted = [b.name for b in backups if b.name not in kept]
    if not dry_run:
        for name in deleted:
            store.delete(name)
            log.info("backup %s pruned", shown_location(store.where(name)))
    return PruneResult(kept=kept, deleted=deleted)


def newest_verified_backup(engine: Engine) -> datetime | None:
    """When the newest backup that passed verification was made, from the audit log.

    The audit log, not a folder, so every host (scheduler, admin, dashboards) sees the same.
    """
    with engine.connect() as connection:
        rows = connection.execute(
            select(AuditEntry.details)
            .where(AuditEntry.action == VERIFIED_ACTION)
            .order_by(AuditEntry.at.desc())
            .limit(200)
        ).scalars()
        made: list[datetime] = []
        for details in rows:
            try:
                made.append(datetime.fromisoformat(str(details["created_at"])))
            except (KeyError, TypeError, ValueError):
                continue
    return max(made, default=None)

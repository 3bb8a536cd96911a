"""Verify a backup by restoring it: checksums, a scratch restore, counts, checksums and the key.

:func:`verify_backup` checks every file against the manifest, restores the database into a
scratch database (PostgreSQL: a fresh database created and dropped here; SQLite: a temporary
file), compares the migration revision and each table's rows and checksum, and decrypts one
stored value with the key at hand (the bundle's key file, else the configured key). The
outcome is kept beside the manifest (``verified.json``) and in the audit log, which the
`doctor` check reads. Nothing of the original database or of the bundle's files is changed.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from workbench.core.config import Settings
from workbench.core.crypto import Encryptor
from workbench.core.errors import DecryptionError, WorkbenchError
from workbench.core.version import __version__
from workbench.db.engine import create_workbench_engine
from workbench.db.identity_connect import CREDENTIALS_PURPOSE
from workbench.db.types import utcnow
from workbench.ops.backup import database as backup_db
from workbench.ops.backup import roles as backup_roles
from workbench.ops.backup.api import (
    FAILED_ACTION,
    KEY_CHECK_PURPOSE,
    KEY_CHECK_TEXT,
    VERIFIED_ACTION,
    audit,
    default_store,
    shown_location,
)
from workbench.ops.backup.bundle import (
    KEY_FILE,
    UNLISTED,
    BackupStore,
    Manifest,
    TableStats,
    Verification,
    hash_file,
    resolve_bundle,
)
from workbench.ops.errors import BackupError, BackupNotFoundError, BackupVerificationError

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "STORED_VALUES",
    "VerifyResult",
    "check_files",
    "check_key",
    "compare_tables",
    "key_at_hand",
    "verify_backup",
]

log = logging.getLogger(__name__)

#: Encrypted columns and the purpose of their key; "notebook-secrets" is runs.secrets.PURPOSE.
STORED_VALUES = (
    ("users", "db_password_encrypted", CREDENTIALS_PURPOSE),
    ("secrets", "value_encrypted", "notebook-secrets"),
)


@dataclass(frozen=True)
class VerifyResult:
    """A backup that passed verification, and what was checked."""

    name: str
    where: str
    checks: tuple[str, ...]


def check_files(bundle: Path, manifest: Manifest) -> list[str]:
    """Every listed file present with its size and sha256, nothing unlisted; returns checks."""
    problems: list[str] = []
    for name, expected in sorted(manifest.files.items()):
        path = bundle.joinpath(*name.split("/"))
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        found = hash_file(path)
        if found.bytes != expected.bytes:
            problems.append(
                f"{name} is {found.bytes} bytes, the manifest says {expected.bytes} (truncated?)"
            )
        elif found.sha256 != expected.sha256:
            problems.append(f"{name} does not match its sha256 (damaged)")
    listed = set(manifest.files) | UNLISTED
    for path in sorted(bundle.rglob("*")):
        relative = path.relative_to(bundle).as_posix()
        if path.is_file() and relative not in listed and not path.name.startswith("."):
            problems.append(f"{relative} is not in the manifest")
    key_file = bundle / KEY_FILE
    if manifest.key_included and not key_file.is_file():
        problems.append(f"{KEY_FILE} is missing (the backup was made with --include-key)")
    if key_file.is_file() and key_file.stat().st_mode & 0o077:
        problems.append(f"{KEY_FILE} is readable by others; it must be mode 0600")
    if problems:
        raise BackupVerificationError("; ".join(problems) + ".")
    return [f"files: {len(manifest.files)} match their sha256"]


def key_at_hand(bundle: Path, settings: Settings) -> tuple[str | None, str]:
    """The bundle's key file if it has one, else the configured key; and where it came from."""
    key_file = bundle / KEY_FILE
    if key_file.is_file():
        return key_file.read_text(encoding="utf-8").strip(), "the backup's key file"
    return settings.effective_secret_key()


def check_key(manifest: Manifest, key: str | None, source: str) -> str:
    """Refuse a key that is not the backup's (checked against the manifest's key check)."""
    if manifest.key_check is None:
        return "secret key: the backup was made without one"
    if not key:
        return "secret key: none at hand, not checked"
    try:
        matches = (
            Encryptor(key, KEY_CHECK_PURPOSE).decrypt(manifest.key_check.encode()) == KEY_CHECK_TEXT
        )
    except DecryptionError:
        matches = False
    if not matches:
        raise BackupVerificationError(
            f"The secret key from {source} is not this backup's key, so its stored credentials "
            "could not be decrypted. Use the original key (WORKBENCH_SECRET_KEY_FILE), or a "
            "backup made with --include-key."
        )
    return f"secret key from {source} is the backup's"


def compare_tables(found: dict[str, TableStats], manifest: Manifest, what: str) -> str:
    """The restored tables' rows and checksums against the manifest's."""
    problems = [f"table {t} is missing" for t in sorted(set(manifest.tables) - set(found))]
    problems += [
        f"table {t} is not in the manifest" for t in sorted(set(found) - set(manifest.tables))
    ]
    for table in sorted(set(found) & set(manifest.tables)):
        want, got = manifest.tables[table], found[table]
        if want.rows != got.rows:
            problems.append(f"table {table} has {got.rows} rows, the manifest says {want.rows}")
        elif want.checksum != got.checksum:
            problems.append(f"table {table} does not match its checksum")
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise BackupVerificationError(f"The {what} differs from the manifest: {shown}.")
    total = sum(s.rows for s in found.values())
    return f"{what}: {len(found)} tables, {total} rows, checksums equal"


def _decrypt_one(samples: list[tuple[str, bytes]], key: str | None, source: str) -> str:
    if not key:
        return "stored values: no key at hand, none decrypted"
    if not samples:
        return "stored values: none to decrypt"
    purpose, token = samples[0]
    try:
        Encryptor(key, purpose).decrypt(token)
    except DecryptionError:
        raise BackupVerificationError(
            f"A stored {purpose} value does not decrypt with the secret key from {source}; "
            "restored, its users could not sign in to the database. Use the original key."
        ) from None
    return f"a stored {purpose} value decrypts with the key from {source}"


@contextmanager
def _scratch_sqlite(bundle: Path, manifest: Manifest) -> Iterator[sqlite3.Connection]:
    folder = Path(tempfile.mkdtemp(prefix="workbench-verify-"))
    try:
        copy = folder / "scratch.db"
        shutil.copyfile(bundle / manifest.database_file, copy)
        connection = sqlite3.connect(str(copy))
        try:
            status = connection.execute("PRAGMA integrity_check").fetchone()
            if status is None or status[0] != "ok":
                raise BackupVerificationError(f"The SQLite copy is damaged: {status!r}.")
            yield connection
        finally:
            connection.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _scratch_postgresql(
    bench_engine: Engine, settings: Settings, bundle: Path, manifest: Manifest
) -> Iterator[Engine]:
    name = f"wbverify_{uuid.uuid4().hex[:12]}"
    backup_db.create_database(bench_engine, name)
    engine: Engine | None = None
    try:
        url = bench_engine.url.set(database=name)
        with backup_roles.owner_stand_in(bench_engine, manifest.owner_role):
            with bench_engine.begin() as connection:
                backup_roles.create_roles(connection, manifest.roles, logins=False)
            backup_db.restore_postgresql(url, bundle / manifest.database_file)
            engine = create_workbench_engine(settings, url.render_as_string(hide_password=False))
            with engine.begin() as connection:
                backup_roles.adopt_policies(connection, manifest.owner_role)
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        backup_db.drop_database(bench_engine, name)


def _samples_sqlalchemy(engine: Engine) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    with engine.connect() as connection:
        for table, column, purpose in STORED_VALUES:
            token = connection.execute(
                text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL LIMIT 1")  # noqa: S608
            ).scalar()
            if token is not None:
                found.append((purpose, bytes(token)))
    return found


def _samples_sqlite(connection: sqlite3.Connection) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for table, column, purpose in STORED_VALUES:
        row = connection.execute(
            f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL LIMIT 1"  # noqa: S608
        ).fetchone()
        if row is not None:
            found.append((purpose, bytes(row[0])))
    return found


def _verify_database(
    bench_engine: Engine,
    settings: Settings,
    bundle: Path,
    manifest: Manifest,
    key: str | None,
    source: str,
) -> list[str]:
    checks: list[str] = []
    if manifest.database_kind == "sqlite":
        with _scratch_sqlite(bundle, manifest) as connection:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = None if row is None else str(row[0])
            stats = backup_db.sqlite_stats(connection)
            samples = _samples_sqlite(connection)
    else:
        if bench_engine.dialect.name != "postgresql":
            raise BackupError(
                "A PostgreSQL backup is verified on a PostgreSQL server: set "
                "WORKBENCH_DATABASE_URL to the service's database."
            )
        with _scratch_postgresql(bench_engine, settings, bundle, manifest) as engine:
            with engine.begin() as connection:
                revision = backup_db.revision_of(connection)
                stats = backup_db.postgresql_stats(connection)
            samples = _samples_sqlalchemy(engine)
    if revision != manifest.revision:
        raise BackupVerificationError(
            f"The restored copy is at migration {revision}, the manifest says {manifest.revision}."
        )
    checks.append(f"scratch restore: at migration {revision}")
    checks.append(compare_tables(stats, manifest, "scratch restore"))
    checks.append(_decrypt_one(samples, key, source))
    return checks


def verify_backup(bench: Workbench, reference: str | Path, *, record: bool = True) -> VerifyResult:
    """Prove the bundle ``reference`` (a path, URL or name in the home's backups) restores.

    Raises :class:`BackupVerificationError` naming what failed; the outcome is recorded either
    way (``verified.json`` and the audit log) unless ``record`` is false.
    """
    store, name = resolve_bundle(reference, default_store(bench.settings))
    where = shown_location(store.where(name))
    checks: list[str] = []
    manifest: Manifest | None = None
    error: str | None = None
    try:
        with store.local_copy(name) as bundle:
            manifest = store.manifest(name, this_version=True)
            checks.append(
                f"manifest: format {manifest.format_version}, Workbench "
                f"{manifest.workbench_version}, {manifest.database_kind}"
            )
            checks.extend(check_files(bundle, manifest))
            key, source = key_at_hand(bundle, bench.settings)
            checks.append(check_key(manifest, key, source))
            checks.extend(
                _verify_database(bench.engine, bench.settings, bundle, manifest, key, source)
            )
    except BackupNotFoundError:
        raise
    except (WorkbenchError, SQLAlchemyError, sqlite3.Error, OSError) as exc:
        error = str(exc) if isinstance(exc, WorkbenchError) else backup_db.error_summary(exc)
    outcome = Verification(
        ok=error is None,
        verified_at=utcnow(),
        workbench_version=__version__,
        checks=tuple(checks),
        error=error,
    )
    if record:
        _record(bench, store, name, manifest, outcome)
    if error is not None:
        log.error("backup %s failed verification: %s", where, error)
        raise BackupVerificationError(f"Backup {where} failed verification: {error}")
    log.info("backup %s verified: %s", where, "; ".join(checks))
    return VerifyResult(name=name, where=where, checks=tuple(checks))


def _record(
    bench: Workbench,
    store: BackupStore,
    name: str,
    manifest: Manifest | None,
    outcome: Verification,
) -> None:
    try:
        store.write_verification(name, outcome)
    except OSError as exc:
        log.warning("could not record the verification of %s: %s", name, exc)
    details = {
        "created_at": None if manifest is None else manifest.created_at.isoformat(),
        "location": shown_location(store.location),
        "error": outcome.error,
    }
    try:
        audit(bench.engine, VERIFIED_ACTION if outcome.ok else FAILED_ACTION, name, details)
    except SQLAlchemyError as exc:
        log.warning("could not write the audit row of %s: %s", name, type(exc).__name__)

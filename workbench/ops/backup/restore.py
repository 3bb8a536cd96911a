"""Restore a backup into an empty database and home, then run the `doctor` checks on it.

:func:`restore_backup` checks the bundle's files and key before it changes anything, refuses
a target that is not empty unless ``force``, restores the database (PostgreSQL: the group and
login roles first, then ``pg_restore`` in one transaction, then each user's login password
from the stored, encrypted credentials; SQLite: the online backup API), the run outputs and
the key, compares every table with the manifest and ends with
:func:`workbench.ops.health.run_checks` on the restored workbench.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from workbench.core.config import Settings, mask_url, normalize_database_url
from workbench.core.crypto import Encryptor
from workbench.core.home import ensure_home
from workbench.db.engine import create_workbench_engine
from workbench.db.identity_connect import CREDENTIALS_PURPOSE
from workbench.ops.backup import database as backup_db
from workbench.ops.backup import roles as backup_roles
from workbench.ops.backup.api import default_store, shown_location
from workbench.ops.backup.bundle import KEY_FILE, Manifest, resolve_bundle, safe_relative
from workbench.ops.backup.verify import check_files, check_key, compare_tables, key_at_hand
from workbench.ops.errors import RestoreError, RestoreTargetNotEmptyError
from workbench.ops.health import Check, run_checks

__all__ = ["RestoreResult", "restore_backup", "target_settings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreResult:
    """What was restored where, the `doctor` checks of the result and anything to follow up."""

    name: str
    database: str
    home: Path
    checks: list[Check]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every `doctor` check passed (warnings, such as no backup of its own yet, allowed)."""
        return all(c.ok for c in self.checks)


def target_settings(
    settings: Settings, manifest: Manifest, into: str | None, home: Path | None
) -> Settings:
    """The settings of the restored workbench: ``into`` and ``home`` over ``settings``.

    An SQLite backup restored with ``home`` alone goes to that home's embedded database.
    """
    update: dict[str, object] = {}
    if home is not None:
        update["home"] = Path(home).expanduser().resolve()
    if into is not None:
        update["database_url"] = SecretStr(normalize_database_url(into))
    elif home is not None and manifest.database_kind == "sqlite":
        update["database_url"] = None
    chosen = settings.model_copy(update=update)
    kind = make_url(chosen.effective_database_url()).get_backend_name()
    if kind != manifest.database_kind:
        raise RestoreError(
            f"This is a {manifest.database_kind} backup, and the target is a {kind} database: "
            f"restore it into a {manifest.database_kind} database (--into URL)."
        )
    return chosen


def _home_files(home: Path) -> int:
    runs = home / "runs"
    return sum(1 for p in runs.rglob("*") if p.is_file()) if runs.is_dir() else 0


def _key_conflict(bundle_key: str | None, target: Settings) -> str | None:
    """Why the restored home's key would not be the bundle's, or None."""
    if bundle_key is None:
        return None
    configured = target.secret_key.get_secret_value() if target.secret_key else ""
    if configured and configured != bundle_key:
        raise RestoreError(
            "WORKBENCH_SECRET_KEY is set to another key than the backup's: set it to the "
            "backup's key (its secret_key file) for the restored workbench, then restore."
        )
    path = target.secret_key_path
    if path.is_file() and path.read_text(encoding="utf-8").strip() != bundle_key:
        return f"{path} holds another secret key"
    return None


def restore_backup(
    settings: Settings,
    reference: str | Path,
    *,
    into: str | None = None,
    home: Path | None = None,
    force: bool = False,
) -> RestoreResult:
    """Restore the bundle ``reference`` into the database ``into`` and/or the home ``home``.

    Either may be left out to mean the configured one. A target with tables, run outputs or
    another key is refused unless ``force``, which replaces them.
    """
    store, name = resolve_bundle(reference, default_store(settings))
    with store.local_copy(name) as bundle:
        manifest = store.manifest(name, this_version=True)
        check_files(bundle, manifest)
        target = target_settings(settings, manifest, into, home)
        bundle_key = (
            (bundle / KEY_FILE).read_text(encoding="utf-8").strip()
            if (bundle / KEY_FILE).is_file()
            else None
        )
        key, source = key_at_hand(bundle, target)
        check_key(manifest, key, source)
        layout = ensure_home(target)  # before the engine, which would make an SQLite folder
        engine = create_workbench_engine(target)
        shown = mask_url(str(engine.url))
        try:
            try:
                with engine.connect() as connection:
                    empty, held = backup_db.is_empty(connection)
            except SQLAlchemyError as exc:
                raise RestoreError(
                    f"Cannot reach the target database {shown}: {backup_db.error_summary(exc)}"
                ) from None
            problems = [] if empty else [f"{shown} holds {held}"]
            files = _home_files(target.home_path)
            if files:
                problems.append(f"{target.home_path / 'runs'} holds {files} file(s)")
            conflict = _key_conflict(bundle_key, target)
            if conflict:
                problems.append(conflict)
            if problems and not force:
                raise RestoreTargetNotEmptyError(
                    "The restore target is not empty: " + "; ".join(problems) + ". Choose an "
                    "empty database and home, or pass --force to replace what is there."
                )
            try:
                notes = _restore_database(engine, target, bundle, manifest, key, replace=not empty)
                _restore_files(bundle, manifest, layout.root)
                if bundle_key is not None:
                    _restore_key(target.secret_key_path, bundle_key)
            except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
                raise RestoreError(
                    f"The restore into {shown} failed: {backup_db.error_summary(exc)}. Fix the "
                    "cause, then restore again with --force."
                ) from None
        finally:
            engine.dispose()
    if manifest.source.get("home") and manifest.source["home"] != str(target.home_path):
        notes.append(
            f"run records still name their outputs under {manifest.source['home']}/runs; the "
            f"outputs were restored under {target.home_path / 'runs'}"
        )
    engine = create_workbench_engine(target)
    try:
        checks = run_checks(target, engine)
    finally:
        engine.dispose()
    log.info("backup %s restored into %s", shown_location(store.where(name)), shown)
    return RestoreResult(
        name=name, database=shown, home=target.home_path, checks=checks, notes=notes
    )


def _restore_database(
    engine: Engine,
    target: Settings,
    bundle: Path,
    manifest: Manifest,
    key: str | None,
    *,
    replace: bool,
) -> list[str]:
    notes: list[str] = []
    dump = bundle / manifest.database_file
    if manifest.database_kind == "sqlite":
        path = Path(str(engine.url.database))
        engine.dispose()
        path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(dump.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            destination = sqlite3.connect(str(path), timeout=target.sqlite_busy_timeout_ms / 1000)
            try:
                source.backup(destination)
                stats = backup_db.sqlite_stats(destination)
            finally:
                destination.close()
        finally:
            source.close()
        compare_tables(stats, manifest, "restored database")
        return notes
    with engine.begin() as connection:
        if replace:
            backup_db.clear_postgresql(connection)
        made = backup_roles.create_roles(connection, manifest.roles, logins=True)
    if made:
        notes.append(f"created roles: {', '.join(made)}")
    with backup_roles.owner_stand_in(engine, manifest.owner_role):
        backup_db.restore_postgresql(engine.url, dump)
        with engine.begin() as connection:
            backup_roles.adopt_policies(connection, manifest.owner_role)
    with engine.begin() as connection:
        compare_tables(backup_db.postgresql_stats(connection), manifest, "restored database")
    if key:
        decrypt = Encryptor(key, CREDENTIALS_PURPOSE).decrypt
        with engine.begin() as connection:
            count, missing = backup_roles.reset_logins(connection, decrypt)
        notes.append(f"reset the database login of {count} user(s) from their stored credentials")
        if missing:
            notes.append(
                f"no login role for {', '.join(missing)} (missing when backed up): run "
                "`workbench users rotate-credentials USER` for each"
            )
    else:
        notes.append(
            "no secret key at hand: users' database logins were not reset; run `workbench users "
            "rotate-credentials USER` for each user"
        )
    return notes


def _restore_files(bundle: Path, manifest: Manifest, home: Path) -> None:
    """Copy the bundle's run outputs into the home (paths checked: a manifest is input)."""
    for name in manifest.files:
        relative = safe_relative(name)
        if relative.parts[:1] != ("files",) or len(relative.parts) < 3:
            continue
        target = home.joinpath(*relative.parts[1:])
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copyfile(bundle.joinpath(*relative.parts), target)
        target.chmod(0o600)


def _restore_key(path: Path, key: str) -> None:
    """Write the backup's key to the home (0600), keeping any other key beside it."""
    if path.is_file():
        if path.read_text(encoding="utf-8").strip() == key:
            return
        path.replace(path.with_name(path.name + ".before-restore"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")

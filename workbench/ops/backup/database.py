"""The database side of backups: consistent copies, table checksums, restores and roles.

PostgreSQL is dumped with ``pg_dump -Fc`` by the service role, inside a repeatable-read
snapshot that the checksums are computed in as well, so the manifest describes exactly the
dump. The service sees every row under forced row-level security through its ``wb_service``
policy (``--enable-row-security``); the roles it needs are :mod:`workbench.ops.backup.roles`.
SQLite is copied with the online backup API, which takes one consistent snapshot while
writers carry on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from workbench.ops.backup.bundle import TableStats
from workbench.ops.errors import BackupError, BackupToolError, RestoreError

__all__ = [
    "DATA_EXCLUDED",
    "autocommit",
    "clear_postgresql",
    "copy_sqlite",
    "create_database",
    "drop_database",
    "dump_postgresql",
    "error_summary",
    "is_empty",
    "libpq",
    "postgresql_stats",
    "restore_postgresql",
    "revision_of",
    "snapshot",
    "sqlite_stats",
]

#: Live process state, not data: stored empty so a restored workbench has no ghost services.
DATA_EXCLUDED = ("service_heartbeats",)
#: Settings that make a row's text form the same in every session.
_STABLE_TEXT = (
    "SET LOCAL TimeZone TO 'UTC'",
    "SET LOCAL DateStyle TO 'ISO, YMD'",
    "SET LOCAL IntervalStyle TO 'postgres'",
    "SET LOCAL extra_float_digits TO 1",
    "SET LOCAL bytea_output TO 'hex'",
    "SET LOCAL statement_timeout TO 0",
)


def _raw(connection: Connection) -> Any:
    return connection.connection.driver_connection


# -- PostgreSQL ------------------------------------------------------------------------------


def _tables_postgresql(connection: Connection) -> list[tuple[str, str]]:
    rows = connection.exec_driver_sql(
        "SELECT n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' "
        "AND left(n.nspname, 3) <> 'pg_' ORDER BY 1, 2"
    )
    return [(str(schema), str(name)) for schema, name in rows]


def postgresql_stats(connection: Connection) -> dict[str, TableStats]:
    """Rows and checksum of every table, in the connection's transaction (and snapshot).

    The checksum sums two 64-bit slices of each row's md5 (of its text form) as numerics:
    independent of row order, and computed in one pass with constant memory however large
    the table. A table outside the current schema is named ``schema.table``.
    """
    for statement in _STABLE_TEXT:
        connection.exec_driver_sql(statement)
    current = connection.exec_driver_sql("SELECT current_schema()").scalar_one()
    stats: dict[str, TableStats] = {}
    with _raw(connection).cursor() as cursor:
        for schema, table in _tables_postgresql(connection):
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint"
                "::numeric), 0)::text || ':' || coalesce(sum(('x' || substr(h, 17, 16))"
                "::bit(64)::bigint::numeric), 0)::text) "
                "FROM (SELECT md5(t::text) AS h FROM {} AS t) AS s"
            ).format(sql.Identifier(schema, table))
            try:
                cursor.execute(query)
            except psycopg.Error as exc:
                raise BackupError(
                    f"Cannot read table {schema}.{table} as the service role "
                    f"({error_summary(exc)}). Every table must be readable by the service."
                ) from None
            rows, checksum = cursor.fetchone()
            name = table if schema == current else f"{schema}.{table}"
            stats[name] = TableStats(int(rows), str(checksum))
    return stats


def error_summary(exc: BaseException) -> str:
    """The first line of a driver's or the system's message (never the URL connected with)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def revision_of(connection: Connection) -> str | None:
    """The Alembic revision stored in the database, or None for an uninitialised one."""
    if connection.dialect.name == "postgresql":
        present = connection.exec_driver_sql(
            "SELECT to_regclass('alembic_version') IS NOT NULL"
        ).scalar()
    else:
        present = connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).scalar()
    if not present:
        return None
    value = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return None if value is None else str(value)


def libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A conninfo string without the password, and the environment that carries it.

    The password goes through ``PGPASSWORD`` so it never appears in a command line.
    """
    params: dict[str, Any] = {"dbname": url.database, "application_name": "workbench-backup"}
    if url.host:
        params["host"] = url.host
    if url.port:
        params["port"] = str(url.port)
    if url.username:
        params["user"] = url.username
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    env = dict(os.environ)  # libpq's own variables (PGPASSFILE, PGSSLROOTCERT, ...) apply
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return make_conninfo("", **params), env


def _tool(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
    )
    if found is None:
        raise BackupToolError(
            f"{name} is not installed; install the PostgreSQL client tools of the server's major "
            "version (for example the postgresql-client package)."
        )
    return found


def _run_tool(args: list[str], env: dict[str, str], secret: str | None, what: str) -> None:
    proc = subprocess.run(  # noqa: S603 (a fixed tool with arguments we built)
        args, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        message = proc.stderr.strip() or f"exit status {proc.returncode}"
        if secret:
            message = message.replace(secret, "***")
        lines = message.splitlines()
        shown = "\n  ".join(lines[:8] + (["..."] if len(lines) > 8 else []))
        raise BackupToolError(f"{what} failed:\n  {shown}")


def dump_postgresql(url: URL, snapshot: str, schema: str, target: Path) -> None:
    """``pg_dump -Fc`` of the database at ``snapshot`` into ``target``, heartbeats left out."""
    conninfo, env = libpq(url)
    args = [
        _tool("pg_dump"),
        "--format=custom",
        "--enable-row-security",
        f"--snapshot={snapshot}",
        f"--file={target}",
        *(f"--exclude-table-data={schema}.{table}" for table in DATA_EXCLUDED),
        f"--dbname={conninfo}",
    ]
    _run_tool(args, env, url.password and str(url.password), "pg_dump")
    target.chmod(0o600)


def restore_postgresql(url: URL, dump: Path) -> None:
    """``pg_restore`` into an empty database, in one transaction, owned by the connecting role."""
    conninfo, env = libpq(url)
    args = [
        _tool("pg_restore"),
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={conninfo}",
        str(dump),
    ]
    _run_tool(args, env, url.password and str(url.password), "pg_restore")


@contextmanager
def snapshot(engine: Engine) -> Iterator[tuple[Connection, str]]:
    """A read-only repeatable-read transaction and its exported snapshot id, for pg_dump."""
    options = {"isolation_level": "REPEATABLE READ"}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        exported = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        yield connection, str(exported)


def autocommit(engine: Engine, statement: sql.Composable) -> None:
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with connection, _raw(connection).cursor() as cursor:
        cursor.execute(statement)


def create_database(engine: Engine, name: str) -> None:
    """``CREATE DATABASE`` on the engine's server, owned by the engine's role."""
    try:
        autocommit(engine, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except DBAPIError as exc:
        raise BackupError(
            f"Could not create the scratch database {name} ({error_summary(exc)}); verifying a "
            "PostgreSQL backup needs a service role with CREATEDB (ALTER ROLE ... CREATEDB)."
        ) from None


def drop_database(engine: Engine, name: str) -> None:
    autocommit(
        engine, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


def is_empty(connection: Connection) -> tuple[bool, str]:
    """Whether a database holds no tables (and why not, for the message)."""
    if connection.dialect.name == "postgresql":
        tables = _tables_postgresql(connection)
        private = connection.exec_driver_sql(
            "SELECT 1 FROM pg_namespace WHERE nspname = 'wb_private'"
        ).first()
        if tables or private:
            return False, f"{len(tables)} table(s)"
        return True, ""
    names = (
        connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        .scalars()
        .all()
    )
    return (not names, f"{len(names)} table(s)")


def clear_postgresql(connection: Connection) -> None:
    """Drop everything the connecting role owns in this database (``--force``).

    Run as the service role: a superuser owns the system catalogs, so it is refused.
    """
    if connection.exec_driver_sql(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).scalar():
        raise RestoreError(
            "Replacing a non-empty PostgreSQL database (--force) must be done as the service role "
            "that owns Workbench's tables, not as a superuser."
        )
    try:
        connection.exec_driver_sql("DROP OWNED BY CURRENT_USER")
    except DBAPIError as exc:
        raise RestoreError(f"Could not empty the target database: {error_summary(exc)}") from None


# -- SQLite ----------------------------------------------------------------------------------


def copy_sqlite(source: str | Path, target: Path, busy_timeout_ms: int) -> None:
    """Copy a live SQLite database with the online backup API: one consistent snapshot.

    The copy is a self-contained file (rollback journal, not WAL) without the rows of
    :data:`DATA_EXCLUDED`.
    """
    src = sqlite3.connect(str(source), timeout=busy_timeout_ms / 1000)
    try:
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)
            for table in DATA_EXCLUDED:
                exists = dst.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
                ).fetchone()
                if exists:
                    dst.execute(f'DELETE FROM "{table}"')  # noqa: S608 (a constant name)
            dst.commit()
            dst.execute("PRAGMA journal_mode=DELETE")
            problem = dst.execute("PRAGMA quick_check").fetchone()
            if problem is None or problem[0] != "ok":
                raise BackupError(f"The SQLite copy failed its integrity check: {problem!r}.")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"Could not copy the SQLite database: {exc}.") from None
    finally:
        src.close()
    target.chmod(0o600)


def sqlite_stats(connection: sqlite3.Connection) -> dict[str, TableStats]:
    """Rows and checksum of every table, in the manner of :func:`postgresql_stats`: the sums
    of the two halves of each row's sha256 (of its ``repr``), so order does not matter and
    memory stays constant."""
    names = [
        str(row[0])
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    stats: dict[str, TableStats] = {}
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        rows = low = high = 0
        for row in connection.execute(f"SELECT * FROM {quoted}"):  # noqa: S608 (quoted)
            digest = hashlib.sha256(repr(tuple(row)).encode("utf-8")).digest()
            low += int.from_bytes(digest[:16], "big")
            high += int.from_bytes(digest[16:], "big")
            rows += 1
        total = hashlib.sha256(f"{low}:{high}".encode("ascii")).hexdigest()
        stats[name] = TableStats(rows, total)
    return stats

"""One engine factory for both modes: embedded SQLite and team PostgreSQL.

SQLite gets WAL, foreign keys and a busy timeout, and real transactions (``BEGIN`` is sent
by SQLAlchemy rather than guessed by the driver) so DDL and bulk writes are all or nothing.
PostgreSQL gets psycopg 3, a small pre-pinged, recycled pool and a statement timeout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from workbench.core.config import Settings, normalize_database_url
from workbench.core.errors import ConfigError

__all__ = ["create_workbench_engine", "is_postgresql", "is_sqlite"]

APPLICATION_NAME = "workbench"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


OnConnect = Callable[[Any, str], None]


def create_workbench_engine(
    settings: Settings, url: str | None = None, *, on_connect: OnConnect | None = None
) -> Engine:
    """Create the engine for ``url`` (default: the configured database) with sane pools.

    ``on_connect(dbapi_connection, dialect_name)`` runs for every new connection; the API
    layer passes the plugins' ``prepare_connection`` hook through it.
    """
    raw = normalize_database_url(url) if url else settings.effective_database_url()
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "WORKBENCH_DATABASE_URL is not a valid database URL; expected "
            "postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(raw, settings)
    elif backend == "postgresql":
        engine = _postgresql_engine(raw, settings)
    else:
        raise ConfigError(
            f"Database dialect {backend!r} is not supported; use PostgreSQL or SQLite."
        )
    if on_connect is not None:
        callback = on_connect

        @event.listens_for(engine, "connect")
        def _prepare(dbapi_conn: Any, _record: Any) -> None:
            callback(dbapi_conn, backend)

    return engine


def _sqlite_engine(url: str, settings: Settings) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_pre_ping=True,
        connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
    )
    busy_ms = int(settings.sqlite_busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers that read first pass execution_options(sqlite_begin="IMMEDIATE") to take
        # the write lock up front, instead of failing to upgrade a stale read snapshot.
        mode = conn.get_execution_options().get("sqlite_begin", "")
        if mode not in ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"unknown SQLite transaction mode {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def _postgresql_engine(url: str, settings: Settings) -> Engine:
    options = f"-c statement_timeout={int(settings.statement_timeout_ms)}"
    return create_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_recycle=settings.pool_recycle,
        pool_pre_ping=True,
        connect_args={
            "application_name": APPLICATION_NAME,
            "connect_timeout": settings.connect_timeout,
            "options": options,
        },
    )

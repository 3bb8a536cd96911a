"""The Workbench handle: settings, one pooled engine, sessions and plugins, and the default one.

Every layer below the public facade receives a :class:`Workbench` (or, below this module, the
narrow :class:`~workbench.db.handle.Database` shape it satisfies). The data API's functions
are its methods: ``bench.sql(...)`` is :func:`workbench.data.api.sql` on ``bench``, behind the
public boundary (:func:`public_api`) as every function the facade hands out.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from workbench.core.boundary import public
from workbench.core.config import Settings, load_settings, mask_url
from workbench.core.errors import WorkbenchError
from workbench.core.production import ensure_production_safe
from workbench.data import api as data
from workbench.db import failures, migrate
from workbench.db.engine import create_workbench_engine

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from workbench.plugins.manager import Plugins

__all__ = [
    "Workbench",
    "close",
    "connect",
    "default",
    "explain_database",
    "on_default",
    "public_api",
    "resolve",
]

P = ParamSpec("P")
R = TypeVar("R")


def explain_database(
    exc: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> WorkbenchError | None:
    """A database the call could not reach, open or find, in the user's terms
    (:func:`workbench.db.failures.explain`); ``None`` for anything else (a bug)."""
    if not isinstance(exc, SQLAlchemyError):
        return None
    given = [a for a in (*args, kwargs.get("workbench")) if isinstance(a, Workbench)]
    bench = given[0] if given else _default
    return failures.explain(exc, bench.database_url) if bench is not None else None


def public_api(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` behind the public boundary (:func:`workbench.core.boundary.public`), a
    database that cannot be reached or opened explained."""
    return public(function, explain=explain_database)


class Workbench:
    """A configured workbench: settings, one pooled engine and sessions on it."""

    def __init__(
        self,
        settings: Settings,
        database_url: str | None = None,
        *,
        plugins: Plugins | None = None,
    ) -> None:
        self.settings = settings
        self._url = database_url
        self._plugins = plugins
        self._engine: Engine | None = None
        self._sessions: tuple[sessionmaker[Session], sessionmaker[Session]] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Workbench {mask_url(self.database_url)}>"

    @property
    def database_url(self) -> str:
        if self._url:
            return self._url
        return self.settings.effective_database_url()

    @property
    def engine(self) -> Engine:
        """The pooled engine, created on first use."""
        with self._lock:
            if self._engine is None:
                self._engine = create_workbench_engine(
                    self.settings, self._url, on_connect=self._prepare_connection
                )
            return self._engine

    @property
    def plugins(self) -> Plugins:
        """The plugins this workbench calls (the process-wide set unless one was given)."""
        if self._plugins is None:
            from workbench.plugins.manager import get_plugins

            self._plugins = get_plugins(self.settings)
        return self._plugins

    def _prepare_connection(self, dbapi_connection: Any, dialect: str) -> None:
        self.plugins.call("prepare_connection", dbapi_connection=dbapi_connection, dialect=dialect)

    def session(self, *, writing: bool = False) -> Session:
        """A new ORM session; use it as a context manager.

        ``writing``: its transactions will write. On SQLite they then take the write lock when
        they begin (``BEGIN IMMEDIATE``), waiting for another writer up to the busy timeout: a
        transaction that read first and then wrote could not take the lock once another
        writer had committed, and failed at once with "database is locked". No effect on
        PostgreSQL.
        """
        if self._sessions is None:
            self._sessions = (
                sessionmaker(self.engine, expire_on_commit=False),
                sessionmaker(
                    self.engine.execution_options(sqlite_begin="IMMEDIATE"),
                    expire_on_commit=False,
                ),
            )
        return self._sessions[writing]()

    @public_api
    def upgrade(self, revision: str = "head") -> None:
        migrate.upgrade(self.engine, revision)

    @public_api
    def migration_status(self) -> migrate.MigrationStatus:
        return migrate.migration_status(self.engine)

    # The data API, one definition each in workbench.data.api, behind the public boundary.
    sql = public_api(data.sql)
    read_table = public_api(data.read_table)
    write = public_api(data.write)
    tables = public_api(data.tables)
    describe = public_api(data.describe)

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
                self._sessions = None

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@public
def connect(database_url: str | None = None, **settings: Any) -> Workbench:
    """A workbench for ``database_url`` (default: the configured one); settings override env."""
    resolved = load_settings(**settings)
    ensure_production_safe(resolved)
    return Workbench(resolved, database_url)


_default: Workbench | None = None
_default_lock = threading.Lock()


@public
def default() -> Workbench:
    """The workbench the module-level functions use, built from the settings on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = connect()
        return _default


def resolve(workbench: Workbench | None = None) -> Workbench:
    """``workbench`` if given, else the default one: for functions taking ``workbench=``."""
    return workbench if workbench is not None else default()


def close() -> None:
    """Close the default workbench's connections (it is rebuilt on next use)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
            _default = None


def on_default(function: Callable[Concatenate[Workbench, P], R]) -> Callable[P, R]:
    """``function`` without its first argument, acting on the default workbench.

    ``wb.sql = on_default(data.sql)``: one signature and docstring, written once; a
    WorkbenchError is raised from it (:func:`public_api`).
    """

    @functools.wraps(function)
    def on_the_default(*args: P.args, **kwargs: P.kwargs) -> R:
        return function(default(), *args, **kwargs)

    return public_api(on_the_default)

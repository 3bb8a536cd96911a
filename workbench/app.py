"""The Workbench handle: settings, one pooled engine, sessions and plugins, and the default one.

Every layer below the public facade receives a :class:`Workbench` (or, below this module, the
narrow :class:`~workbench.db.handle.Database` shape it satisfies). The data API's functions
are its methods as they are: ``bench.sql(...)`` is :func:`workbench.data.api.sql` on ``bench``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from workbench.core.boundary import public
from workbench.core.config import Settings, load_settings, mask_url
from workbench.core.production import ensure_production_safe
from workbench.data import api as data
from workbench.db import migrate
from workbench.db.engine import create_workbench_engine

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from workbench.plugins.manager import Plugins

__all__ = ["Workbench", "close", "connect", "default", "on_default", "resolve"]

P = ParamSpec("P")
R = TypeVar("R")


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
        self._sessions: sessionmaker[Session] | None = None
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

    def session(self) -> Session:
        """A new ORM session; use it as a context manager."""
        if self._sessions is None:
            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        return self._sessions()

    @public
    def upgrade(self, revision: str = "head") -> None:
        migrate.upgrade(self.engine, revision)

    @public
    def migration_status(self) -> migrate.MigrationStatus:
        return migrate.migration_status(self.engine)

    # The data API, one definition each in workbench.data.api, behind the public boundary.
    sql = public(data.sql)
    read_table = public(data.read_table)
    write = public(data.write)
    tables = public(data.tables)
    describe = public(data.describe)

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
    WorkbenchError is raised from it (:func:`~workbench.core.boundary.public`).
    """

    @functools.wraps(function)
    def on_the_default(*args: P.args, **kwargs: P.kwargs) -> R:
        return function(default(), *args, **kwargs)

    return public(on_the_default)

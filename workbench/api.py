"""The public Python surface: ``wb.connect()``, ``wb.init()`` and the default workbench.

Analysts use the module-level functions, which act on one default :class:`Workbench` built
from the settings on first use; services and tests build their own with :func:`connect`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from workbench.config import Settings, load_settings, mask_url
from workbench.db import migrate
from workbench.db.engine import create_workbench_engine
from workbench.db.models import Role, User
from workbench.errors import DatabaseError
from workbench.production import ensure_production_safe

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

    from workbench.catalog import TableDescription

if TYPE_CHECKING:
    from workbench.plugins import Plugins

__all__ = [
    "InitResult",
    "Workbench",
    "close",
    "connect",
    "default",
    "describe",
    "init",
    "read_table",
    "resolve",
    "sql",
    "tables",
    "write",
]


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
            from workbench.plugins import get_plugins

            self._plugins = get_plugins(self.settings)
        return self._plugins

    def _prepare_connection(self, dbapi_connection: Any, dialect: str) -> None:
        self.plugins.call("prepare_connection", dbapi_connection=dbapi_connection, dialect=dialect)

    def session(self) -> Session:
        """A new ORM session; use it as a context manager."""
        if self._sessions is None:
            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        return self._sessions()

    def upgrade(self, revision: str = "head") -> None:
        migrate.upgrade(self.engine, revision)

    def migration_status(self) -> migrate.MigrationStatus:
        return migrate.migration_status(self.engine)

    # -- the data API (workbench.data) ------------------------------------------------------

    def sql(self, query: str, cache: float | None = None, **params: Any) -> pd.DataFrame:
        """Run ``query`` with ``:name`` parameters; see :func:`workbench.data.sql`."""
        from workbench import data

        return data.sql(self, query, cache=cache, **params)

    def read_table(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        limit: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Table ``name`` as a DataFrame; see :func:`workbench.data.read_table`."""
        from workbench import data

        return data.read_table(self, name, columns, where, limit, params)

    def write(
        self,
        df: pd.DataFrame,
        table: str,
        mode: str = "create",
        key: str | Sequence[str] | None = None,
        add_columns: bool = False,
        *,
        team: str | None = None,
        shared: bool = False,
    ) -> int:
        """Write ``df`` to ``table`` in one transaction; see :func:`workbench.data.write`."""
        from workbench import data

        return data.write(self, df, table, mode, key, add_columns, team=team, shared=shared)

    def tables(self) -> pd.DataFrame:
        """The analysts' tables with their last write; see :func:`workbench.data.tables`."""
        from workbench import data

        return data.tables(self)

    def describe(self, table: str) -> TableDescription:
        """Columns, types, rows, owner and last write of ``table``."""
        from workbench import data

        return data.describe(self, table)

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


def connect(database_url: str | None = None, **settings: Any) -> Workbench:
    """A workbench for ``database_url`` (default: the configured one); settings override env."""
    resolved = load_settings(**settings)
    ensure_production_safe(resolved)
    return Workbench(resolved, database_url)


_default: Workbench | None = None
_default_lock = threading.Lock()


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


def sql(query: str, cache: float | None = None, **params: Any) -> pd.DataFrame:
    """Run ``query`` on the default workbench; ``:name`` parameters come from ``params``."""
    return default().sql(query, cache=cache, **params)


def read_table(
    name: str,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    limit: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Table ``name`` of the default workbench as a DataFrame."""
    return default().read_table(name, columns, where, limit, params)


def write(
    df: pd.DataFrame,
    table: str,
    mode: str = "create",
    key: str | Sequence[str] | None = None,
    add_columns: bool = False,
    *,
    team: str | None = None,
    shared: bool = False,
) -> int:
    """Write ``df`` to ``table`` of the default workbench in one transaction.

    In team mode a new table belongs to ``team`` (see :func:`workbench.data.write`);
    ``shared=True`` lets every user read it.
    """
    return default().write(df, table, mode, key, add_columns, team=team, shared=shared)


def tables() -> pd.DataFrame:
    """The analysts' tables of the default workbench."""
    return default().tables()


def describe(table: str) -> TableDescription:
    """Columns, types, rows, owner and last write of ``table`` in the default workbench."""
    return default().describe(table)


@dataclass(frozen=True)
class InitResult:
    home: Path
    database: str
    revision: str
    secret_key_generated: bool
    admin_username: str
    admin_created: bool
    admin_password: str | None
    """The generated one-time admin password; ``None`` if supplied or the admin existed."""


def init(
    settings: Settings | None = None,
    *,
    admin_username: str = "admin",
    admin_password: str | None = None,
) -> InitResult:
    """Create the home, a secret key, the schema at head and the first admin. Idempotent."""
    from workbench.home import ensure_home, ensure_secret_key
    from workbench.identity import create_user

    settings = settings or load_settings()
    ensure_production_safe(settings, allow_missing_key=True)
    layout = ensure_home(settings)
    generated = ensure_secret_key(settings)
    ensure_production_safe(settings)
    with Workbench(settings) as wb:
        wb.upgrade()
        status = wb.migration_status()
        with wb.session() as session, session.begin():
            admin = session.scalar(select(User).where(User.role == Role.ADMIN).limit(1))
            created, password = False, None
            if admin is None:
                # In team mode the admin gets a database login at once (settings= does it).
                account = create_user(
                    session,
                    admin_username,
                    role=Role.ADMIN,
                    password=admin_password,
                    settings=settings,
                )
                created, password = True, account.password
                admin_username = account.user.username
            else:
                admin_username = admin.username
        if status.current is None:  # pragma: no cover - upgrade() raised already
            raise DatabaseError("The database schema could not be created.")
        return InitResult(
            home=layout.root,
            database=mask_url(wb.database_url),
            revision=status.current,
            secret_key_generated=generated,
            admin_username=admin_username,
            admin_created=created,
            admin_password=password,
        )

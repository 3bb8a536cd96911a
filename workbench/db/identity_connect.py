"""Connections with exactly one user's rights: the way in for dashboards, notebooks and runs.

A user's connections log in as the user's own PostgreSQL role, so the row-level policies see
that login (``session_user``), which nothing said on the connection can change. Each user
has a pool of their own: a connection is never handed from one user to another, and when it
is returned its session state (``SET``, ``SET ROLE``, temporary objects, prepared statements)
is wiped with ``DISCARD ALL``, so even the same user's next checkout starts clean.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import PoolResetState

from workbench.core.config import Settings
from workbench.core.crypto import encryptor
from workbench.db.engine import create_workbench_engine
from workbench.db.errors import NoDatabaseIdentityError
from workbench.db.models import User

__all__ = [
    "CREDENTIALS_PURPOSE",
    "UserConnections",
    "user_database_url",
    "user_engine",
]

CREDENTIALS_PURPOSE = "db-credentials"
USER_POOL_SIZE = 2


def user_database_url(settings: Settings, user: User, base_url: str | None = None) -> URL:
    """The database URL of ``base_url`` (default: the configured one) logging in as ``user``.

    Hand it only to that user's own processes (their notebook server, their runs).
    """
    if not user.is_active:
        raise NoDatabaseIdentityError(
            f"User {user.username!r} is disabled and has no database access; an admin can "
            "enable the account again."
        )
    if not user.db_role or not user.db_password_encrypted:
        raise NoDatabaseIdentityError(
            f"User {user.username!r} has no database login yet; run "
            f"`workbench users rotate-credentials {user.username}`."
        )
    password = encryptor(settings, CREDENTIALS_PURPOSE).decrypt(user.db_password_encrypted)
    url = make_url(base_url or settings.effective_database_url())
    if url.get_backend_name() != "postgresql":
        raise NoDatabaseIdentityError(
            "Per-user database logins exist only in team mode (PostgreSQL); the embedded "
            "SQLite database is single-user."
        )
    return url.set(username=user.db_role, password=password)


def _discard_on_return(engine: Engine) -> None:
    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
        if state.terminate_only:
            return
        dbapi_connection.rollback()
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute("DISCARD ALL")
        finally:
            dbapi_connection.autocommit = False


def user_engine(settings: Settings, user: User, base_url: str | None = None) -> Engine:
    """A pooled engine logging in as ``user``'s own role; dispose of it when done."""
    url = user_database_url(settings, user, base_url)
    # One pool per user: keep each small (a dashboard viewer needs one or two connections).
    small = settings.model_copy(
        update={
            "pool_size": min(settings.pool_size, USER_POOL_SIZE),
            "max_overflow": min(settings.max_overflow, USER_POOL_SIZE),
        }
    )
    engine = create_workbench_engine(small, url.render_as_string(hide_password=False))
    _discard_on_return(engine)
    return engine


class UserConnections:
    """One small pool per user, created on first use: ``with conns.connect(user) as c: ...``.

    The dashboards' way in: give it the authenticated viewer, get a connection that sees
    exactly what that viewer may see.
    """

    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.settings = settings
        self._base_url = base_url
        self._engines: dict[uuid.UUID, tuple[bytes, Engine]] = {}
        self._lock = threading.Lock()

    def engine(self, user: User) -> Engine:
        with self._lock:
            # Keyed on the encrypted credentials: a rotated password gets a fresh pool.
            key = (user.db_role or "").encode() + b"/" + (user.db_password_encrypted or b"")
            known = self._engines.get(user.id)
            if known is not None and known[0] == key:
                return known[1]
            if known is not None:
                known[1].dispose()
            engine = user_engine(self.settings, user, self._base_url)
            self._engines[user.id] = (key, engine)
            return engine

    @contextmanager
    def connect(self, user: User) -> Iterator[Connection]:
        """A connection with ``user``'s rights; rolled back and wiped when it is returned."""
        with self.engine(user).connect() as connection:
            yield connection

    def forget(self, user_id: uuid.UUID) -> None:
        """Close a user's pool (after their credentials were rotated or they were disabled)."""
        with self._lock:
            known = self._engines.pop(user_id, None)
        if known is not None:
            known[1].dispose()

    def close(self) -> None:
        with self._lock:
            engines = [engine for _, engine in self._engines.values()]
            self._engines.clear()
        for engine in engines:
            engine.dispose()

    def __enter__(self) -> UserConnections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

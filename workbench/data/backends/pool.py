"""Pooled ADBC connections to PostgreSQL, so a data transfer reuses a login instead of opening one.

Opening an ADBC PostgreSQL connection costs a server process plus the driver's reading of the
type catalogue: tens of milliseconds, more than reading a small table. Each process keeps one
small SQLAlchemy :class:`~sqlalchemy.pool.QueuePool` per connection URI (that is, per login
role, so no connection ever passes between users). A connection goes back clean — rolled back,
then ``DISCARD ALL`` (settings, ``SET ROLE``, temporary tables, prepared statements, advisory
locks) — and waits outside any transaction; its next checkout first proves it alive with one
round trip, so one the server dropped is replaced without the caller noticing. A forked
child never reuses its parent's connections.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.pool import QueuePool

from workbench.data.backends.base import AdbcError

__all__ = ["checkout", "dispose", "dispose_all"]

#: Idle connections kept per login; a burst beyond it opens (and then closes) extra ones.
POOL_SIZE = 2
MAX_OVERFLOW = 8

_pools: dict[str, QueuePool] = {}
#: A forked child's copies of its parent's pools: kept, never closed (closing would end the
#: parent's sessions, whose sockets the child shares).
_inherited: list[QueuePool] = []
_owner_pid = os.getpid()
_lock = threading.Lock()


def _begin_on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # one round trip proves the session is alive
            cursor.fetchall()
        dbapi_connection.adbc_connection.set_autocommit(False)
    except AdbcError as error:
        raise exc.DisconnectionError(str(error).split("\n")[0]) from None


def _clean_on_return(dbapi_connection: Any, _record: Any, state: Any) -> None:
    if state.terminate_only:
        return
    dbapi_connection.rollback()
    dbapi_connection.adbc_connection.set_autocommit(True)
    with dbapi_connection.cursor() as cursor:
        cursor.execute("DISCARD ALL")


def _pool(uri: str, connect: Callable[[], Any], recycle: int) -> QueuePool:
    global _owner_pid
    with _lock:
        if os.getpid() != _owner_pid:  # a forked child: the parent's sockets are not ours
            _inherited.extend(_pools.values())
            _pools.clear()
            _owner_pid = os.getpid()
        pool = _pools.get(uri)
        if pool is None:
            pool = QueuePool(
                connect,
                pool_size=POOL_SIZE,
                max_overflow=MAX_OVERFLOW,
                recycle=recycle,
                reset_on_return=None,  # _clean_on_return does the rollback and more
            )
            event.listen(pool, "checkout", _begin_on_checkout)
            event.listen(pool, "reset", _clean_on_return)
            _pools[uri] = pool
        return pool


def checkout(uri: str, connect: Callable[[], Any], recycle: int = 1800) -> Any:
    """A pooled connection for ``uri`` (opened with ``connect`` when none is idle), in a
    transaction; call ``.close()`` on it to give it back."""
    return _pool(uri, connect, recycle).connect()


def dispose(uri: str) -> None:
    """Close the idle pooled connections of one login (``uri`` as given to :func:`checkout`),
    for a handle that is done with it; the pool opens new ones if that login comes back."""
    with _lock:
        pool = _pools.get(uri) if os.getpid() == _owner_pid else None
    if pool is not None:
        pool.dispose()


def dispose_all() -> None:
    """Close every idle pooled connection of this process (tests, shutdown)."""
    with _lock:
        for pool in _pools.values():
            pool.dispose()
        _pools.clear()

"""The opt-in query cache behind ``wb.sql(..., cache=seconds)``.

Redis when ``WORKBENCH_REDIS_URL`` is set (shared by every process), otherwise a small
in-process cache. An entry's key covers the database, the query, its parameters and the
*last write* of every table the query names: the ``datasets`` row that every ``wb.write``
updates in its own transaction (time, mode and rows), read with one small query on each
cached read. A write from any process (another kernel, a scheduled run, a worker) therefore
changes the key, and the next cached read runs the query again; old entries simply expire.
The stamps are read before the query runs, so a result is never stored under a newer stamp
than the data it holds. In this process ``wb.write`` also bumps a local version of the table.
Tables changed by other means (SQL statements, other tools) are not tracked: keep the TTL
short. A failing cache never fails a query: it is logged and skipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from workbench.core.config import mask_url

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from workbench.db.handle import Database

__all__ = [
    "MemoryCache",
    "QueryCache",
    "RedisCache",
    "Stamps",
    "cache_for",
    "cache_namespace",
    "last_writes",
    "tables_named",
    "warm_up",
]

log = logging.getLogger(__name__)

_WORD = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)')
MEMORY_ENTRIES = 128


def tables_named(query: str) -> list[str]:
    """Every identifier in ``query`` (lower-cased unless quoted): a superset of its tables."""
    names = {q.replace('""', '"') if q else w.lower() for q, w in _WORD.findall(query)}
    return sorted(names)


#: Reads the last-write stamps of the named tables (one string per name, "" if unknown).
Stamps = Callable[[Sequence[str]], list[str]]


def last_writes(engine: Engine) -> Stamps:
    """Stamps from ``engine``'s ``datasets`` table: when, how and how many rows each table
    was last written with ``wb.write`` (names that are not tables stay "")."""
    from sqlalchemy import bindparam, text

    query = text(
        "SELECT name, last_write_at, last_write_mode, last_write_rows FROM datasets "
        "WHERE name IN :names"
    ).bindparams(bindparam("names", expanding=True))

    def read(names: Sequence[str]) -> list[str]:
        if not names:
            return []
        with engine.connect() as connection:
            rows = connection.execute(query, {"names": list(names)}).all()
        found = {row[0]: f"{row[1]}|{row[2]}|{row[3]}" for row in rows}
        return [found.get(name, "") for name in names]

    return read


def _serialize(df: pd.DataFrame) -> bytes | None:
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError):
        return None  # e.g. duplicate column names: not cached
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _deserialize(payload: bytes) -> pd.DataFrame:
    return pa.ipc.open_stream(payload).read_all().to_pandas()


class QueryCache:
    """Looks up and stores query results; subclasses hold the storage.

    ``stamps`` reads the tables' last writes from the database (:func:`last_writes`); without
    it only this process's (or Redis's) write versions are part of the key.
    """

    def __init__(self, namespace: str, stamps: Stamps | None = None) -> None:
        self.namespace = namespace
        self.stamps = stamps
        self._pending = threading.local()

    def _key(self, query: str, params: Mapping[str, Any]) -> str:
        tables = tables_named(query)
        versions = self._versions(tables)
        written = self.stamps(tables) if self.stamps is not None else []
        material = repr((query, sorted((k, repr(v)) for k, v in params.items()), versions, written))
        digest = hashlib.sha256(material.encode("utf-8")).hexdigest()
        return f"wb:cache:{self.namespace}:q:{digest}"

    @staticmethod
    def _call(query: str, params: Mapping[str, Any]) -> str:
        return repr((query, sorted((k, repr(v)) for k, v in params.items())))

    def get(self, query: str, params: Mapping[str, Any]) -> pd.DataFrame | None:
        """The cached result, or ``None``; a following :meth:`put` of the same query in this
        thread stores under the key read here, before the query ran."""
        self._pending.call = None
        try:
            key = self._key(query, params)
            self._pending.call = (self._call(query, params), key)
            payload = self._load(key)
        except Exception as exc:  # a cache must never fail the query
            log.warning("query cache unavailable, reading from the database: %s", exc)
            return None
        return None if payload is None else _deserialize(payload)

    def put(self, query: str, params: Mapping[str, Any], df: pd.DataFrame, seconds: float) -> None:
        pending = getattr(self._pending, "call", None)
        self._pending.call = None
        if pending is None or pending[0] != self._call(query, params):
            return  # no stamps read before the query ran: storing could keep stale data
        payload = _serialize(df)
        if payload is None:
            return
        try:
            self._store(pending[1], payload, seconds)
        except Exception as exc:
            log.warning("query cache unavailable, result not cached: %s", exc)

    def invalidate(self, table: str) -> None:
        """Forget every cached result of a query that names ``table``."""
        try:
            self._bump(table.lower())
        except Exception as exc:
            log.warning("query cache unavailable, could not drop results for %s: %s", table, exc)

    def _versions(self, tables: list[str]) -> list[str]:
        raise NotImplementedError

    def _load(self, key: str) -> bytes | None:
        raise NotImplementedError

    def _store(self, key: str, payload: bytes, seconds: float) -> None:
        raise NotImplementedError

    def _bump(self, table: str) -> None:
        raise NotImplementedError


class MemoryCache(QueryCache):
    """This process only, at most :data:`MEMORY_ENTRIES` results (least recently used go)."""

    def __init__(self, namespace: str, stamps: Stamps | None = None) -> None:
        super().__init__(namespace, stamps)
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._table_versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def _versions(self, tables: list[str]) -> list[str]:
        with self._lock:
            return [str(self._table_versions.get(t, 0)) for t in tables]

    def _load(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def _store(self, key: str, payload: bytes, seconds: float) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + seconds, payload)
            self._entries.move_to_end(key)
            while len(self._entries) > MEMORY_ENTRIES:
                self._entries.popitem(last=False)

    def _bump(self, table: str) -> None:
        with self._lock:
            self._table_versions[table] = self._table_versions.get(table, 0) + 1


class RedisCache(QueryCache):
    """Shared by every process using the same Redis and database."""

    def __init__(self, namespace: str, url: str, stamps: Stamps | None = None) -> None:
        super().__init__(namespace, stamps)
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def _version_key(self, table: str) -> str:
        return f"wb:cache:{self.namespace}:v:{table}"

    def _versions(self, tables: list[str]) -> list[str]:
        if not tables:
            return []
        values = self._client.mget([self._version_key(t) for t in tables])
        return [v.decode() if isinstance(v, bytes) else "0" for v in values]

    def _load(self, key: str) -> bytes | None:
        value = self._client.get(key)
        return value if isinstance(value, bytes) else None

    def _store(self, key: str, payload: bytes, seconds: float) -> None:
        self._client.set(key, payload, px=max(1, int(seconds * 1000)))

    def _bump(self, table: str) -> None:
        self._client.incr(self._version_key(table))

    def close(self) -> None:
        self._client.close()


def warm_up(redis_url: str | None) -> None:
    """Import what a first cache lookup would (the Redis client, Arrow's stream reader), so a
    process that knows it will query soon, like a pre-heated dashboard kernel, pays it now."""
    if redis_url:
        import redis  # noqa: F401
    payload = _serialize(pd.DataFrame({"x": [1]}))
    if payload is not None:
        _deserialize(payload)


_caches: weakref.WeakKeyDictionary[Database, QueryCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_namespace(database_url: str) -> str:
    """The part of every cache key that names the database and its login (the URL without
    its password), so two logins, and so two users, never share an entry."""
    return hashlib.sha256(mask_url(database_url).encode("utf-8")).hexdigest()[:16]


def cache_for(workbench: Database, freshness: Engine | None = None) -> QueryCache:
    """The workbench's cache: Redis if ``WORKBENCH_REDIS_URL`` is set, else in-process.

    Entries are per database login (:func:`cache_namespace`), so users never share results.
    ``freshness`` reads the tables' last writes (default: the workbench's own engine). A login
    that row-level security keeps from some ``datasets`` rows, like a dashboard viewer's,
    passes an engine that sees them all (the service's); once given, it is kept for every
    later call on this workbench, ``wb.sql``'s included.
    """
    with _caches_lock:
        cache = _caches.get(workbench)
        if cache is None:
            namespace = cache_namespace(workbench.database_url)
            redis_url = workbench.settings.effective_redis_url()
            stamps = last_writes(freshness if freshness is not None else workbench.engine)
            cache = (
                RedisCache(namespace, redis_url, stamps)
                if redis_url
                else MemoryCache(namespace, stamps)
            )
            _caches[workbench] = cache
        elif freshness is not None:
            cache.stamps = last_writes(freshness)
        return cache

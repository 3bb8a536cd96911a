"""The opt-in query cache behind ``wb.sql(..., cache=seconds)``.

Redis when ``WORKBENCH_REDIS_URL`` is set (shared by every process), otherwise a small
in-process cache. An entry's key covers the database, the query, its parameters and the
current *write version* of every table the query names; ``wb.write`` bumps the version of the
table it wrote, so results that read it are never served again and simply expire. Tables
changed by other means (SQL statements, other tools) are not tracked: keep the TTL short.
A failing cache never fails a query: it is logged and skipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from workbench.config import mask_url

if TYPE_CHECKING:
    from workbench.api import Workbench

__all__ = ["MemoryCache", "QueryCache", "RedisCache", "cache_for", "tables_named"]

log = logging.getLogger(__name__)

_WORD = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)')
MEMORY_ENTRIES = 128


def tables_named(query: str) -> list[str]:
    """Every identifier in ``query`` (lower-cased unless quoted): a superset of its tables."""
    names = {q.replace('""', '"') if q else w.lower() for q, w in _WORD.findall(query)}
    return sorted(names)


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
    """Looks up and stores query results; subclasses hold the storage."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _key(self, query: str, params: Mapping[str, Any]) -> str:
        tables = tables_named(query)
        versions = self._versions(tables)
        material = repr((query, sorted((k, repr(v)) for k, v in params.items()), versions))
        digest = hashlib.sha256(material.encode("utf-8")).hexdigest()
        return f"wb:cache:{self.namespace}:q:{digest}"

    def get(self, query: str, params: Mapping[str, Any]) -> pd.DataFrame | None:
        try:
            payload = self._load(self._key(query, params))
        except Exception as exc:  # a cache must never fail the query
            log.warning("query cache unavailable, reading from the database: %s", exc)
            return None
        return None if payload is None else _deserialize(payload)

    def put(self, query: str, params: Mapping[str, Any], df: pd.DataFrame, seconds: float) -> None:
        payload = _serialize(df)
        if payload is None:
            return
        try:
            self._store(self._key(query, params), payload, seconds)
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

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
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

    def __init__(self, namespace: str, url: str) -> None:
        super().__init__(namespace)
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


_caches: weakref.WeakKeyDictionary[Workbench, QueryCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(workbench: Workbench) -> QueryCache:
    """The workbench's cache: Redis if ``WORKBENCH_REDIS_URL`` is set, else in-process."""
    with _caches_lock:
        cache = _caches.get(workbench)
        if cache is None:
            database = mask_url(workbench.database_url)
            namespace = hashlib.sha256(database.encode("utf-8")).hexdigest()[:16]
            redis_url = workbench.settings.effective_redis_url()
            cache = RedisCache(namespace, redis_url) if redis_url else MemoryCache(namespace)
            _caches[workbench] = cache
        return cache

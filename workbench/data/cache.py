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

Redis is shared, and anyone holding its URL can read every key, so each entry is encrypted and
authenticated (AES-GCM, the entry's key name as associated data) with a key of the login's own
(:func:`login_cache_key`): derived by the service from the secret key and handed to the process
holding that login (a dashboard kernel receives it with its viewer). Another login's entries
are noise to it, and an entry it forged or moved is refused as a miss. A process without a
cache key uses an in-process cache only. On PostgreSQL the stamps are read through
``wb_private.last_writes`` when the database has it (stamps of every table the login may read,
its ``datasets`` row visible or not), else from the ``datasets`` rows the login sees.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
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
from workbench.core.crypto import hkdf_key

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from workbench.db.handle import Database

__all__ = [
    "CACHE_KEY_ENV",
    "MemoryCache",
    "QueryCache",
    "RedisCache",
    "Stamps",
    "cache_for",
    "cache_namespace",
    "decode_key",
    "encode_key",
    "last_writes",
    "login_cache_key",
    "tables_named",
    "warm_up",
]

log = logging.getLogger(__name__)

#: Where a process that holds a login but not the secret key (a run's kernel) may find the
#: login's cache key (:func:`encode_key`), when the service handed it one.
CACHE_KEY_ENV = "WORKBENCH_QUERY_CACHE_KEY"
_NONCE_BYTES = 12

_WORD = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)')
MEMORY_ENTRIES = 128


def tables_named(query: str) -> list[str]:
    """Every identifier in ``query`` (lower-cased unless quoted): a superset of its tables."""
    names = {q.replace('""', '"') if q else w.lower() for q, w in _WORD.findall(query)}
    return sorted(names)


#: Reads the last-write stamps of the named tables (one string per name, "" if unknown).
Stamps = Callable[[Sequence[str]], list[str]]


#: Reads stamps through the login's own rights (see the module's docstring): an opaque digest
#: of each readable table's last write. Added to the database by migration 0006.
LAST_WRITES_FUNCTION = "wb_private.last_writes(text[])"


def last_writes(engine: Engine) -> Stamps:
    """Stamps from ``engine``'s database: when, how and how many rows each table was last
    written with ``wb.write`` (names that are not tables, or not readable, stay "").

    On PostgreSQL with ``wb_private.last_writes`` the stamps of every table the login may read
    (a viewer's login cannot see another team's ``datasets`` row, though it reads some of that
    table's rows); otherwise the ``datasets`` rows the login sees.
    """
    from sqlalchemy import bindparam, text

    plain = text(
        "SELECT name, last_write_at, last_write_mode, last_write_rows FROM datasets "
        "WHERE name IN :names"
    ).bindparams(bindparam("names", expanding=True))
    through_function = text("SELECT name, stamp FROM wb_private.last_writes(:names)")
    probe = text(
        "SELECT to_regprocedure(:fn) IS NOT NULL "
        "AND has_function_privilege(to_regprocedure(:fn), 'EXECUTE')"
    )
    use_function: list[bool] = []

    def read(names: Sequence[str]) -> list[str]:
        if not names:
            return []
        with engine.connect() as connection:
            if not use_function:
                postgres = connection.dialect.name == "postgresql"
                found_fn = postgres and bool(
                    connection.execute(probe, {"fn": LAST_WRITES_FUNCTION}).scalar()
                )
                use_function.append(found_fn)
            if use_function[0]:
                rows = connection.execute(through_function, {"names": list(names)}).all()
                found = {row[0]: str(row[1]) for row in rows}
            else:
                rows = connection.execute(plain, {"names": list(names)}).all()
                found = {row[0]: f"{row[1]}|{row[2]}|{row[3]}" for row in rows}
        return [found.get(name, "") for name in names]

    return read


def login_cache_key(secret_key: str, login: str) -> bytes:
    """The query-cache key of database login ``login`` (its role name; "" for SQLite),
    derived from the secret key: only the service computes it, and hands it to the process
    that holds that login."""
    return hkdf_key(secret_key, f"query-cache:{login}")


def encode_key(key: bytes) -> str:
    """A cache key as text, to hand over (see :data:`CACHE_KEY_ENV`)."""
    return base64.urlsafe_b64encode(key).decode("ascii")


def decode_key(text: str | None) -> bytes | None:
    """The key :func:`encode_key` gave as text; ``None`` for none or a malformed one."""
    if not text:
        return None
    try:
        key = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    return key if len(key) == 32 else None


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
    """Shared by every process of one login using the same Redis and database; each entry
    encrypted and authenticated with the login's cache key (AES-GCM)."""

    def __init__(self, namespace: str, url: str, key: bytes, stamps: Stamps | None = None) -> None:
        super().__init__(namespace, stamps)
        import redis
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._sealer = AESGCM(key)

    def _version_key(self, table: str) -> str:
        return f"wb:cache:{self.namespace}:v:{table}"

    def _versions(self, tables: list[str]) -> list[str]:
        if not tables:
            return []
        values = self._client.mget([self._version_key(t) for t in tables])
        return [v.decode() if isinstance(v, bytes) else "0" for v in values]

    def _load(self, key: str) -> bytes | None:
        from cryptography.exceptions import InvalidTag

        value = self._client.get(key)
        if not isinstance(value, bytes) or len(value) <= _NONCE_BYTES:
            return None
        try:
            return self._sealer.decrypt(value[:_NONCE_BYTES], value[_NONCE_BYTES:], key.encode())
        except InvalidTag:
            log.warning("query cache: an entry not sealed with this login's key was ignored")
            return None

    def _store(self, key: str, payload: bytes, seconds: float) -> None:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._sealer.encrypt(nonce, payload, key.encode())
        self._client.set(key, sealed, px=max(1, int(seconds * 1000)))

    def _bump(self, table: str) -> None:
        self._client.incr(self._version_key(table))

    def close(self) -> None:
        self._client.close()


def warm_up(redis: bool) -> None:
    """Import what a first cache lookup would (the Redis client, Arrow's stream reader), so a
    process that knows it will query soon, like a pre-heated dashboard kernel, pays it now."""
    if redis:
        import redis as _client  # noqa: F401
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401
    payload = _serialize(pd.DataFrame({"x": [1]}))
    if payload is not None:
        _deserialize(payload)


_caches: weakref.WeakKeyDictionary[Database, QueryCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_namespace(database_url: str) -> str:
    """The part of every cache key that names the database and its login (the URL without
    its password), so two logins, and so two users, never share an entry."""
    return hashlib.sha256(mask_url(database_url).encode("utf-8")).hexdigest()[:16]


def _login_of(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).username or ""


def _key_for(workbench: Database) -> bytes | None:
    """The login's cache key: derived here when this process holds the secret key (a service
    process), else the one handed over in :data:`CACHE_KEY_ENV`, else none."""
    secret, _ = workbench.settings.effective_secret_key()
    if secret:
        return login_cache_key(secret, _login_of(workbench.database_url))
    return decode_key(os.environ.get(CACHE_KEY_ENV))


def cache_for(
    workbench: Database, freshness: Engine | None = None, *, key: bytes | None = None
) -> QueryCache:
    """The workbench's cache: Redis if ``WORKBENCH_REDIS_URL`` is set and the process has the
    login's cache key (``key``, as handed over; else see :func:`_key_for`), else in-process.

    Entries are per database login (:func:`cache_namespace`) and sealed with that login's key,
    so users never share or read each other's results. ``freshness`` reads the tables' last
    writes (default: the workbench's own engine, under the login's own rights); once given, it
    is kept for every later call on this workbench, ``wb.sql``'s included. The first call
    decides the cache's kind and key.
    """
    with _caches_lock:
        cache = _caches.get(workbench)
        if cache is None:
            namespace = cache_namespace(workbench.database_url)
            redis_url = workbench.settings.effective_redis_url()
            stamps = last_writes(freshness if freshness is not None else workbench.engine)
            sealing = key if key is not None else (_key_for(workbench) if redis_url else None)
            cache = (
                RedisCache(namespace, redis_url, sealing, stamps)
                if redis_url and sealing is not None
                else MemoryCache(namespace, stamps)
            )
            _caches[workbench] = cache
        elif freshness is not None:
            cache.stamps = last_writes(freshness)
        return cache

"""The opt-in query cache: in-process by default, Redis when configured; writes invalidate,
in this process and in any other (the tables' last writes are part of the key)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.data.cache import (
    CACHE_KEY_ENV,
    MemoryCache,
    RedisCache,
    cache_for,
    cache_namespace,
    encode_key,
    login_cache_key,
    tables_named,
)
from workbench.db.engine import create_workbench_engine


@pytest.fixture(params=["memory", "redis"])
def cached(request: pytest.FixtureRequest, db_url: str) -> Iterator[Workbench]:
    """A workbench on both databases, with each kind of cache."""
    overrides = {}
    if request.param == "redis":  # a service process: it derives its login's cache key
        overrides["redis_url"] = request.getfixturevalue("redis_url")
        overrides["secret_key"] = KEY
    wb = Workbench(load_settings(**overrides), db_url)
    wb.write(pd.DataFrame({"n": [1, 2, 3]}), "numbers")
    yield wb
    wb.close()


KEY = "k" * 48


def total(wb: Workbench, seconds: float = 60) -> int:
    return int(wb.sql("select sum(n) as s from numbers where n > :m", cache=seconds, m=0)["s"][0])


def test_cache_kind_follows_the_settings(cached: Workbench) -> None:
    expected = RedisCache if cached.settings.effective_redis_url() else MemoryCache
    assert isinstance(cache_for(cached), expected)


def test_cached_result_is_served_until_a_write(cached: Workbench) -> None:
    assert total(cached) == 6
    # A change the cache cannot see (plain SQL): the cached result is still served.
    cached.sql("insert into numbers values (10)")
    assert total(cached) == 6
    assert int(cached.sql("select sum(n) as s from numbers")["s"][0]) == 16
    # wb.write to the table drops every cached result that reads it.
    cached.write(pd.DataFrame({"n": [100]}), "numbers", mode="append")
    assert total(cached) == 116


WRITER = """
import sys
import pandas as pd
from workbench.app import Workbench
from workbench.core.config import load_settings

with Workbench(load_settings(), sys.argv[1]) as wb:
    wb.write(pd.DataFrame({"n": [int(sys.argv[2])]}), "numbers", mode="append")
"""


def write_in_another_process(db_url: str, value: int) -> None:
    """wb.write from a separate Python process, without Redis: nothing tells this process."""
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_REDIS_URL"}
    subprocess.run([sys.executable, "-c", WRITER, db_url, str(value)], check=True, env=env)


def test_a_write_in_another_process_is_seen_on_the_next_cached_read(
    cached: Workbench, db_url: str
) -> None:
    assert total(cached, seconds=300) == 6
    assert total(cached, seconds=300) == 6  # served from the cache
    write_in_another_process(db_url, 1000)
    assert total(cached, seconds=300) == 1006
    write_in_another_process(db_url, 20000)
    assert total(cached, seconds=300) == 21006


def test_a_result_is_never_stored_under_a_newer_write_than_it_read(
    cached: Workbench, db_url: str
) -> None:
    """The stamps are read before the query: a write between the two is seen next time."""
    store = cache_for(cached)
    query, params = "select sum(n) as s from numbers where n > :m", {"m": 0}
    assert store.get(query, params) is None  # the stamps are read here ...
    older = cached.sql(query, m=0)  # ... the query runs ...
    write_in_another_process(db_url, 7)  # ... another process writes ...
    store.put(query, params, older, 300)  # ... and the older result is stored
    assert total(cached, seconds=300) == 13


def test_the_freshness_engine_given_later_is_the_one_wb_sql_reads(
    cached: Workbench, db_url: str, sqlite_template: Path, tmp_path: Path
) -> None:
    """A login that cannot see every ``datasets`` row (a dashboard viewer's) has its cache read
    the last writes through another engine, even when its cache already existed."""
    assert total(cached, seconds=300) == 6  # the cache now exists, with the workbench's engine
    elsewhere = tmp_path / "elsewhere.db"
    shutil.copyfile(sqlite_template, elsewhere)  # a catalogue that never sees these writes
    blind = create_workbench_engine(cached.settings, f"sqlite:///{elsewhere}")
    try:
        cache_for(cached, blind)
        assert total(cached, seconds=300) == 6  # stored under the stamps `blind` reads
        write_in_another_process(db_url, 1000)
        assert total(cached, seconds=300) == 6  # wb.sql read the stamps through `blind`
        cache_for(cached, cached.engine)
        assert total(cached, seconds=300) == 1006
    finally:
        blind.dispose()


def test_each_login_has_a_namespace_of_its_own() -> None:
    base = "postgresql+psycopg://{}:{}@db.example/workbench"
    assert cache_namespace(base.format("wbu_ann_1", "a")) == cache_namespace(
        base.format("wbu_ann_1", "rotated")
    )
    assert cache_namespace(base.format("wbu_ann_1", "a")) != cache_namespace(
        base.format("wbu_bob_2", "a")
    )


def test_cache_entries_expire(cached: Workbench) -> None:
    assert total(cached, seconds=0.3) == 6
    cached.sql("insert into numbers values (10)")
    time.sleep(0.4)
    assert total(cached, seconds=0.3) == 16


def test_parameters_are_part_of_the_key(cached: Workbench) -> None:
    query = "select count(*) as c from numbers where n > :m"
    assert int(cached.sql(query, cache=60, m=0)["c"][0]) == 3
    assert int(cached.sql(query, cache=60, m=2)["c"][0]) == 1


def test_redis_cache_is_shared_and_invalidated_across_workbenches(
    db_url: str, redis_url: str
) -> None:
    settings = load_settings(redis_url=redis_url, secret_key=KEY)
    reader, writer = Workbench(settings, db_url), Workbench(settings, db_url)
    try:
        writer.write(pd.DataFrame({"n": [1]}), "numbers")
        assert total(reader) == 1
        writer.sql("insert into numbers values (5)")
        assert total(writer) == 1  # served from the reader's entry in Redis
        writer.write(pd.DataFrame({"n": [2]}), "numbers", mode="append")
        assert total(reader) == 8
    finally:
        reader.close()
        writer.close()


def test_a_broken_cache_never_fails_the_query(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    wb = Workbench(load_settings(redis_url="redis://127.0.0.1:1/0", secret_key=KEY), db_url)
    try:
        wb.write(pd.DataFrame({"n": [4]}), "numbers")
        assert total(wb) == 4
    finally:
        wb.close()
    assert "query cache unavailable" in caplog.text


def test_without_the_logins_key_a_process_uses_no_shared_cache(
    db_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel holds a login and the Redis URL but not the secret key: in-process only,
    unless the service handed it the login's key."""
    monkeypatch.delenv(CACHE_KEY_ENV, raising=False)
    settings = load_settings(redis_url=redis_url)
    assert settings.effective_secret_key()[0] is None
    with Workbench(settings, db_url) as keyless:
        assert isinstance(cache_for(keyless), MemoryCache)
    monkeypatch.setenv(CACHE_KEY_ENV, encode_key(login_cache_key(KEY, "")))
    with Workbench(settings, db_url) as handed:
        assert isinstance(cache_for(handed), RedisCache)


def test_redis_entries_are_sealed_with_the_logins_key(db_url: str, redis_url: str) -> None:
    """Anyone with the Redis URL reads every key: what they read is ciphertext, and an entry
    sealed under another login's key, or forged, is a miss."""
    import redis

    settings = load_settings(redis_url=redis_url, secret_key=KEY)
    with Workbench(settings, db_url) as wb:
        wb.write(pd.DataFrame({"secret_word": ["plaintext-marker"]}), "words")
        query = "select secret_word from words"
        assert wb.sql(query, cache=60)["secret_word"].tolist() == ["plaintext-marker"]
        store = cache_for(wb)
        client = redis.Redis.from_url(redis_url)
        try:
            keys = client.keys(f"wb:cache:{store.namespace}:q:*")
            assert keys
            for key in keys:
                assert b"plaintext-marker" not in client.get(key)
            assert store.get(query, {}) is not None
            other = RedisCache(
                store.namespace, redis_url, login_cache_key(KEY, "someone_else"), store.stamps
            )
            assert other.get(query, {}) is None  # another login's key opens nothing
            for key in keys:  # an entry forged by whoever can write to Redis is a miss
                client.set(key, b"\x00" * 40)
            assert store.get(query, {}) is None
            other.close()
        finally:
            client.close()


def test_tables_named_finds_plain_and_quoted_names() -> None:
    names = tables_named('select * from Sales s join "Odd" o on s.id = o.id')
    assert {"sales", "Odd", "s", "o", "id"} <= set(names)

"""Another SQLite writer, for tests of what waits for SQLite's write lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def another_writer(url: str, seconds: float = 0.5) -> Iterator[None]:
    """Another connection holds the write lock (and commits a write) for ``seconds``."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        other = sqlite3.connect(url.removeprefix("sqlite+pysqlite:///"), timeout=10)
        other.isolation_level = None
        other.execute("BEGIN IMMEDIATE")
        other.execute("CREATE TABLE IF NOT EXISTS elsewhere (n INTEGER)")
        other.execute("INSERT INTO elsewhere VALUES (1)")
        locked.set()
        release.wait(10)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        threading.Timer(seconds, release.set).start()
        yield
    finally:
        release.set()
        holder.join()

"""The sql source pulls from another, real database: a separate SQLite file and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from tests import services
from workbench.sources.errors import SourceError, SourceOptionError
from workbench.sources.ingest import to_pandas
from workbench.sources.sql import SqlSource

ROWS = [(1, "UA", 12, "2013-01-01"), (2, "AA", None, "2013-01-02"), (3, "DL", -4, "2013-01-03")]


def _read(**options: object) -> pd.DataFrame:
    return to_pandas(SqlSource().read(**options))


@pytest.fixture
def sqlite_file(tmp_path: Path) -> str:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE legs (id INTEGER, carrier TEXT, delay INTEGER, day TEXT)")
        conn.executemany("INSERT INTO legs VALUES (?, ?, ?, ?)", ROWS)
    conn.close()
    return f"sqlite:///{path}"


@pytest.fixture
def other_postgres(postgres_available: None) -> Iterator[str]:
    with services.temporary_database() as name:
        with services.admin_connect(name) as conn:
            conn.execute(
                "CREATE TABLE legs (id int, carrier text, delay int, day date, "
                "at timestamptz DEFAULT '2013-01-01 05:15-05')"
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO legs (id, carrier, delay, day) VALUES (%s, %s, %s, %s)", ROWS
                )
        yield services.sqlalchemy_url(name).replace("postgresql+psycopg://", "postgresql://")


def test_query_a_separate_sqlite_file(sqlite_file: str) -> None:
    frame = _read(url=sqlite_file, query="SELECT * FROM legs WHERE id >= :low", params={"low": 2})
    assert frame["carrier"].tolist() == ["AA", "DL"]
    assert str(frame["delay"].dtype) == "Int64"
    assert frame["delay"].isna().tolist() == [True, False]


def test_query_a_separate_postgres_database_in_batches(other_postgres: str) -> None:
    batches = list(
        SqlSource().read(url=other_postgres, query="SELECT * FROM legs ORDER BY id", batch_size=2)
    )
    assert [len(b) for b in batches] == [2, 1]
    frame = to_pandas(batches)
    assert frame["id"].tolist() == [1, 2, 3]
    assert frame["delay"].isna().tolist() == [False, True, False]
    assert str(frame["at"].dt.tz) == "UTC"
    assert frame["at"].iloc[0] == pd.Timestamp("2013-01-01 10:15", tz="UTC")


def test_query_errors_name_the_database_without_its_password(other_postgres: str) -> None:
    url = other_postgres.replace("postgres@", "postgres:pa55word-xyz@")
    with pytest.raises(SourceError) as error:
        _read(url=url, query="SELECT * FROM no_such_table")
    message = str(error.value)
    assert "no_such_table" in message
    assert "***" in message
    assert "pa55word-xyz" not in message


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such SQLite database file"):
        _read(url=f"sqlite:///{tmp_path / 'nope.db'}", query="SELECT 1")
    assert not (tmp_path / "nope.db").exists()


def test_bad_urls() -> None:
    with pytest.raises(SourceOptionError, match="not a database URL"):
        _read(url="not a url", query="SELECT 1")
    with pytest.raises(SourceOptionError, match="no driver"):
        _read(url="nosuchdb://host/db", query="SELECT 1")


def test_psycopg_is_the_driver(other_postgres: str) -> None:
    # postgresql:// URLs are read with psycopg 3 (the driver Workbench ships), not psycopg2.
    assert psycopg.__version__
    assert _read(url=other_postgres, query="SELECT count(*) AS n FROM legs")["n"].tolist() == [3]


def test_a_batch_of_only_nulls_takes_the_type_of_the_others(tmp_path: Path) -> None:
    path = tmp_path / "gaps.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (n INTEGER, x REAL, s TEXT)")
        rows = [(None, None, None)] * 2 + [(1, 1.5, "a"), (2, None, "b")]
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    conn.close()
    frame = _read(url=f"sqlite:///{path}", query="SELECT * FROM t", batch_size=2)
    assert str(frame["n"].dtype) == "Int64"
    assert str(frame["x"].dtype) == "Float64"
    assert isinstance(frame["s"].dtype, pd.StringDtype)
    assert frame["n"].tolist()[2:] == [1, 2]

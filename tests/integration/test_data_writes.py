"""wb.write modes and their all-or-nothing guarantee, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from tests.sqlite_helpers import another_writer
from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.data.errors import DataError, TableNotFoundError
from workbench.db.errors import IdentifierError
from workbench.db.models import Dataset


def frame(n: int, start: int = 0) -> pd.DataFrame:
    ids = np.arange(start, start + n, dtype="int64")
    return pd.DataFrame({"id": ids, "x": ids * 0.5, "label": [f"r{i}" for i in ids]})


def test_create_refuses_an_existing_table(workbench: Workbench) -> None:
    assert workbench.write(frame(3), "t") == 3
    with pytest.raises(
        DataError, match=r"'t' already exists.*mode append, replace or upsert.*--mode"
    ):
        workbench.write(frame(3), "t")


def test_append_adds_rows_and_records_the_write(workbench: Workbench) -> None:
    workbench.write(frame(3), "t")
    workbench.write(frame(2, start=3), "t", mode="append")
    back = workbench.read_table("t")
    pd.testing.assert_frame_equal(back, frame(5))
    with workbench.session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == "t"))
    assert dataset is not None
    assert (dataset.last_write_mode, dataset.last_write_rows) == ("append", 2)
    assert dataset.last_write_at is not None
    assert set(dataset.columns["specs"]) == {"id", "x", "label"}


def test_append_with_new_columns_needs_add_columns(workbench: Workbench) -> None:
    workbench.write(frame(2), "t")
    wider = frame(2, start=2).assign(extra=pd.array([1, None], dtype="Int64"))
    with pytest.raises(DataError, match=r"'t' has no column\(s\) 'extra'.*add_columns=True"):
        workbench.write(wider, "t", mode="append")
    workbench.write(wider, "t", mode="append", add_columns=True)
    back = workbench.read_table("t")
    assert back["extra"].dtype == "Int64"
    assert back["extra"].isna().tolist() == [True, True, False, True]


def test_append_with_fewer_columns_fills_nulls(workbench: Workbench) -> None:
    workbench.write(frame(2), "t")
    workbench.write(frame(1, start=2)[["id"]], "t", mode="append")
    back = workbench.read_table("t")
    assert back["label"].isna().tolist() == [False, False, True]
    assert back["id"].tolist() == [0, 1, 2]


def test_replace_swaps_the_table(workbench: Workbench) -> None:
    workbench.write(frame(5), "t")
    other = pd.DataFrame({"name": ["a", "b"]})
    workbench.write(other, "t", mode="replace")
    pd.testing.assert_frame_equal(workbench.read_table("t"), other)
    leftovers = [n for n in workbench.tables()["name"] if n.startswith("_wb")]
    assert leftovers == []


def test_upsert_updates_and_inserts_by_key(workbench: Workbench) -> None:
    workbench.write(frame(3), "t", key="id")
    change = pd.DataFrame({"id": [1, 7], "x": [100.0, 7.0], "label": ["changed", "new"]})
    workbench.write(change, "t", mode="upsert", key="id")
    back = workbench.read_table("t").sort_values("id", ignore_index=True)
    assert back["id"].tolist() == [0, 1, 2, 7]
    assert back["label"].tolist() == ["r0", "changed", "r2", "new"]
    assert back["x"].tolist() == [0.0, 100.0, 1.0, 7.0]


def test_upsert_needs_a_key_and_unique_rows(workbench: Workbench) -> None:
    workbench.write(frame(3), "t")
    with pytest.raises(DataError, match="needs key="):
        workbench.write(frame(1), "t", mode="upsert")
    twice = pd.concat([frame(2), frame(1)], ignore_index=True)
    with pytest.raises(DataError, match=r"'t', key id: row 2 repeats"):
        workbench.write(twice, "t", mode="upsert", key="id")
    assert len(workbench.read_table("t")) == 3


def test_type_mismatch_names_table_column_and_problem(workbench: Workbench) -> None:
    workbench.write(frame(3), "t")
    bad = frame(2, start=3).assign(x=["a", "b"])
    with pytest.raises(DataError, match=r"'t', column 'x': the table holds float .* str"):
        workbench.write(bad, "t", mode="append")
    pd.testing.assert_frame_equal(workbench.read_table("t"), frame(3))


def test_bad_value_at_row_200000_changes_nothing(workbench: Workbench) -> None:
    workbench.write(frame(10), "t")
    big = frame(250_000, start=10)
    values = big["id"].astype(object)
    values.iloc[200_000] = "oops"
    big["id"] = values
    with pytest.raises(DataError, match=r"'t', column 'id': row 200000 holds 'oops'"):
        workbench.write(big, "t", mode="append")
    with pytest.raises(DataError, match=r"'t', column 'id': row 200000 holds 'oops'"):
        workbench.write(big, "t", mode="replace")
    pd.testing.assert_frame_equal(workbench.read_table("t"), frame(10))


def test_database_refusal_mid_write_rolls_everything_back(workbench: Workbench) -> None:
    workbench.write(frame(10), "t")
    if workbench.engine.dialect.name == "postgresql":
        workbench.sql("alter table t add constraint x_positive check (x >= 0)")
    else:
        workbench.sql(
            "create trigger x_positive before insert on t when new.x < 0 "
            "begin select raise(abort, 'x_positive: x must be >= 0'); end"
        )
    big = frame(250_000, start=10)
    big.loc[200_000, "x"] = -1.0
    with pytest.raises(DataError, match=r"'t'.*x_positive.*nothing was changed"):
        workbench.write(big, "t", mode="append")
    pd.testing.assert_frame_equal(workbench.read_table("t"), frame(10))
    with workbench.session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == "t"))
    assert dataset is not None
    assert dataset.last_write_mode == "create"


KILLED_WRITER = """
import sys, numpy as np, pandas as pd
from workbench.app import Workbench
from workbench.core.config import load_settings
n = 4_000_000
ids = np.arange(n, dtype="int64")
df = pd.DataFrame({"id": ids, "x": ids * 0.5, "label": np.full(n, "some text here", dtype=object)})
wb = Workbench(load_settings(), sys.argv[1])
print("writing", flush=True)
wb.write(df, "t", mode=sys.argv[2])
print("done", flush=True)
"""


def _writing(wb: Workbench, tmp: Path) -> bool:
    """True once the child's write is inside its transaction, sending rows."""
    if wb.engine.dialect.name == "postgresql":
        found = wb.sql(
            "select count(*) as n from pg_stat_activity "
            "where query ilike 'copy%' and datname = current_database()"
        )
        return int(found["n"].iloc[0]) > 0
    wal = Path(str(wb.engine.url.database) + "-wal")
    return wal.exists() and wal.stat().st_size > 20_000_000


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_killed_writer_leaves_the_table_as_it_was(
    workbench: Workbench, mode: str, tmp_path: Path
) -> None:
    workbench.write(frame(10), "t")
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    with subprocess.Popen(
        [sys.executable, str(script), workbench.database_url, mode],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "writing"
            deadline = time.monotonic() + 60
            while not _writing(workbench, tmp_path):
                assert child.poll() is None, "the writer finished before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            child.kill()
            child.wait(timeout=30)
    assert child.returncode != 0
    pd.testing.assert_frame_equal(workbench.read_table("t"), frame(10))


@pytest.mark.parametrize(
    "name", ["x; drop table users", "users", "runs", "alembic_version", "Upper", "a b", ""]
)
def test_unsafe_or_reserved_table_names_are_refused(workbench: Workbench, name: str) -> None:
    with pytest.raises(IdentifierError, match=r"table name|Workbench's own tables"):
        workbench.write(frame(1), name)
    assert "users" not in workbench.tables()["name"].tolist()
    assert workbench.sql("select count(*) as n from users")["n"].iloc[0] >= 0


def test_unsafe_column_names_are_refused(workbench: Workbench) -> None:
    df = pd.DataFrame({'a"; drop table users; --': [1]})
    with pytest.raises(IdentifierError, match=r"Table 't': column .* not a valid column name"):
        workbench.write(df, "t")


def test_missing_table(workbench: Workbench) -> None:
    with pytest.raises(TableNotFoundError, match="'nope' does not exist"):
        workbench.read_table("nope")
    with pytest.raises(TableNotFoundError, match="'nope' does not exist"):
        workbench.describe("nope")


def test_every_mode_round_trips_and_leaves_nothing_unprotected(workbench: Workbench) -> None:
    """The frame read back is the frame written (no team column in team mode), and on
    PostgreSQL every table a write leaves is under forced row-level security."""
    from workbench.db import rls

    def check(expected: pd.DataFrame) -> None:
        back = workbench.read_table("t").sort_values("id", ignore_index=True)
        pd.testing.assert_frame_equal(back, expected)
        assert [c.name for c in workbench.describe("t").columns] == ["id", "x", "label"]
        if workbench.engine.dialect.name == "postgresql":
            with workbench.engine.connect() as conn:
                assert rls.unprotected_relations(conn) == []

    workbench.write(frame(3), "t", key="id")
    check(frame(3))
    workbench.write(frame(2, start=3), "t", mode="append")
    check(frame(5))
    changed = frame(2, start=4).assign(x=[7.0, 8.0])
    workbench.write(changed, "t", mode="upsert", key="id")
    check(pd.concat([frame(4), changed], ignore_index=True))
    workbench.write(frame(2, start=50), "t", mode="replace")
    check(frame(2, start=50))


def test_a_sqlite_write_waits_for_another_writer_instead_of_failing(
    settings: Settings, sqlite_url: str
) -> None:
    """A write that starts while another connection holds SQLite's write lock waits for it.

    Under WAL a transaction that read first (the write looks up the table's columns) could
    not take the lock once the other writer committed, and failed with "database is locked"
    at once, whatever the busy timeout; the scheduler's heartbeats made that happen to runs.
    """
    bench = Workbench(settings, sqlite_url)
    try:
        with another_writer(sqlite_url):
            for table in ("t", "u"):
                assert bench.write(frame(3), table) == 3
        pd.testing.assert_frame_equal(bench.read_table("t"), frame(3))
    finally:
        bench.close()

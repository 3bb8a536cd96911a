"""wb.ingest on both databases: files, sql and plugin sources, all or nothing, and the CLI."""

from __future__ import annotations

import sqlite3
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.cli import run_cli
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.data.errors import DataError
from workbench.plugins.hookspecs import hookimpl
from workbench.plugins.manager import Plugins
from workbench.sources.base import Batch
from workbench.sources.errors import SourceError, SourceOptionError, UnknownSourceError
from workbench.sources.ingest import ingest


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def sales(tmp_path: Path) -> Path:
    folder = tmp_path / "sales"
    folder.mkdir()
    _csv(folder / "sales_01.csv", ["id,region,amount,note", "1,north,10.5,", "2,south,,ok"])
    _csv(folder / "sales_02.csv", ["id,region,amount,note", "3,east,7.25,Zürich ✓"])
    return folder


def test_files_glob_into_one_table(workbench: Workbench, sales: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    result = ingest(
        "files",
        "sales",
        workbench=workbench,
        path=str(sales / "*.csv"),
        progress=lambda rows, total: seen.append((rows, total)),
    )
    assert result.tables == {"sales": 3}
    assert seen == [(2, None), (3, None)]
    back = workbench.sql("SELECT * FROM sales ORDER BY id")
    assert back["id"].tolist() == [1, 2, 3]
    assert back["amount"].isna().tolist() == [False, True, False]
    assert back["note"].tolist()[2] == "Zürich ✓"
    assert str(workbench.read_table("sales")["id"].dtype) == "Int64"  # as the reader made it


def test_modes_append_replace_upsert(workbench: Workbench, sales: Path) -> None:
    first = str(sales / "sales_01.csv")
    ingest("files", "sales", workbench=workbench, path=first)
    ingest("files", "sales", mode="append", workbench=workbench, path=str(sales / "sales_02.csv"))
    assert workbench.sql("SELECT count(*) AS n FROM sales")["n"].iloc[0] == 3
    ingest("files", "sales", mode="replace", workbench=workbench, path=first)
    assert workbench.sql("SELECT count(*) AS n FROM sales")["n"].iloc[0] == 2
    _csv(sales / "update.csv", ["id,region,amount,note", "2,south,99.0,fixed", "4,west,1.0,new"])
    ingest(
        "files",
        "sales",
        mode="upsert",
        key="id",
        workbench=workbench,
        path=str(sales / "update.csv"),
    )
    back = workbench.sql("SELECT id, amount FROM sales ORDER BY id")
    assert back.to_dict("list") == {"id": [1, 2, 4], "amount": [10.5, 99.0, 1.0]}


def test_a_bad_file_leaves_the_table_as_it_was(workbench: Workbench, sales: Path) -> None:
    ingest("files", "sales", workbench=workbench, path=str(sales / "*.csv"))
    before = workbench.sql("SELECT * FROM sales ORDER BY id")
    _csv(sales / "sales_03.csv", ["id,region,amount,note", "4,west,1,", "5,west,2,x,extra"])
    with pytest.raises(SourceError, match=r"sales_03\.csv, line 3: Expected 4 columns, got 5"):
        ingest("files", "sales", mode="replace", workbench=workbench, path=str(sales / "*.csv"))
    with pytest.raises(SourceError, match=r"sales_03\.csv, line 3"):
        ingest("files", "sales", mode="append", workbench=workbench, path=str(sales / "*.csv"))
    pd.testing.assert_frame_equal(workbench.sql("SELECT * FROM sales ORDER BY id"), before)


def test_a_failing_write_leaves_the_table_as_it_was(workbench: Workbench, sales: Path) -> None:
    ingest("files", "sales", workbench=workbench, path=str(sales / "sales_01.csv"))
    with pytest.raises(DataError, match="already exists"):
        ingest("files", "sales", workbench=workbench, path=str(sales / "sales_02.csv"))
    # A value the table's column cannot hold fails the one write, so nothing is appended.
    _csv(sales / "bad_type.csv", ["id,region,amount,note", "9,x,1.0,", "oops,y,2.0,"])
    with pytest.raises(DataError):
        ingest(
            "files", "sales", mode="append", workbench=workbench, path=str(sales / "bad_type.csv")
        )
    assert workbench.sql("SELECT id FROM sales ORDER BY id")["id"].tolist() == [1, 2]


def test_sql_source_copies_a_separate_sqlite_database(workbench: Workbench, tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT, total REAL, shipped INT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [(i, f"c{i % 7}", i * 1.5, None if i % 3 else 1) for i in range(1, 1001)],
        )
    conn.close()
    result = ingest(
        "sql",
        "orders",
        workbench=workbench,
        url=f"sqlite:///{path}",
        query="SELECT * FROM orders WHERE total > :minimum",
        params={"minimum": 3},
        batch_size=300,
    )
    assert result.tables == {"orders": 998}
    back = workbench.sql("SELECT * FROM orders ORDER BY id")
    assert back["id"].iloc[0] == 3
    assert back["shipped"].isna().sum() == sum(1 for i in range(3, 1001) if i % 3)
    assert str(workbench.read_table("orders")["shipped"].dtype) == "Int64"


def test_unknown_source_and_table_name_are_refused_before_reading(workbench: Workbench) -> None:
    with pytest.raises(UnknownSourceError, match=r"'ftp'.*files, flights, http, pdf, sql"):
        ingest("ftp", "x", workbench=workbench)
    with pytest.raises(Exception, match="not a valid table name"):
        ingest("files", "x; drop table users", workbench=workbench, path="nothing.csv")
    with pytest.raises(SourceOptionError, match="Field required"):
        ingest("files", "x", workbench=workbench)


class _Counter:
    """A third-party source: numbers in batches, one of them for a second table."""

    name = "counter"
    description = "Counts."

    def read(self, **options: Any) -> Any:
        n = int(options.get("n", 3))
        yield pd.DataFrame({"i": range(n)})
        yield pd.DataFrame({"i": range(n, 2 * n)})
        if options.get("fail"):
            raise RuntimeError("upstream went away")


def test_a_plugin_source_is_used_like_a_builtin(db_url: str, settings: Any) -> None:
    plugin = types.ModuleType("counter_plugin")
    plugin.register_sources = hookimpl(lambda: [_Counter()])  # type: ignore[attr-defined]
    plugins = Plugins(load_settings())
    plugins._register(plugin, "counter", "1.0", builtin=False)
    wb = Workbench(settings, db_url, plugins=plugins)
    try:
        assert ingest("counter", "numbers", workbench=wb, n=4).tables == {"numbers": 8}
        with pytest.raises(SourceError, match="'counter' source failed: RuntimeError: upstream"):
            ingest("counter", "numbers", mode="replace", workbench=wb, fail=True)
        assert wb.sql("SELECT count(*) AS n FROM numbers")["n"].iloc[0] == 8
    finally:
        wb.close()


class _TwoTables:
    name = "two"
    description = "Two tables."

    def read(self, **options: Any) -> Any:
        yield Batch(pd.DataFrame({"a": [1]}), "first_t")
        yield Batch(pd.DataFrame({"b": [2]}), "second_t")


def test_several_tables_are_checked_before_any_is_written(workbench: Workbench) -> None:
    workbench.write(pd.DataFrame({"b": [0]}), "second_t")
    with pytest.raises(DataError, match="second_t already exist; nothing was written"):
        ingest(_TwoTables(), workbench=workbench)
    assert "first_t" not in set(workbench.tables()["name"])
    with pytest.raises(SourceError, match="filled 2 tables"):
        ingest(_TwoTables(), "one", workbench=workbench)
    assert ingest(_TwoTables(), mode="replace", workbench=workbench).tables == {
        "first_t": 1,
        "second_t": 1,
    }


def test_cli_ingest(db_url: str, sales: Path) -> None:
    env = {"WORKBENCH_DATABASE_URL": db_url}
    ok = run_cli("ingest", "files", "--table", "sales", "-o", f"path={sales / '*.csv'}", env=env)
    assert ok.code == 0, ok.output
    assert "sales: 3 rows (create)" in ok.stdout
    again = run_cli("ingest", "files", "-t", "sales", "-o", f"path={sales / '*.csv'}", env=env)
    assert again.code != 0
    assert "already exists" in again.stderr and "--mode" in again.stderr
    assert "mode='" not in again.stderr  # the command line's spelling, not Python's
    assert "Traceback" not in again.output
    replaced = run_cli(
        "ingest", "files", "-t", "sales", "--mode", "replace", "-o", f"path={sales / '*.csv'}",
        env=env,
    )  # fmt: skip
    assert replaced.code == 0 and "sales: 3 rows (replace)" in replaced.stdout, replaced.output
    bad = run_cli("ingest", "files", "-t", "other", "-o", "colour=red", env=env)
    assert bad.code == 2
    assert "colour: unknown option" in bad.stderr
    wb = Workbench(load_settings(), db_url)
    try:
        assert wb.sql("SELECT count(*) AS n FROM sales")["n"].iloc[0] == 3
    finally:
        wb.close()


def test_cli_lists_sources() -> None:
    listing = run_cli("sources")
    assert listing.code == 0, listing.output
    for name in ("files", "sql", "http", "pdf", "flights"):
        assert f"│ {name} " in listing.stdout


def test_module_level_ingest_uses_the_default_workbench(
    sqlite_url: str, sales: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench as wb

    monkeypatch.setenv("WORKBENCH_DATABASE_URL", sqlite_url)
    wb.close()
    try:
        result = wb.ingest("files", table="sales", path=str(sales / "*.csv"))
        assert result.rows == 3
        assert len(wb.read_table("sales")) == 3
    finally:
        wb.close()


def test_the_progress_bar_counts_the_write_in_a_terminal_and_leaves_nothing_in_a_pipe(
    sqlite_url: str, sales: Path
) -> None:
    """In a terminal the bar ends at the rows written of the rows read ("written 3/3"); in a
    pipe nothing of it reaches stderr."""
    import os
    import pty
    import subprocess
    import sys

    env = {**os.environ, "WORKBENCH_DATABASE_URL": sqlite_url, "COLUMNS": "120"}
    args = [sys.executable, "-m", "workbench", "ingest", "files", "-t", "sales"]
    args += ["-o", f"path={sales / '*.csv'}"]
    leader, follower = pty.openpty()
    with subprocess.Popen(args, env=env, stdin=follower, stdout=follower, stderr=follower) as p:
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        assert p.wait(timeout=120) == 0, seen
    os.close(leader)
    shown = seen.decode("utf-8", "replace")
    assert "written" in shown and "3/3" in shown, shown
    piped = run_cli(
        "ingest", "files", "-t", "sales", "--mode", "replace", "-o", f"path={sales / '*.csv'}",
        env={"WORKBENCH_DATABASE_URL": sqlite_url},
    )  # fmt: skip
    assert piped.code == 0 and piped.stderr == "", repr(piped.stderr)  # not even blank lines

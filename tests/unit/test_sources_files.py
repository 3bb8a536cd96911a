"""The files source reads real CSV, Parquet and JSON-lines files (local and fsspec)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.sources.errors import SourceError, SourceOptionError
from workbench.sources.files import FilesSource
from workbench.sources.ingest import to_pandas


def _read(**options: object) -> pd.DataFrame:
    return to_pandas(FilesSource().read(**options))


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_csv_glob_makes_one_table_in_file_order(tmp_path: Path) -> None:
    _csv(tmp_path / "flights_02.csv", ["carrier,delay", "AA,", "DL,7"])
    _csv(tmp_path / "flights_01.csv", ["carrier,delay", "UA,12", "B6,-3"])
    frame = _read(path=str(tmp_path / "flights_*.csv"), file_column="source_file")
    assert frame["carrier"].tolist() == ["UA", "B6", "AA", "DL"]
    assert str(frame["delay"].dtype) == "Int64"
    assert frame["delay"].isna().tolist() == [False, False, True, False]
    assert frame["source_file"].str.endswith("flights_01.csv").tolist() == [
        True,
        True,
        False,
        False,
    ]


def test_bad_row_names_the_file_and_line(tmp_path: Path) -> None:
    _csv(tmp_path / "flights_01.csv", ["a,b", "1,2"])
    rows = ["a,b"] + [f"{i},{i}" for i in range(1, 1233)] + ["1,2,3"]
    _csv(tmp_path / "flights_02.csv", rows)
    with pytest.raises(SourceError, match=r"flights_02\.csv, line 1234: Expected 2 columns"):
        _read(path=str(tmp_path / "flights_*.csv"))


def test_files_with_different_columns_are_refused(tmp_path: Path) -> None:
    _csv(tmp_path / "a.csv", ["x,y", "1,2"])
    _csv(tmp_path / "b.csv", ["x,z", "1,2"])
    with pytest.raises(SourceError, match=r"b\.csv: its columns"):
        _read(path=[str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])


def test_columns_in_another_order_are_aligned(tmp_path: Path) -> None:
    _csv(tmp_path / "a.csv", ["x,y", "1,2"])
    _csv(tmp_path / "b.csv", ["y,x", "4,3"])
    frame = _read(path=str(tmp_path / "*.csv"))
    assert frame.to_dict("list") == {"x": [1, 3], "y": [2, 4]}


def test_parquet_keeps_types_and_knows_its_row_count(tmp_path: Path) -> None:
    table = pa.table(
        {
            "n": pa.array([1, None, 3], pa.int32()),
            "at": pa.array([0, 1, 2], pa.timestamp("us", tz="UTC")),
            "ok": [True, None, False],
        }
    )
    pq.write_table(table.slice(0, 2), tmp_path / "part-0.parquet")
    pq.write_table(table.slice(2), tmp_path / "part-1.parquet")
    source = FilesSource()
    assert source.total_rows(path=str(tmp_path / "*.parquet")) == 3
    frame = _read(path=str(tmp_path / "*.parquet"))
    assert str(frame["n"].dtype) == "Int32"
    assert str(frame["ok"].dtype) == "boolean"
    assert str(frame["at"].dtype).startswith("datetime64") and "UTC" in str(frame["at"].dtype)
    assert frame["n"].isna().sum() == 1


def test_csv_row_count_is_not_guessed(tmp_path: Path) -> None:
    _csv(tmp_path / "a.csv", ["x", "1"])
    assert FilesSource().total_rows(path=str(tmp_path / "a.csv")) is None


def test_json_lines_and_gzip(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "name": f"n{i}", "tags": None}) for i in range(3)]
    with gzip.open(tmp_path / "events.jsonl.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    frame = _read(path=str(tmp_path / "events.jsonl.gz"))
    assert frame["id"].tolist() == [0, 1, 2]
    assert frame["name"].tolist() == ["n0", "n1", "n2"]


def test_malformed_json_line_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(SourceError, match=r"events\.jsonl: .*JSON parse error"):
        _read(path=str(tmp_path / "events.jsonl"))


def test_fsspec_url(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/wb-test/sales_1.csv", b"region,amount\nnorth,10\n")
    fs.pipe("/wb-test/sales_2.csv", b"region,amount\nsouth,20\n")
    try:
        frame = _read(path="memory://wb-test/sales_*.csv", file_column="file")
    finally:
        fs.rm("/wb-test", recursive=True)
    assert frame["amount"].tolist() == [10, 20]
    assert frame["file"].tolist() == [
        "memory:///wb-test/sales_1.csv",
        "memory:///wb-test/sales_2.csv",
    ]


def test_missing_file_and_empty_glob(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.csv: no such file"):
        _read(path=str(tmp_path / "nope.csv"))
    with pytest.raises(SourceError, match=r"\*\.parquet: no such file \(or no file matches"):
        _read(path=str(tmp_path / "*.parquet"))


def test_unknown_extension_needs_a_format(tmp_path: Path) -> None:
    _csv(tmp_path / "data.dat", ["a;b", "1;2"])
    with pytest.raises(SourceOptionError, match="pass format=csv"):
        _read(path=str(tmp_path / "data.dat"))
    frame = _read(path=str(tmp_path / "data.dat"), format="csv", delimiter=";")
    assert frame.to_dict("list") == {"a": [1], "b": [2]}


def test_options_are_validated() -> None:
    with pytest.raises(SourceOptionError, match=r"colour: unknown option.*Its options are: path"):
        _read(path="x.csv", colour="red")
    with pytest.raises(SourceOptionError, match="path: Field required"):
        _read()

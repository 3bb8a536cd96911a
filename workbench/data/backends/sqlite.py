"""SQLite through the standard library's ``sqlite3``, on the engine's own pooled connections.

Not the ADBC SQLite driver: it bundles a second copy of the SQLite library, and two copies in
one process on the same file release each other's POSIX locks, which can corrupt the database
(sqlite.org/howtocorrupt.html, 2.2.1); we measured exactly that. So rows go in with one
prepared ``executemany`` per write, built column-wise from Arrow, and come out with one
``fetchall`` turned into Arrow column by column.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any, ClassVar

import pyarrow as pa
from sqlalchemy import Engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect as SQLDialect

from workbench.data.arrow import Dialect, Spec
from workbench.data.backends.base import Backend

__all__ = ["SQLiteBackend"]

#: Declared type per kind; SQLite's affinity keeps these values as they are written.
_DECLARED = {
    "int": "INTEGER",
    "float": "REAL",
    "bool": "BOOLEAN",
    "str": "TEXT",
    "null": "TEXT",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "decimal": "TEXT",
    "bytes": "BLOB",
}
_STORAGE = {"int": pa.int64(), "bool": pa.int64(), "float": pa.float64(), "bytes": pa.binary()}


def _declared_kind(declared: str) -> str:
    """SQLite's affinity rules, as kinds, for tables Workbench did not create."""
    name = declared.upper()
    rules = [
        ("INT", "int"),
        ("BOOL", "bool"),
        ("CHAR", "str"),
        ("CLOB", "str"),
        ("TEXT", "str"),
        ("BLOB", "bytes"),
        ("REAL", "float"),
        ("FLOA", "float"),
        ("DOUB", "float"),
        ("TIME", "timestamp"),
        ("DATE", "date"),
    ]
    return next((kind for word, kind in rules if word in name), "any")


def _values(column: pa.Array) -> list[Any]:
    """Python values for binding; numpy's ``tolist`` where it is exact (and much faster)."""
    t = column.type
    if column.null_count == 0 and (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return list(column.to_numpy(zero_copy_only=False).tolist())
    if pa.types.is_floating(t):  # NaN binds as NULL in SQLite
        return list(column.to_numpy(zero_copy_only=False).tolist())
    return list(column.to_pylist())


_PYTHON_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bytes: pa.binary()}
SAMPLE_ROWS = 1000
INGEST_BATCH_ROWS = 20_000


def _guess_types(rows: list[tuple[Any, ...]], width: int) -> list[pa.DataType]:
    """Each column's Arrow type from the first rows' Python values (NULL-only: null)."""
    found: list[set[type]] = [set() for _ in range(width)]
    for row in rows[:SAMPLE_ROWS]:
        for seen, value in zip(found, row, strict=True):
            if value is not None:
                seen.add(type(value))
    types = []
    for seen in found:
        if seen == {int, float}:
            seen = {float}
        types.append(_PYTHON_TYPES.get(next(iter(seen)), pa.null()) if len(seen) == 1 else None)
    return [pa.string() if t is None else t for t in types]


def _array(values: Sequence[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column mixing types: text
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _rows_to_arrow(rows: list[tuple[Any, ...]], names: list[str]) -> pa.Table:
    """Rows to Arrow in one C++ pass (a struct array); column by column if types are mixed."""
    fields = [pa.field(f"c{i}", t) for i, t in enumerate(_guess_types(rows, len(names)))]
    try:
        struct = pa.array(rows, type=pa.struct(fields))
        return pa.Table.from_arrays(struct.flatten(), names=names)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.Table.from_arrays([_array(c) for c in columns], names=names)


class SQLiteBackend(Backend):
    """A pooled ``sqlite3`` connection of the workbench's engine, in one transaction."""

    dialect: ClassVar[Dialect] = "sqlite"
    sql_dialect: ClassVar[SQLDialect] = sqlite.dialect()
    param_style: ClassVar[str] = "qmark"
    errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)

    def __init__(self, proxy: Any, *, writing: bool = False) -> None:
        self.proxy = proxy  # returned to the pool on close
        self.sqlite: sqlite3.Connection = proxy.driver_connection
        self.cursor = proxy.driver_connection.cursor()
        self._declared: dict[str, str] = {}
        # A write reads the table's columns before it changes anything. Under WAL a deferred
        # transaction that read first cannot take the write lock once another connection has
        # committed (SQLITE_BUSY_SNAPSHOT, no busy wait), so writes take the lock up front and
        # wait their turn within the busy timeout.
        self.cursor.execute("BEGIN IMMEDIATE" if writing else "BEGIN")

    @classmethod
    def open(cls, engine: Engine, *, writing: bool = False) -> SQLiteBackend:
        return cls(engine.raw_connection(), writing=writing)

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is not None and self.sqlite.in_transaction:
                self.sqlite.rollback()
        finally:
            self.cursor.close()
            self.proxy.close()

    def commit(self) -> None:
        if self.sqlite.in_transaction:
            self.sqlite.commit()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(statement, tuple(params))

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> pa.Table | None:
        self.execute(statement, params)
        if self.cursor.description is None:
            return None
        names = [d[0] for d in self.cursor.description]
        return _rows_to_arrow(self.cursor.fetchall(), names)

    def ingest(self, table: str, data: pa.Table) -> None:
        names = ", ".join(self.q(n) for n in data.column_names)
        marks = ", ".join("?" for _ in data.column_names)
        # Python values for one slice at a time keep the peak memory small.
        batches = data.to_batches(max_chunksize=INGEST_BATCH_ROWS)
        rows = chain.from_iterable(
            zip(*(_values(c) for c in batch.columns), strict=True) for batch in batches
        )
        statement = f"INSERT INTO {self.q(table)} ({names}) VALUES ({marks})"  # noqa: S608
        self.cursor.executemany(statement, rows)

    def columns(self, table: str) -> dict[str, pa.DataType] | None:
        self.execute(f"PRAGMA table_info({self.q(table)})")
        rows = self.cursor.fetchall()
        if not rows:
            return None
        self._declared = {row[1]: _declared_kind(str(row[2] or "")) for row in rows}
        return {row[1]: _STORAGE.get(self._declared[row[1]], pa.string()) for row in rows}

    def existing_kind(self, column: str, arrow_type: pa.DataType) -> str:
        return self._declared.get(column, "any")

    def ddl_type(self, arrow_type: pa.DataType, spec: Spec) -> str:
        kind = spec.get("kind", "str")
        if kind == "category":
            kind = spec["value"]["kind"]
        return _DECLARED.get(kind, "TEXT")

    def uuid_value(self, value: Any) -> str:
        return str(value.hex)

    def time_value(self, value: datetime) -> str:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def false(self) -> str:
        return "0"

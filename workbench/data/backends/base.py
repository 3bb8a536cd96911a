"""One ADBC connection and transaction per data-API call: the SQL both databases share.

A :class:`Backend` runs a whole write (create the table, bulk-ingest Arrow, swap or upsert,
record the ``datasets`` row) in one transaction on one connection, so a failure at any point,
including a killed process, leaves the database as it was. The subclasses in ``io_postgres``
and ``io_sqlite`` hold what differs: connecting, type names, placeholders, catalog queries.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import adbc_driver_manager
import pyarrow as pa
from adbc_driver_manager import dbapi
from sqlalchemy.engine import Dialect as SQLDialect

from workbench.data.arrow import Dialect, Spec
from workbench.data.errors import DataError, TableNotFoundError
from workbench.db.errors import MultiUserError
from workbench.db.failures import explain_reason
from workbench.db.identifiers import STAGING_PREFIX, quote

__all__ = ["AdbcError", "Backend", "placeholders", "to_positional"]

AdbcError = adbc_driver_manager.Error

_MISSING_RELATION = re.compile(r'relation "[^"]*" does not exist')
# ``:name`` as SQLAlchemy's text() reads it: not after ':' / a word character / '\', not '::'.
_PARAM = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def placeholders(query: str) -> list[str]:
    """The ``:name`` parameters of ``query`` in order of first use (``::type`` casts skipped)."""
    return list(dict.fromkeys(_PARAM.findall(query)))


def to_positional(query: str, params: Mapping[str, Any], style: str) -> tuple[str, list[Any]]:
    """``query`` with ``:name`` turned into ``$n`` (style ``"dollar"``) or ``?`` placeholders."""
    values: list[Any] = []
    numbers: dict[str, int] = {}
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            missing.append(name)
            return match.group(0)
        if style == "dollar":
            if name not in numbers:
                values.append(params[name])
                numbers[name] = len(values)
            return f"${numbers[name]}"
        values.append(params[name])
        return "?"

    text = _PARAM.sub(replace, query)
    if missing:
        raise DataError(
            f"The query uses :{', :'.join(dict.fromkeys(missing))} but no value was given; "
            "pass it as a keyword argument, e.g. wb.sql(query, name=value)."
        )
    unused = sorted(set(params) - set(placeholders(query)))
    if unused:
        raise DataError(
            f"Parameter(s) {', '.join(unused)} are not used in the query; refer to them as "
            f":{unused[0]} or remove them."
        )
    return text.replace("\\:", ":"), values


class Backend:
    """An open ADBC connection with its transaction; use as a context manager."""

    dialect: ClassVar[Dialect]
    sql_dialect: ClassVar[SQLDialect]
    param_style: ClassVar[str]
    #: What the driver raises when the database refuses a statement.
    errors: ClassVar[tuple[type[Exception], ...]] = (AdbcError,)
    #: Columns the database adds to written tables, left out of what ``read_table`` returns.
    hidden_columns: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, connection: dbapi.Connection) -> None:
        self.connection = connection
        self.cursor = connection.cursor()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is not None:
                with contextlib.suppress(AdbcError):  # a lost connection: keep the real error
                    self.connection.rollback()
        finally:
            self.cursor.close()
            self.connection.close()

    def commit(self) -> None:
        self.connection.commit()

    # -- statements ---------------------------------------------------------------------------

    def q(self, name: str) -> str:
        return quote(self.sql_dialect, name)

    def param(self, position: int) -> str:
        return f"${position}" if self.param_style == "dollar" else "?"

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(statement, parameters=tuple(params) or None)

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> pa.Table | None:
        """The result as Arrow, or ``None`` for a statement without a result (DDL, DML)."""
        self.execute(statement, params)
        if not self.cursor.description:
            return None
        return self.cursor.fetch_arrow_table()

    def scalar(self, statement: str, params: Sequence[Any] = ()) -> Any:
        self.execute(statement, params)
        row = self.cursor.fetchone()
        return None if row is None else row[0]

    # -- what differs between the databases ---------------------------------------------------

    def columns(self, table: str) -> dict[str, pa.DataType] | None:
        """The table's columns and storage types in order, or ``None`` if it does not exist."""
        raise NotImplementedError

    def existing_kind(self, column: str, arrow_type: pa.DataType) -> str:
        """The kind of an existing column of a table without a recorded spec."""
        raise NotImplementedError

    def ddl_type(self, arrow_type: pa.DataType, spec: Spec) -> str:
        raise NotImplementedError

    def json_param(self, position: int) -> str:
        return self.param(position)

    def uuid_value(self, value: uuid.UUID) -> str:
        return str(value)

    def time_value(self, value: datetime) -> str:
        return value.isoformat()

    def upsert_tail(self) -> str:
        return ""

    # -- table operations ---------------------------------------------------------------------

    def govern(self, team: str | None, shared: bool) -> None:
        """Set the team and sharing of the tables this write creates (team mode only)."""
        if team is not None or shared:
            raise MultiUserError(
                "team= and shared= need team mode: the embedded SQLite database is "
                "single-user. Set WORKBENCH_DATABASE_URL to a PostgreSQL database."
            )

    def column_definitions(self, schema: pa.Schema, specs: Mapping[str, Spec]) -> list[str]:
        return [f"{self.q(f.name)} {self.ddl_type(f.type, specs.get(f.name, {}))}" for f in schema]

    def create_table(
        self, table: str, schema: pa.Schema, specs: Mapping[str, Spec], key: Sequence[str] = ()
    ) -> None:
        """``CREATE TABLE`` as the connection's role (new tables go through :meth:`new_table`)."""
        columns = ", ".join(self.column_definitions(schema, specs))
        self.execute(f"CREATE TABLE {self.q(table)} ({columns})")
        if key:
            self.unique_index(table, key)

    def check_existing(self, table: str) -> None:
        """Called before a write changes the existing ``table``: refuses what the write's
        options ask of it that it would not do (team mode: another team)."""

    def new_table(
        self, table: str, schema: pa.Schema, specs: Mapping[str, Spec], key: Sequence[str] = ()
    ) -> None:
        """Create the table a write fills: the one place where new tables are made (team mode
        protects them here, see :mod:`workbench.data.backends.governed`)."""
        self.create_table(table, schema, specs, key)

    def staging_table(self, schema: pa.Schema, specs: Mapping[str, Spec]) -> str:
        """A new staging table for ``replace``/``upsert``, dropped before the commit."""
        staging = STAGING_PREFIX + uuid.uuid4().hex[:16]
        self.create_table(staging, schema, specs)
        return staging

    def can_swap(self, table: str) -> bool:
        """Whether ``replace`` may swap a staging table in (else it replaces the rows)."""
        return True

    def replace(
        self, table: str, data: pa.Table, specs: Mapping[str, Spec], key: Sequence[str]
    ) -> None:
        """Fill a staging table and swap it in for ``table``, in this transaction."""
        staging = self.staging_table(data.schema, specs)
        self.ingest(staging, data)
        self.swap(staging, table, exists=True)
        if key:
            self.unique_index(table, key)

    def delete_rows(self, table: str) -> None:
        """Delete the rows of ``table`` this connection may change."""
        self.execute(f"DELETE FROM {self.q(table)}")  # noqa: S608 (a quoted name)

    def finish_write(self, table: str) -> None:
        """Called after the rows are written and recorded, before the commit."""

    @staticmethod
    def index_name(table: str, key: Sequence[str]) -> str:
        name = f"ux_{table}_{'_'.join(key)}"
        if len(name) > 63:
            name = f"ux_{table[:40]}_{uuid.uuid5(uuid.NAMESPACE_OID, name).hex[:16]}"
        return name

    def unique_index(self, table: str, key: Sequence[str]) -> None:
        name = self.index_name(table, key)
        columns = ", ".join(self.q(k) for k in key)
        self.execute(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {self.q(name)} ON {self.q(table)} ({columns})"
        )

    def add_column(self, table: str, name: str, arrow_type: pa.DataType, spec: Spec) -> None:
        column = f"{self.q(name)} {self.ddl_type(arrow_type, spec)}"
        self.execute(f"ALTER TABLE {self.q(table)} ADD COLUMN {column}")

    def ingest(self, table: str, data: pa.Table) -> None:
        self.cursor.adbc_ingest(table, data, mode="append")

    def swap(self, staging: str, table: str, exists: bool) -> None:
        if exists:
            self.execute(f"DROP TABLE {self.q(table)}")
        self.execute(f"ALTER TABLE {self.q(staging)} RENAME TO {self.q(table)}")

    def upsert(self, table: str, staging: str, columns: Sequence[str], key: Sequence[str]) -> None:
        names = ", ".join(self.q(c) for c in columns)
        updates = [c for c in columns if c not in key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{self.q(c)} = excluded.{self.q(c)}" for c in updates)
            if updates
            else "DO NOTHING"
        )
        conflict = ", ".join(self.q(k) for k in key)
        # Quoted identifiers only; values never appear in the statement.
        target, source = self.q(table), self.q(staging)
        statement = f"INSERT INTO {target} ({names}) SELECT {names} FROM {source} "  # noqa: S608
        self.execute(f"{statement}WHERE true ON CONFLICT ({conflict}) {action}")
        self.execute(f"DROP TABLE {self.q(staging)}")

    # -- the catalog --------------------------------------------------------------------------

    def dataset_specs(self, table: str) -> dict[str, Spec]:
        column, where = self.json_text("columns"), f"WHERE name = {self.param(1)}"
        text = self.scalar(f"SELECT {column} FROM datasets {where}", [table])  # noqa: S608
        if not text:
            return {}
        document = json.loads(text)
        return dict(document.get("specs", {}))

    def json_text(self, column: str) -> str:
        return column

    def record_dataset(self, table: str, mode: str, rows: int, specs: Mapping[str, Spec]) -> None:
        """Insert or update the ``datasets`` row in the write's own transaction."""
        now = self.time_value(datetime.now(UTC))
        document = self.specs_document(specs)
        p = self.param
        values = (
            f"({self.uuid_param(1)}, {p(2)}, {self.false()}, {self.time_param(3)}, "
            f"{self.time_param(4)}, {p(5)}, {p(6)}, {self.json_param(7)}, {self.owner()})"
        )
        self.execute(
            "INSERT INTO datasets (id, name, shared, created_at, last_write_at, "  # noqa: S608
            f"last_write_mode, last_write_rows, columns, owner_id) VALUES {values} "
            "ON CONFLICT (name) DO UPDATE SET last_write_at = excluded.last_write_at, "
            "last_write_mode = excluded.last_write_mode, "
            "last_write_rows = excluded.last_write_rows, columns = excluded.columns",
            [self.uuid_value(uuid.uuid4()), table, now, now, mode, rows, document],
        )

    @staticmethod
    def specs_document(specs: Mapping[str, Spec]) -> str:
        """The ``datasets.columns`` document: the dtype specs ``read_table`` restores."""
        return json.dumps({"version": 1, "specs": dict(specs)}, separators=(",", ":"))

    def owner(self) -> str:
        """SQL for the writing user's id, recorded when a dataset is first written."""
        return "NULL"

    def uuid_param(self, position: int) -> str:
        return self.param(position)

    def time_param(self, position: int) -> str:
        return self.param(position)

    def false(self) -> str:
        return "false"

    # -- errors -------------------------------------------------------------------------------

    def explain(self, error: Exception, table: str, operation: str = "write") -> DataError:
        """A :class:`DataError` naming the table, the operation that failed (``"write"``,
        ``"read"``) and the column, when the database says."""
        message = str(error).split("\n")[0]
        message = re.sub(r"^[A-Z_]+: (\[\w+\] )?", "", message)
        database = explain_reason(message)  # read-only, or no Workbench schema at all
        if database is not None:
            return DataError(f"Table {table!r}: {database}")
        if self.is_missing_table(str(error)):
            return TableNotFoundError(
                f"Table {table!r} does not exist; check the name with wb.tables()."
            )
        changed = "; nothing was changed" if operation == "write" else ""
        return DataError(
            f"Table {table!r}: the database refused the {operation} ({message}){changed}."
        )

    def is_missing_table(self, message: str) -> bool:
        """A missing table (not a missing column, which PostgreSQL also says "does not
        exist" of)."""
        return bool(_MISSING_RELATION.search(message)) or "no such table" in message

"""PostgreSQL through the ADBC driver: Arrow in with binary COPY, Arrow out, one transaction.

Connections come from :mod:`workbench.data.backends.pool` (one small pool per login).
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote as urlquote

import adbc_driver_postgresql.dbapi as adbc_postgresql
import pyarrow as pa
import pyarrow.types as pat
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect as SQLDialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from workbench.core.config import Settings, mask_url
from workbench.core.errors import DatabaseError
from workbench.data.arrow import Dialect, Spec, storage_kind
from workbench.data.backends import pool as io_pool
from workbench.data.backends.base import AdbcError, Backend
from workbench.db.engine import APPLICATION_NAME

__all__ = ["PostgresBackend", "libpq_uri"]

_TYPES = {
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float32(): "REAL",
    pa.float64(): "DOUBLE PRECISION",
    pa.bool_(): "BOOLEAN",
    pa.string(): "TEXT",
    pa.binary(): "BYTEA",
    pa.date32(): "DATE",
}


def libpq_uri(url: str, settings: Settings) -> str:
    """The SQLAlchemy URL as a libpq URI with Workbench's connection options (never logged)."""
    parsed = make_url(url)
    query: dict[str, str] = {k: str(v) for k, v in parsed.query.items()}
    query.setdefault("application_name", APPLICATION_NAME)
    query.setdefault("connect_timeout", str(settings.connect_timeout))
    options = f"-c statement_timeout={int(settings.statement_timeout_ms)}"
    query["options"] = f"{query['options']} {options}" if "options" in query else options
    base = parsed.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    return base + "?" + "&".join(f"{k}={urlquote(v, safe='')}" for k, v in query.items())


class PostgresBackend(Backend):
    """A PostgreSQL connection through ADBC."""

    dialect: ClassVar[Dialect] = "postgresql"
    sql_dialect: ClassVar[SQLDialect] = postgresql.dialect()  # type: ignore[no-untyped-call]
    param_style: ClassVar[str] = "dollar"

    @classmethod
    def open(cls, url: str, settings: Settings) -> PostgresBackend:
        uri = libpq_uri(url, settings)
        try:
            connection = io_pool.checkout(
                uri, lambda: adbc_postgresql.connect(uri), recycle=settings.pool_recycle
            )
        except (AdbcError, SQLAlchemyError) as exc:
            reason = str(exc).split("\n")[0][-300:]
            raise DatabaseError(
                f"Could not connect to {mask_url(url)} for a data transfer ({reason}); "
                "check WORKBENCH_DATABASE_URL and that the server is running."
            ) from None
        return cls(connection)

    @staticmethod
    def release(url: str, settings: Settings) -> None:
        """Close the idle pooled connections :meth:`open` keeps for ``url``'s login."""
        io_pool.dispose(libpq_uri(url, settings))

    def columns(self, table: str) -> dict[str, pa.DataType] | None:
        exists = self.scalar(
            "SELECT count(*) FROM pg_catalog.pg_tables "
            "WHERE schemaname = current_schema() AND tablename = $1",
            [table],
        )
        if not exists:
            return None
        schema = self.connection.adbc_get_table_schema(table)
        return {field.name: field.type for field in schema}

    def existing_kind(self, column: str, arrow_type: pa.DataType) -> str:
        kind = storage_kind(arrow_type)
        if kind == "timestamp" and arrow_type.tz:
            return "timestamptz"
        return kind

    def ddl_type(self, arrow_type: pa.DataType, spec: Spec) -> str:
        if pat.is_timestamp(arrow_type):
            return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
        if pat.is_decimal(arrow_type):
            return "NUMERIC"
        return _TYPES.get(arrow_type, "TEXT")

    def owner(self) -> str:
        # Each account logs in with its own role (users.db_role): that login is the writer.
        return "(SELECT u.id FROM users AS u WHERE u.db_role = current_user)"

    def json_text(self, column: str) -> str:
        return f"{column}::text"

    def json_param(self, position: int) -> str:
        return f"CAST(${position} AS jsonb)"

    def uuid_param(self, position: int) -> str:
        return f"CAST(${position} AS uuid)"

    def time_param(self, position: int) -> str:
        return f"CAST(${position} AS timestamptz)"

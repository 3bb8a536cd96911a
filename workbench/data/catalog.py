"""What ``wb.describe`` and ``wb.tables`` show: columns, types, rows, owner, last write.

A :class:`TableDescription` renders as an HTML table in Jupyter and as text elsewhere.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from workbench.data.arrow import dtype_label
from workbench.data.errors import TableNotFoundError
from workbench.db.engine import is_postgresql
from workbench.db.identifiers import STAGING_PREFIX, reserved_tables
from workbench.db.models import Dataset, User
from workbench.db.rls import IS_SERVICE_SQL

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from workbench.db.handle import Database

__all__ = ["ColumnInfo", "TableDescription", "describe_table", "list_tables", "readable_tables"]


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    database_type: str
    dtype: str | None
    """The pandas dtype ``wb.read_table`` returns; ``None`` if the table was not written by
    Workbench (the database type decides)."""
    nullable: bool


@dataclass(frozen=True)
class TableDescription:
    name: str
    columns: tuple[ColumnInfo, ...]
    rows: int
    owner: str | None
    last_write_at: datetime | None
    last_write_mode: str | None
    last_write_rows: int | None

    def to_frame(self) -> pd.DataFrame:
        """The columns as a DataFrame (name, database type, pandas dtype, nullable)."""
        return pd.DataFrame(
            [(c.name, c.database_type, c.dtype, c.nullable) for c in self.columns],
            columns=["column", "database_type", "dtype", "nullable"],
        )

    def _summary(self) -> list[tuple[str, str]]:
        written = "never (not written with wb.write)"
        if self.last_write_at is not None:
            written = (
                f"{self.last_write_at:%Y-%m-%d %H:%M:%S %Z} ({self.last_write_mode}, "
                f"{self.last_write_rows} rows)"
            )
        return [
            ("rows", f"{self.rows:,}"),
            ("owner", self.owner or "unknown"),
            ("last write", written),
        ]

    def __repr__(self) -> str:
        # Table, rows and as many column names as fit in ~90 characters; __str__ and the HTML
        # give every column.
        names = [c.name for c in self.columns]
        shown: list[str] = []
        for name in names:
            if shown and len(", ".join([*shown, name])) > 90:
                break
            shown.append(name)
        more = f", +{len(names) - len(shown)} more" if len(shown) < len(names) else ""
        rows = f"{self.rows:,} row" + ("" if self.rows == 1 else "s")
        columns = f"{len(names)} column" + ("" if len(names) == 1 else "s")
        return f"<TableDescription {self.name}: {rows}, {columns} ({', '.join(shown)}{more})>"

    def __str__(self) -> str:
        lines = [f"Table {self.name}"]
        lines += [f"  {k}: {v}" for k, v in self._summary()]
        lines += [
            f"  - {c.name}: {c.database_type}" + (f" (pandas {c.dtype})" if c.dtype else "")
            for c in self.columns
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        summary = "".join(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in self._summary())
        rows = "".join(
            f"<tr><td>{e(c.name)}</td><td>{e(c.database_type)}</td>"
            f"<td>{e(c.dtype or '')}</td><td>{'yes' if c.nullable else 'no'}</td></tr>"
            for c in self.columns
        )
        return (
            f"<div><h4>Table {e(self.name)}</h4><ul>{summary}</ul><table>"
            "<thead><tr><th>column</th><th>database type</th><th>pandas dtype</th>"
            f"<th>nullable</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )


def describe_table(workbench: Database, table: str) -> TableDescription:
    """Read the table's shape from the database and its history from ``datasets``.

    A table the login may not read is described as one that does not exist (same message).
    """
    engine = workbench.engine
    inspector = sa.inspect(engine)
    missing = TableNotFoundError(
        f"Table {table!r} does not exist; check the name with wb.tables()."
    )
    if not inspector.has_table(table):
        raise missing
    with workbench.session() as session:
        readable = readable_tables(session, [table])
        if readable is not None and table not in readable:
            raise missing
        dataset = session.scalar(sa.select(Dataset).where(Dataset.name == table))
        owner = None
        if dataset is not None and dataset.owner_id is not None and _may_read_users(session):
            owner = session.scalar(sa.select(User.username).where(User.id == dataset.owner_id))
        rows = int(session.scalar(sa.select(sa.func.count()).select_from(sa.table(table))) or 0)
        if owner is None and is_postgresql(engine):
            owner = session.scalar(
                sa.text(
                    "SELECT tableowner FROM pg_catalog.pg_tables "
                    "WHERE schemaname = current_schema() AND tablename = :t"
                ),
                {"t": table},
            )
    specs = dict((dataset.columns or {}).get("specs", {})) if dataset is not None else {}
    columns = tuple(
        ColumnInfo(
            name=c["name"],
            database_type=c["type"].compile(dialect=engine.dialect),
            dtype=dtype_label(specs[c["name"]]) if c["name"] in specs else None,
            nullable=bool(c.get("nullable", True)),
        )
        for c in inspector.get_columns(table)
    )
    return TableDescription(
        name=table,
        columns=columns,
        rows=rows,
        owner=owner,
        last_write_at=dataset.last_write_at if dataset else None,
        last_write_mode=dataset.last_write_mode if dataset else None,
        last_write_rows=dataset.last_write_rows if dataset else None,
    )


def _may_read_users(session: Session) -> bool:
    """False for a user's own login in team mode, which may not read the accounts table."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(sa.text("SELECT has_table_privilege('users', 'SELECT')")))


def readable_tables(session: Session, names: list[str] | None = None) -> set[str] | None:
    """The tables (of ``names``; ``None``: all) the session's login may read, decided by the
    database (``wb_private.readable_tables``); ``None`` when it may read every table: SQLite
    (single-user) and the service. Names alone: never a size the login could not count."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    if session.scalar(sa.text(IS_SERVICE_SQL)):
        return None
    found = session.scalars(
        sa.text("SELECT wb_private.readable_tables(CAST(:names AS text[]))"), {"names": names}
    )
    return {str(name) for name in found}


def list_tables(workbench: Database) -> pd.DataFrame:
    """Every table the login may read (not Workbench's own), with the last write recorded
    for it: in team mode a user's login lists only its teams' tables, the tables shared with
    it and those holding its teams' rows (admins: every protected table)."""
    names = sorted(
        n
        for n in sa.inspect(workbench.engine).get_table_names()
        if n not in reserved_tables() and not n.startswith(STAGING_PREFIX)
    )
    with workbench.session() as session:
        readable = readable_tables(session)
        if readable is not None:
            names = [n for n in names if n in readable]
        datasets = {d.name: d for d in session.scalars(sa.select(Dataset))}
    records = [
        (
            n,
            datasets[n].last_write_at if n in datasets else None,
            datasets[n].last_write_mode if n in datasets else None,
            datasets[n].last_write_rows if n in datasets else None,
        )
        for n in names
    ]
    return pd.DataFrame(
        records, columns=["name", "last_write_at", "last_write_mode", "last_write_rows"]
    )

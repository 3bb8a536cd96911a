"""Table and column names analysts may use, checked before any SQL is built.

A name is letters, digits and underscores, starting with a letter or underscore, at most 63
characters (PostgreSQL's limit). Table names are lower case so that unquoted SQL written by
hand (``select * from sales``) finds them on both databases. Workbench's own tables (users,
runs, ...) are refused as write targets. Names are still quoted when SQL is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from sqlalchemy.engine import Dialect

from workbench.db.errors import IdentifierError

__all__ = [
    "STAGING_PREFIX",
    "check_column",
    "check_columns",
    "check_table",
    "check_writable",
    "quote",
    "reserved_tables",
]

MAX_LENGTH = 63
STAGING_PREFIX = "_wb_stage_"
_TABLE = re.compile(r"[a-z_][a-z0-9_]*")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_table(name: object) -> str:
    """``name`` if it is a valid table name, else an :class:`IdentifierError` saying why."""
    if not isinstance(name, str) or not _TABLE.fullmatch(name) or len(name) > MAX_LENGTH:
        raise IdentifierError(
            f"{name!r} is not a valid table name: use lower-case letters, digits and "
            f"underscores, starting with a letter or underscore, at most {MAX_LENGTH} "
            "characters (for example 'daily_sales')."
        )
    return name


def check_column(name: object, table: str) -> str:
    """``name`` if it is a valid column name of ``table``, else an :class:`IdentifierError`."""
    if not isinstance(name, str) or not _COLUMN.fullmatch(name) or len(name) > MAX_LENGTH:
        raise IdentifierError(
            f"Table {table!r}: column {name!r} is not a valid column name: use letters, "
            f"digits and underscores, starting with a letter or underscore, at most "
            f"{MAX_LENGTH} characters. Rename it first, e.g. df.rename(columns={{...}})."
        )
    return name


def check_columns(names: Iterable[object], table: str) -> list[str]:
    """Every name checked, and no name twice (ignoring case, as the databases do)."""
    checked = [check_column(n, table) for n in names]
    seen: set[str] = set()
    for name in checked:
        if name.lower() in seen:
            raise IdentifierError(
                f"Table {table!r}: column {name!r} appears twice (names are compared "
                "ignoring case); give every column a distinct name."
            )
        seen.add(name.lower())
    return checked


@cache
def reserved_tables() -> frozenset[str]:
    """Workbench's own tables, which analysts may read but never write through the data API."""
    from workbench.db.models import Base

    return frozenset(Base.metadata.tables) | {"alembic_version"}


def check_writable(name: object) -> str:
    """A valid table name that is not one of Workbench's own tables."""
    table = check_table(name)
    if table in reserved_tables() or table.startswith(STAGING_PREFIX):
        raise IdentifierError(
            f"{table!r} is one of Workbench's own tables and cannot be written with the "
            "data API; choose another table name."
        )
    return table


def quote(dialect: Dialect, name: str) -> str:
    """``name`` quoted for ``dialect`` (always quoted, so case and keywords are kept)."""
    return dialect.identifier_preparer.quote_identifier(name)

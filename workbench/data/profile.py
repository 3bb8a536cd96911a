"""A table's profile: per column its type, nulls, distinct values, and minimum, maximum and
mean where they mean something, computed by the database in one query.

The query is built from the table's own column names with SQLAlchemy (quoted as identifiers,
never pasted in as text), and runs with the workbench's login: in team mode the database's
row-level policies decide which rows are counted, as for any query of that login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from workbench.data.catalog import describe_table

if TYPE_CHECKING:
    from workbench.db.handle import Database

__all__ = ["PROFILE_COLUMNS", "profile_table"]

PROFILE_COLUMNS = ["column", "type", "rows", "nulls", "distinct", "min", "max", "mean"]
_ORDERED = (sa.Integer, sa.Numeric, sa.Float, sa.Date, sa.DateTime, sa.String, sa.Time)
_NUMERIC = (sa.Integer, sa.Numeric, sa.Float)


def profile_table(workbench: Database, table: str) -> pd.DataFrame:
    """One row per column of ``table`` (:data:`PROFILE_COLUMNS`); a table the login may not
    read is one that does not exist (the same error as :func:`describe_table`)."""
    description = describe_table(workbench, table)
    kinds = {
        c["name"]: c["type"] for c in sa.inspect(workbench.engine).get_columns(description.name)
    }
    target = sa.table(description.name, *(sa.column(name) for name in kinds))
    selected: list[Any] = [sa.func.count().label("rows")]
    for index, (name, kind) in enumerate(kinds.items()):
        column = target.c[name]
        selected += [
            sa.func.count(column).label(f"c{index}_present"),
            sa.func.count(sa.distinct(column)).label(f"c{index}_distinct"),
        ]
        if isinstance(kind, _ORDERED) and not isinstance(kind, sa.Boolean):
            selected += [sa.func.min(column).label(f"c{index}_min")]
            selected += [sa.func.max(column).label(f"c{index}_max")]
        if isinstance(kind, _NUMERIC) and not isinstance(kind, sa.Boolean):
            selected += [sa.func.avg(column).label(f"c{index}_mean")]
    with workbench.engine.connect() as connection:
        row = connection.execute(sa.select(*selected).select_from(target)).mappings().one()
    total = int(row["rows"])
    by_name = {c.name: c for c in description.columns}
    records = [
        {
            "column": name,
            "type": by_name[name].dtype or by_name[name].database_type,
            "rows": total,
            "nulls": total - int(row[f"c{index}_present"]),
            "distinct": int(row[f"c{index}_distinct"]),
            "min": row.get(f"c{index}_min"),
            "max": row.get(f"c{index}_max"),
            "mean": None if row.get(f"c{index}_mean") is None else float(row[f"c{index}_mean"]),
        }
        for index, name in enumerate(kinds)
    ]
    return pd.DataFrame(records, columns=PROFILE_COLUMNS)

"""The ``sql`` source: a query against another database, by SQLAlchemy URL, in batches.

The URL may be a ``secret:NAME`` reference so its password stays in the secret store; in
errors it is shown with the password masked. A SQLite URL must name an existing file (SQLite
would otherwise create an empty one and the query would fail confusingly).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from workbench.core.config import mask_url, normalize_database_url
from workbench.sources.base import Item, Options, Source
from workbench.sources.errors import SourceError, SourceOptionError
from workbench.sources.secrets import is_reference, resolve_reference

__all__ = ["SqlOptions", "SqlSource"]


class SqlOptions(Options):
    url: str = Field(description="SQLAlchemy URL of the database to read, or secret:NAME.")
    query: str = Field(min_length=1, description="The SELECT to run; :name binds params.")
    params: dict[str, Any] = Field(default_factory=dict, description="Bound query parameters.")
    batch_size: int = Field(50_000, gt=0, description="Rows fetched per batch.")


class SqlSource(Source[SqlOptions]):
    """Rows of a query against any database SQLAlchemy can reach."""

    name = "sql"
    description = "The result of a SQL query against another database (any SQLAlchemy URL)."
    options_model = SqlOptions

    def iter_batches(self, options: SqlOptions) -> Iterator[Item]:
        url = resolve_reference(options.url, "url") if is_reference(options.url) else options.url
        url = normalize_database_url(url)
        shown = mask_url(url)
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise SourceOptionError(
                "Option 'url' is not a database URL; expected e.g. "
                "postgresql://user@host/db or sqlite:///path/to/file.db."
            ) from None
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:") or not Path(database).is_file():
                raise SourceError(f"{shown}: no such SQLite database file.")
        try:
            engine = create_engine(url, poolclass=NullPool)
        except (NoSuchModuleError, ImportError) as exc:
            raise SourceOptionError(f"{shown}: no driver for this database ({exc}).") from None
        try:
            with engine.connect() as conn:
                chunks = pd.read_sql(
                    text(options.query),
                    conn.execution_options(stream_results=True),
                    params=options.params,
                    chunksize=options.batch_size,
                    dtype_backend="numpy_nullable",
                )
                yield from chunks
        except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, SQLAlchemyError) else exc
            detail = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
            raise SourceError(f"The query on {shown} failed: {detail}") from None
        finally:
            engine.dispose()

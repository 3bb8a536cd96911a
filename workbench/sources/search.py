"""Full-text search over a documents table (file, page, text, ...) made by the ``pdf`` source.

PostgreSQL: a GIN index on ``to_tsvector('english', text)`` and ``websearch_to_tsquery``.
SQLite: an FTS5 table ``<table>_fts`` (porter stemming) rebuilt after each ingest, queried
with the same web-search syntax (words, "quoted phrases", ``or``, ``-excluded``).
Both return file, page, rank (higher is better) and a snippet with matches in [brackets].
All SQL of this feature is here; names are validated and quoted, values bound.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import Connection, inspect, text

from workbench.db.identifiers import check_table, quote
from workbench.sources.errors import SourceError, SourceOptionError

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["ensure_search_index", "search_documents", "to_fts5_query"]

LANGUAGE = "english"
_PG_VECTOR = f"to_tsvector('{LANGUAGE}', coalesce({{text}}, ''))"
_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')


def _names(conn: Connection, table: str) -> dict[str, str]:
    q = conn.dialect.identifier_preparer.quote_identifier
    return {
        "table": quote(conn.dialect, table),
        "fts": q(f"{table}_fts"),
        "index": q(f"ix_{table[:48]}_fts"),
        "file": q("file"),
        "page": q("page"),
        "text": q("text"),
    }


def ensure_search_index(wb: Workbench, table: str) -> None:
    """Create (PostgreSQL) or rebuild (SQLite) the full-text index of ``table``."""
    check_table(table)
    with wb.engine.begin() as conn:
        _require(conn, table)
        n = _names(conn, table)
        if conn.dialect.name == "postgresql":
            vector = _PG_VECTOR.format(text=n["text"])
            conn.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS {n['index']} ON {n['table']} USING GIN ({vector})"
                )
            )
            return
        conn.execute(
            text(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {n['fts']} USING fts5("
                "file UNINDEXED, page UNINDEXED, text, tokenize='porter unicode61')"
            )
        )
        conn.execute(text(f"DELETE FROM {n['fts']}"))  # noqa: S608 - a quoted name
        conn.execute(
            text(
                f"INSERT INTO {n['fts']} (file, page, text) "  # noqa: S608 - quoted names
                f"SELECT {n['file']}, {n['page']}, {n['text']} FROM {n['table']}"
            )
        )


def search_documents(
    query: str, table: str = "documents", limit: int = 20, *, workbench: Workbench | None = None
) -> pd.DataFrame:
    """Pages of ``table`` matching ``query`` (web-search syntax), best first."""
    if not isinstance(query, str) or not query.strip():
        raise SourceOptionError("search_documents needs words to look for, e.g. 'delay'.")
    check_table(table)
    from workbench.app import resolve

    workbench = resolve(workbench)
    with workbench.engine.connect() as conn:
        _require(conn, table)
        n = _names(conn, table)
        if conn.dialect.name == "postgresql":
            vector = _PG_VECTOR.format(text=n["text"])
            statement = (
                f"SELECT {n['file']} AS file, {n['page']} AS page, "  # noqa: S608 - quoted names
                f"ts_rank({vector}, q) AS rank, "
                f"ts_headline('{LANGUAGE}', {n['text']}, q, "
                "'StartSel=[, StopSel=], MaxFragments=1, MaxWords=20, MinWords=5') AS snippet "
                f"FROM {n['table']}, websearch_to_tsquery('{LANGUAGE}', :query) AS q "
                f"WHERE {vector} @@ q ORDER BY rank DESC, file, page LIMIT :limit"
            )
            rows = conn.execute(text(statement), {"query": query, "limit": limit})
        else:
            if not inspect(conn).has_table(f"{table}_fts"):
                conn.rollback()
                ensure_search_index(workbench, table)
            statement = (
                f"SELECT file, page, -bm25({n['fts']}) AS rank, "  # noqa: S608 - quoted names
                f"snippet({n['fts']}, 2, '[', ']', '…', 16) AS snippet FROM {n['fts']} "
                f"WHERE {n['fts']} MATCH :query ORDER BY rank DESC, file, page LIMIT :limit"
            )
            fts_query = to_fts5_query(query)
            if not fts_query:
                return _frame([])
            rows = conn.execute(text(statement), {"query": fts_query, "limit": limit})
        return _frame([tuple(r) for r in rows])


def _frame(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["file", "page", "rank", "snippet"])
    return frame.astype({"file": "string", "page": "Int64", "rank": "float64", "snippet": "string"})


def _require(conn: Connection, table: str) -> None:
    if not inspect(conn).has_table(table):
        raise SourceError(
            f"There is no documents table {table!r}; ingest PDFs first, e.g. "
            f"wb.ingest('pdf', table={table!r}, path='reports/*.pdf')."
        )


def to_fts5_query(query: str) -> str:
    """Web-search syntax as an FTS5 query: words and phrases ANDed, ``or``, ``-word`` NOT.

    Every term is quoted, so punctuation in the user's words is never FTS5 syntax.
    """
    groups: list[list[str]] = [[]]
    excluded: list[str] = []
    for match in _TOKEN.finditer(query):
        negated, phrase, word = match.group(1), match.group(2), match.group(3)
        if word is not None and word.lower() == "or":
            if groups[-1]:
                groups.append([])
            continue
        if word is not None and word.startswith("-") and len(word) > 1:
            negated, word = "-", word[1:]
        term = (phrase if phrase is not None else word).strip()
        if not term:
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        (excluded if negated else groups[-1]).append(quoted)
    alternatives = [" AND ".join(g) for g in groups if g]
    if not alternatives:
        return ""
    positive = " OR ".join(f"({a})" for a in alternatives)
    if excluded:
        positive = f"({positive})"
    return positive + "".join(f" NOT {e}" for e in excluded)

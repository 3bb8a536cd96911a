"""PDFs into a documents table and full-text search, on PostgreSQL and SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.unit.test_sources_pdf import make_document_set, make_pdf
from workbench.app import Workbench
from workbench.sources.errors import SourceError, SourceOptionError
from workbench.sources.ingest import ingest
from workbench.sources.search import search_documents


@pytest.fixture
def documents(workbench: Workbench, tmp_path: Path) -> Workbench:
    make_document_set(tmp_path / "docs")
    result = ingest("pdf", "documents", workbench=workbench, path=str(tmp_path / "docs" / "*.pdf"))
    assert result.tables == {"documents": 3}
    assert len(result.skipped) == 4
    return workbench


def test_bad_pdfs_are_reported_and_the_good_ones_written(documents: Workbench) -> None:
    rows = documents.read_table("documents").sort_values(["file", "page"])
    assert [Path(f).name for f in rows["file"]] == ["a_delays.pdf", "a_delays.pdf", "b_fuel.pdf"]
    assert rows["page"].tolist() == [1, 2, 1]
    assert json.loads(rows["metadata"].iloc[2])["title"] == "Fuel"


def test_search_finds_stemmed_words_best_first(documents: Workbench) -> None:
    hits = search_documents("delay", workbench=documents)  # the text says "delays"
    assert [(Path(f).name, p) for f, p in zip(hits["file"], hits["page"], strict=True)] == [
        ("a_delays.pdf", 1)
    ]
    assert "[" in hits["snippet"].iloc[0] and "]" in hits["snippet"].iloc[0]
    assert hits["rank"].iloc[0] > 0
    either = search_documents("fuel or crew", workbench=documents)
    assert sorted(Path(f).name for f in either["file"]) == ["a_delays.pdf", "b_fuel.pdf"]
    phrase = search_documents('"on-time departures"', workbench=documents)
    assert phrase["page"].tolist() == [2]
    excluded = search_documents("weather -thunderstorms", workbench=documents)
    assert excluded.empty
    assert search_documents("zebra", workbench=documents).empty
    hostile = search_documents("'; drop table documents; --", workbench=documents)
    assert hostile.empty
    assert len(documents.read_table("documents")) == 3


def test_search_uses_the_database_index(documents: Workbench) -> None:
    with documents.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            indexes = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE tablename = 'documents'")
            ).scalars()
            assert any("gin" in d.lower() and "to_tsvector" in d for d in indexes)
        else:
            sql = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'documents_fts'")
            ).scalar_one()
            assert "fts5" in sql.lower()


def test_appending_more_documents_is_searchable(documents: Workbench, tmp_path: Path) -> None:
    make_pdf(tmp_path / "later.pdf", ["Baggage handling delays grew at LGA."])
    ingest("pdf", "documents", mode="append", workbench=documents, path=str(tmp_path / "later.pdf"))
    hits = search_documents("baggage", workbench=documents)
    assert [Path(f).name for f in hits["file"]] == ["later.pdf"]
    assert len(search_documents("delays", workbench=documents)) == 2


def test_all_files_bad_writes_nothing(workbench: Workbench, tmp_path: Path) -> None:
    (tmp_path / "x.pdf").write_bytes(b"not a pdf at all")
    with pytest.raises(SourceError, match=r"every input was skipped \(.*x\.pdf: is not a readable"):
        ingest("pdf", "documents", workbench=workbench, path=str(tmp_path / "x.pdf"))
    assert "documents" not in set(workbench.tables()["name"])


def test_search_errors(workbench: Workbench) -> None:
    with pytest.raises(SourceError, match="no documents table 'documents'; ingest PDFs first"):
        search_documents("delay", workbench=workbench)
    with pytest.raises(SourceOptionError, match="needs words"):
        search_documents("  ", workbench=workbench)

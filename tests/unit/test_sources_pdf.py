"""The pdf source on real PDF files made here: good, encrypted, corrupt, empty and image-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from workbench.sources.base import Skipped
from workbench.sources.errors import SourceError
from workbench.sources.pdf import DOCUMENT_COLUMNS, PdfSource
from workbench.sources.search import to_fts5_query


def make_pdf(path: Path, pages: list[str], title: str = "Operations report") -> Path:
    """A real PDF with one page per text."""
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author("Ops team")
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def encrypt_pdf(source: Path, target: Path, password: str) -> Path:
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(password, algorithm="AES-256")
    with target.open("wb") as fh:
        writer.write(fh)
    return target


def make_document_set(folder: Path) -> dict[str, Path]:
    """Two good reports and one of each kind of bad file."""
    folder.mkdir(parents=True, exist_ok=True)
    good = make_pdf(
        folder / "a_delays.pdf",
        [
            "Weather delays at EWR rose in July after thunderstorms.",
            "Crew scheduling improved on-time departures.",
        ],
    )
    make_pdf(folder / "b_fuel.pdf", ["Fuel costs fell in the second quarter."], title="Fuel")
    encrypt_pdf(good, folder / "c_locked.pdf", "s3cret-pdf")
    (folder / "d_corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage")
    (folder / "e_empty.pdf").write_bytes(b"")
    make_pdf(folder / "f_blank.pdf", ["", ""])
    return {"good": good}


def test_pages_become_rows_and_bad_files_are_reported(tmp_path: Path) -> None:
    make_document_set(tmp_path / "docs")
    items = list(PdfSource().read(path=str(tmp_path / "docs" / "*.pdf")))
    frames = [i for i in items if not isinstance(i, Skipped)]
    skipped = {Path(s.item).name: s.reason for s in items if isinstance(s, Skipped)}
    assert len(frames) == 2
    first = frames[0]
    assert tuple(first.columns) == DOCUMENT_COLUMNS
    assert first["page"].tolist() == [1, 2]
    assert "thunderstorms" in first["text"].iloc[0]
    assert first["file"].iloc[0].endswith("a_delays.pdf")
    metadata = json.loads(first["metadata"].iloc[0])
    assert metadata["title"] == "Operations report"
    assert metadata["author"] == "Ops team"
    assert metadata["pages"] == 2
    assert set(skipped) == {"c_locked.pdf", "d_corrupt.pdf", "e_empty.pdf", "f_blank.pdf"}
    assert "encrypted" in skipped["c_locked.pdf"]
    assert "not a readable PDF" in skipped["d_corrupt.pdf"]
    assert "empty file" in skipped["e_empty.pdf"]
    assert "no extractable text" in skipped["f_blank.pdf"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        list(PdfSource().read(path=str(tmp_path / "nothing-*.pdf")))


def test_password_must_be_a_secret_reference(tmp_path: Path) -> None:
    make_pdf(tmp_path / "r.pdf", ["text"])
    with pytest.raises(SourceError, match="must be a secret reference"):
        list(PdfSource().read(path=str(tmp_path / "r.pdf"), password="plain-text"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("delay", '("delay")'),
        ("weather delay", '("weather" AND "delay")'),
        ('"on-time departures" crew', '("on-time departures" AND "crew")'),
        ("fuel or crew", '("fuel") OR ("crew")'),
        ("delay -weather", '(("delay")) NOT "weather"'),
        ('drop"; table', '("drop"";" AND "table")'),
        ("-only", ""),
    ],
)
def test_web_search_syntax_becomes_a_safe_fts5_query(query: str, expected: str) -> None:
    assert to_fts5_query(query) == expected

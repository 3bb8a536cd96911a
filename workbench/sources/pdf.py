"""The ``pdf`` source: PDF documents through pypdf into rows of (file, page, text, metadata).

One row per page with text. A file that is encrypted (without the right password), corrupt
or without any text is reported as :class:`Skipped` and the other files go on. Search the
resulting table with :func:`workbench.sources.search.search_documents`.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import Field
from pypdf import PdfReader
from pypdf.errors import EmptyFileError, FileNotDecryptedError, PyPdfError

from workbench.sources.base import Item, Options, Skipped, Source
from workbench.sources.paths import expand_paths, label
from workbench.sources.secrets import resolve_reference

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["DOCUMENT_COLUMNS", "PdfOptions", "PdfSource"]

DOCUMENT_COLUMNS = ("file", "page", "text", "metadata")
# pypdf logs its repairs of damaged files; they reach the application's handlers only, never
# Python's last-resort stderr printer (a damaged file is reported as Skipped instead).
logging.getLogger("pypdf").addHandler(logging.NullHandler())
_INFO_KEYS = ("title", "author", "subject", "creator", "producer")


class PdfOptions(Options):
    path: str | list[str] = Field(description="PDF file, glob or fsspec URL (or a list).")
    password: str | None = Field(None, description="secret:NAME of encrypted PDFs' password.")


class PdfSource(Source[PdfOptions]):
    """Pages of PDF documents, for full-text search."""

    name = "pdf"
    description = "PDF documents (pypdf): one row per page with file, page, text and metadata."
    options_model = PdfOptions

    def iter_batches(self, options: PdfOptions) -> Iterator[Item]:
        password = resolve_reference(options.password, "password") if options.password else None
        for file in expand_paths(options.path, compression=None):
            name = label(file)
            with file as fh:
                data = fh.read()
            yield _document(name, data, password)

    def after_write(self, workbench: Workbench, table: str) -> None:
        """Build the table's full-text index so ``search_documents`` finds the new pages."""
        from workbench.sources.search import ensure_search_index

        ensure_search_index(workbench, table)


def _document(name: str, data: bytes, password: str | None) -> pd.DataFrame | Skipped:
    """The pages of one PDF, or why it was skipped."""
    # pypdf raises many kinds of exception on damaged input; any of them means "skip this file".
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            if password is None:
                return Skipped(name, "is encrypted; pass password=secret:NAME")
            if not reader.decrypt(password):
                return Skipped(name, "is encrypted and the password does not open it")
        texts = [(page.extract_text() or "").replace("\x00", "") for page in reader.pages]
        metadata = json.dumps(_metadata(reader), ensure_ascii=False)
    except EmptyFileError:
        return Skipped(name, "is an empty file")
    except FileNotDecryptedError:
        return Skipped(name, "is encrypted; pass password=secret:NAME")
    except PyPdfError as exc:
        return Skipped(name, f"is not a readable PDF ({exc})")
    except Exception as exc:  # a damaged file must not stop the batch
        return Skipped(name, f"is not a readable PDF ({type(exc).__name__}: {exc})")
    rows = [
        (name, number, text, metadata) for number, text in enumerate(texts, start=1) if text.strip()
    ]
    if not rows:
        return Skipped(name, f"has no extractable text ({len(texts)} pages; scanned images?)")
    frame = pd.DataFrame(rows, columns=list(DOCUMENT_COLUMNS))
    return frame.astype({"file": "string", "page": "Int64", "text": "string", "metadata": "string"})


def _metadata(reader: PdfReader) -> dict[str, Any]:
    info: dict[str, Any] = {"pages": len(reader.pages)}
    meta = reader.metadata
    if meta is None:
        return info
    for key in _INFO_KEYS:
        value = getattr(meta, key, None)
        if value:
            info[key] = str(value)
    created = meta.creation_date if "/CreationDate" in meta else None
    if isinstance(created, datetime):
        info["created"] = created.isoformat()
    return info

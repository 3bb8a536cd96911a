"""Paths, globs and fsspec URLs expanded into the files a source reads, in a stable order."""

from __future__ import annotations

from collections.abc import Sequence

import fsspec
from fsspec.core import OpenFile

from workbench.sources.errors import SourceError, SourceOptionError

__all__ = ["GLOB_CHARS", "as_list", "expand_paths", "label"]

GLOB_CHARS = frozenset("*?[")


def as_list(paths: str | Sequence[str]) -> list[str]:
    return [paths] if isinstance(paths, str) else list(paths)


def expand_paths(
    paths: str | Sequence[str], *, compression: str | None = "infer"
) -> list[OpenFile]:
    """One :class:`OpenFile` per matching file; a pattern that matches nothing is an error."""
    patterns = as_list(paths)
    if not patterns:
        raise SourceOptionError("Option 'path' is empty: give a file, a glob or an fsspec URL.")
    files: list[OpenFile] = []
    for pattern in patterns:
        try:
            found = fsspec.open_files(pattern, mode="rb", compression=compression)
        except (ValueError, ImportError) as exc:
            raise SourceOptionError(f"{pattern}: cannot be opened ({exc}).") from None
        if GLOB_CHARS.isdisjoint(pattern):
            found = [f for f in found if f.fs.exists(f.path)]
        if not found:
            raise SourceError(f"{pattern}: no such file (or no file matches the pattern).")
        files.extend(sorted(found, key=lambda f: str(f.path)))
    return files


def label(file: OpenFile) -> str:
    """How a file is named in errors and in the ``file`` columns: its path or URL."""
    protocol = file.fs.protocol
    first = protocol[0] if isinstance(protocol, tuple | list) else protocol
    if first in ("file", "local"):
        return str(file.path)
    return f"{first}://{file.path}"

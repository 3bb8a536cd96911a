"""Workbench's own sources, registered through the ``register_sources`` hook like any plugin.

Each is registered as a :class:`LazySource` that imports its module (pandas, pyarrow,
httpx, pypdf, ...) on first use, so loading the plugins does not slow every command down.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from workbench.plugins.hookspecs import hookimpl

__all__ = ["BUILTIN_SOURCES", "LazySource", "register_sources"]

BUILTIN_SOURCES = {
    "files": "workbench.sources.files:FilesSource",
    "sql": "workbench.sources.sql:SqlSource",
    "http": "workbench.sources.http:HttpSource",
    "pdf": "workbench.sources.pdf:PdfSource",
    "flights": "workbench.sources.flights:FlightsSource",
}


class LazySource:
    """A source named now and imported from ``module:Class`` when first used."""

    def __init__(self, name: str, target: str) -> None:
        self.name = name
        self._target = target
        self._source: Any = None

    def load(self) -> Any:
        if self._source is None:
            module, _, attr = self._target.partition(":")
            self._source = getattr(import_module(module), attr)()
        return self._source

    @property
    def description(self) -> str:
        return str(self.load().description)

    def read(self, **options: Any) -> Any:
        return self.load().read(**options)

    def total_rows(self, **options: Any) -> int | None:
        total: int | None = self.load().total_rows(**options)
        return total

    def after_write(self, workbench: Any, table: str) -> None:
        """Let the source finish a written table (the pdf source builds its search index)."""
        finish = getattr(self.load(), "after_write", None)
        if callable(finish):
            finish(workbench, table)

    def __repr__(self) -> str:
        return f"<source {self.name}>"


@hookimpl
def register_sources() -> list[LazySource]:
    """files, sql, http, pdf and flights."""
    return [LazySource(name, target) for name, target in BUILTIN_SOURCES.items()]

"""The HTML rendering of an output notebook (nbconvert), imported only when a run finishes."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = ["render_html"]

_exporter: Any = None
_lock = threading.Lock()


def render_html(nb: NotebookNode) -> bytes:
    """The notebook as a standalone HTML page (the exporter is built once per process)."""
    global _exporter
    with _lock:
        if _exporter is None:
            from nbconvert import HTMLExporter

            _exporter = HTMLExporter(template_name="classic")  # type: ignore[no-untyped-call]
        body, _ = _exporter.from_notebook_node(nb)
    return str(body).encode("utf-8")

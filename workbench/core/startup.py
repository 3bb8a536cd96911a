"""What a Workbench process declines to import at start-up, and why.

``nbformat`` (every notebook run), ``jupyter_events`` (JupyterLab, Voila) and the OpenAPI
checks depend on ``jsonschema[format-nongpl]``, whose optional IRI format checker,
``rfc3987-syntax``, compiles some thirty Earley grammars when it is imported: about half a
second of every command that touches a notebook, on this project's 2-core machine a fifth of a
cold ``workbench run``. No schema Workbench or Jupyter validates uses the ``iri`` formats, so
Workbench's own processes (the command line and the services it starts) run as an
installation without that package would: jsonschema then simply has no ``iri`` checker
(python-jsonschema/jsonschema#1428 asks for the import to be lazy upstream).
"""

from __future__ import annotations

import sys

__all__ = ["SKIPPED_MODULES", "skip_slow_optional_imports"]

#: Optional modules other packages try to import and do without, skipped for their cost.
SKIPPED_MODULES = ("rfc3987_syntax",)


def skip_slow_optional_imports() -> None:
    """Make importing each of :data:`SKIPPED_MODULES` fail as if it were not installed
    (``None`` in ``sys.modules``), unless something imported it already."""
    for name in SKIPPED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]

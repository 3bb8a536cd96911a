"""What `workbench dashboards serve` does before importing Voila, to reach its first page fast.

jupyter_server (through jupyter_events) and nbformat import ``jsonschema``, whose format
checkers import ``rfc3987_syntax`` when it is installed. That module compiles a set of Earley
parsers at import time: one to several seconds of CPU (jupyter_server issue 1559, jsonschema
issue 1428), for the ``iri`` formats that no Jupyter or Voila schema uses. Marking it as
unavailable makes ``jsonschema`` skip those two format checks in this process only.
"""

from __future__ import annotations

import sys

__all__ = ["skip_slow_imports"]

#: Modules that only add start-up time to the dashboard server and its kernels.
SLOW_UNUSED = ("rfc3987_syntax",)


def skip_slow_imports() -> None:
    """Make the :data:`SLOW_UNUSED` modules unavailable, unless something imported them."""
    for name in SLOW_UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]

"""Which notebooks may run as the service: Workbench's own, read from the installed package.

In team mode every run executes as its owner. The one exception is a notebook shipped inside
the ``workbench`` package (the backup job's), which no user can change: a run of it that the
service itself queued (no owner) executes with the service's rights. Any other run without an
owner is refused.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["is_workbench_notebook"]

_PACKAGE = Path(__file__).resolve().parent.parent


def is_workbench_notebook(path: str | Path) -> bool:
    """Whether ``path`` (symlinks resolved) is a notebook inside the installed package."""
    resolved = Path(path).resolve()
    return resolved.suffix == ".ipynb" and resolved.is_relative_to(_PACKAGE)

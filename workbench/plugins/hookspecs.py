"""Every Workbench plugin hook: an empty function with a one-line docstring each.

Hook families: ``register_*`` contribute things (sources, notifiers, folders, commands),
``prepare_*`` adjust something Workbench made, ``run_*`` observe a run's lifecycle.
A plugin implements any of them with ``@workbench.hookimpl``. docs/plugins.md documents each
with its exact signature; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from workbench.core.config import Settings
    from workbench.plugins.events import RunEvent

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "workbench"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_sources() -> Sequence[Any]:
    """Return source objects (with ``name``, ``description`` and ``read(**options)``) for ingest."""


@hookspec
def register_notifiers(settings: Settings) -> Sequence[Any]:
    """Return notifier objects (with ``name`` and ``notify(event)``) told about finished runs."""


@hookspec
def register_notebook_dirs(settings: Settings) -> Sequence[Path]:
    """Return folders whose notebooks can be run and scheduled by name."""


@hookspec
def register_dashboard_dirs(settings: Settings) -> Sequence[Path]:
    """Return folders whose notebooks are served as dashboards."""


@hookspec
def prepare_connection(dbapi_connection: Any, dialect: str) -> None:
    """Adjust each new database connection (register SQL functions, set session options)."""


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add commands or command groups to the ``workbench`` command line."""


@hookspec
def run_queued(event: RunEvent) -> None:
    """Called when a run is queued."""


@hookspec
def run_started(event: RunEvent) -> None:
    """Called when a run starts executing in a kernel."""


@hookspec
def run_finished(event: RunEvent) -> None:
    """Called when a run succeeded."""


@hookspec
def run_failed(event: RunEvent) -> None:
    """Called when a run failed, timed out or was cancelled."""

"""Built-in notebook and dashboard folders: under the home, and the project's own."""

from __future__ import annotations

from pathlib import Path

from workbench.core.config import Settings
from workbench.plugins.hookspecs import hookimpl


def _existing(*candidates: Path) -> list[Path]:
    return [p for p in candidates if p.is_dir()]


@hookimpl
def register_notebook_dirs(settings: Settings) -> list[Path]:
    """`$WORKBENCH_HOME/notebooks` and `./notebooks`, where they exist."""
    return _existing(settings.home_path / "notebooks", Path.cwd() / "notebooks")


@hookimpl
def register_dashboard_dirs(settings: Settings) -> list[Path]:
    """`$WORKBENCH_HOME/dashboards` and `./dashboards`, where they exist."""
    return _existing(settings.home_path / "dashboards", Path.cwd() / "dashboards")

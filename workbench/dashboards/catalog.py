"""Which dashboards exist, what they are called and who may open them.

A dashboard is a notebook in one of the dashboard folders (the ``register_dashboard_dirs``
hook: ``$WORKBENCH_HOME/dashboards``, ``./dashboards`` and plugins'). Its metadata may say
``"workbench": {"title": ..., "description": ..., "roles": ["admin", "analyst"],
"pool_size": 1}``; without ``roles`` every signed-in account may open it, and ``pool_size``
overrides how many pre-heated kernels the server keeps ready for it. Several folders are
served as one through a folder of links, the first folder winning when two hold the same name.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.core.config import Settings
from workbench.core.roles import Role
from workbench.dashboards.errors import NoDashboardsError
from workbench.plugins.hookspecs import hookimpl

__all__ = ["Dashboard", "dashboard_folders", "find", "list_dashboards", "register_dashboard_dirs"]


@dataclass(frozen=True)
class Dashboard:
    name: str
    """The notebook's file name, its address under /voila/render/."""
    title: str
    description: str
    roles: frozenset[Role] | None
    """Roles that may open it; ``None``: every signed-in account."""
    pool_size: int | None = None
    """Pre-heated kernels to keep for it; ``None``: the server's default."""

    def allows(self, role: Role) -> bool:
        return self.roles is None or role in self.roles


@hookimpl
def register_dashboard_dirs(settings: Settings) -> list[Path]:
    """`$WORKBENCH_HOME/dashboards` and `./dashboards`, where they exist."""
    candidates = (settings.home_path / "dashboards", Path.cwd() / "dashboards")
    return [folder for folder in candidates if folder.is_dir()]


def dashboard_folders(settings: Settings, extra: list[Path] | None = None) -> list[Path]:
    """The folders to serve: ``extra`` first, then the registered ones."""
    from workbench.plugins.manager import get_plugins

    found = [p.resolve() for p in (extra or []) if p.is_dir()]
    for folder in get_plugins(settings).collect("register_dashboard_dirs", settings=settings):
        path = Path(folder).resolve()
        if path.is_dir() and path not in found:
            found.append(path)
    if extra and not found:
        raise NoDashboardsError(
            "None of the given dashboard folders exists: " + ", ".join(str(p) for p in extra)
        )
    if not found:
        raise NoDashboardsError()
    return found


def serving_root(folders: list[Path]) -> Path:
    """One folder to hand to Voila: the only one, or a temporary folder of links to all."""
    if len(folders) == 1:
        return folders[0]
    root = Path(tempfile.mkdtemp(prefix="workbench-dashboards-"))
    for folder in folders:
        for notebook in sorted(folder.glob("*.ipynb")):
            link = root / notebook.name
            if not link.exists():
                link.symlink_to(notebook)
    return root


def _read(path: Path) -> Dashboard:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    meta = data.get("metadata", {}).get("workbench", {}) if isinstance(data, dict) else {}
    roles = meta.get("roles")
    allowed = None
    if isinstance(roles, list):
        allowed = frozenset(Role(r) for r in roles if r in {x.value for x in Role})
    title = str(meta.get("title") or path.stem.replace("_", " ").capitalize())
    pool = meta.get("pool_size")
    pool_size = pool if isinstance(pool, int) and not isinstance(pool, bool) and pool >= 0 else None
    return Dashboard(path.name, title, str(meta.get("description") or ""), allowed, pool_size)


def list_dashboards(root: Path) -> list[Dashboard]:
    """Every dashboard in the serving folder, by title."""
    found = [_read(p) for p in root.glob("*.ipynb") if not p.name.startswith(".")]
    return sorted(found, key=lambda d: d.title.lower())


def find(root: Path, name: str) -> Dashboard | None:
    """The dashboard called ``name`` (a file directly in ``root``), if there is one."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = root / name
    return _read(path) if path.is_file() and path.suffix == ".ipynb" else None

"""Where run outputs live: a folder per run under a local path or any fsspec URL.

The default is ``$WORKBENCH_HOME/runs``; ``WORKBENCH_RUNS_STORAGE`` may name another folder or
URL (``s3://bucket/runs``). A run's folder is built by the service from that base and the run's
UUID (:func:`run_location`), never read from the run's row and never from parameter values,
so nothing a user writes can choose or escape the location.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from workbench.core.config import Settings
from workbench.core.errors import ConfigError
from workbench.runs.errors import StorageError

__all__ = [
    "HTML_NAME",
    "NOTEBOOK_NAME",
    "default_base",
    "read_output",
    "run_location",
    "write_output",
]

NOTEBOOK_NAME = "output.ipynb"
HTML_NAME = "output.html"
STORAGE_ENV = "WORKBENCH_RUNS_STORAGE"
_ALLOWED_NAMES = frozenset({NOTEBOOK_NAME, HTML_NAME})


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def default_base(settings: Settings, storage: str | None = None) -> str:
    """The folder or URL under which new runs store their outputs."""
    chosen = storage or os.environ.get(STORAGE_ENV)
    if not chosen:
        return str(settings.home_path / "runs")
    if _is_url(chosen):
        return chosen.rstrip("/")
    path = Path(chosen.removeprefix("file://")).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"{STORAGE_ENV} must be an absolute folder or a URL such as s3://...")
    return str(path)


def run_location(settings: Settings, run_id: uuid.UUID) -> str:
    """The folder or URL of run ``run_id``'s outputs: this process's base and the run's UUID."""
    if not isinstance(run_id, uuid.UUID):  # a parsed UUID only: no text can reach the path
        raise StorageError(f"{run_id!r} is not a run id.")
    return f"{default_base(settings)}/{run_id}"


def _target(location: str, name: str) -> str:
    if name not in _ALLOWED_NAMES:  # only our own fixed names, never user input
        raise StorageError(f"{name!r} is not a run output.")
    return f"{location.rstrip('/')}/{name}"


def _write_local(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600), creating its folders (0700) as needed.

    Run outputs belong to the owner of the folder they are stored under. A process running as
    root (a worker or dashboards server that starts kernels as another OS user) hands the
    folders and the file it creates to that owner, so the services running as the home's
    owner (schedulers, backups) can read them.
    """
    created = [p for p in (*reversed(path.parent.parents), path.parent) if not p.exists()]
    owner = (created[0].parent if created else path.parent).stat()
    for folder in created:  # one by one: mkdir(parents=True) gives parents the umask's mode
        folder.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    if os.geteuid() == 0 and owner.st_uid != 0:
        for item in (*created, path):
            os.chown(item, owner.st_uid, owner.st_gid, follow_symlinks=False)


def write_output(location: str, name: str, data: bytes) -> None:
    """Write one output file of a run (the folder is created as needed)."""
    target = _target(location, name)
    try:
        if not _is_url(location):
            _write_local(Path(target.removeprefix("file://")), data)
            return
        import fsspec

        with fsspec.open(target, "wb") as fh:
            fh.write(data)
    except (OSError, ValueError, ImportError) as exc:
        raise StorageError(f"Cannot write {target}: {exc}") from None


def read_output(location: str, name: str) -> bytes:
    """Read one output file of a run."""
    target = _target(location, name)
    try:
        if not _is_url(location):
            return Path(target.removeprefix("file://")).read_bytes()
        import fsspec

        with fsspec.open(target, "rb") as fh:
            data: bytes = fh.read()
            return data
    except FileNotFoundError:
        raise StorageError(f"{target} does not exist (the run may not have started).") from None
    except (OSError, ValueError, ImportError) as exc:
        raise StorageError(f"Cannot read {target}: {exc}") from None

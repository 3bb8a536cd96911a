"""System users for tests that run servers as someone else (JupyterHub's single-user servers):
created with a home, let through to the project's interpreter, removed afterwards. Root only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests import services


def require_root() -> None:
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("setfacl") is None:
        services.unavailable(
            "system users", "creating system users needs root, useradd and setfacl (acl)"
        )


def _closed_folders(paths: list[Path]) -> list[Path]:
    """The folders on the way to ``paths`` that others may not pass through."""
    closed: list[Path] = []
    for path in paths:
        for folder in reversed(path.parents):
            if not folder.stat().st_mode & 0o001 and folder not in closed:
                closed.append(folder)
    return closed


def interpreter_paths() -> list[Path]:
    """What a server started with this virtualenv's scripts needs to reach."""
    venv_python = Path(sys.executable).absolute()
    return [venv_python, venv_python.resolve(), Path(__file__).resolve()]


def create(name: str) -> None:
    """A login user ``name`` with a home of its own, who may pass (x, not list) through the
    folders on the way to this interpreter and the project."""
    subprocess.run(
        ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name],
        check=True,
        capture_output=True,
    )
    for folder in _closed_folders(interpreter_paths()):
        subprocess.run(["setfacl", "-m", f"u:{name}:x", str(folder)], check=True)


def remove(name: str) -> None:
    """End the user's processes, take back its passage and remove it with its home."""
    subprocess.run(["pkill", "-KILL", "-u", name], check=False, capture_output=True)
    for folder in _closed_folders(interpreter_paths()):
        subprocess.run(["setfacl", "-x", f"u:{name}", str(folder)], check=False)
    subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)

"""The Workbench home folder: embedded database, generated secret key and run outputs."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from workbench.core.config import Settings
from workbench.core.errors import ConfigError

__all__ = ["HomeLayout", "ensure_home", "ensure_secret_key", "generate_secret_key"]

SECRET_KEY_BYTES = 48


@dataclass(frozen=True)
class HomeLayout:
    root: Path
    runs: Path
    backups: Path


def generate_secret_key() -> str:
    """A fresh random key: 48 bytes of entropy, URL-safe (64 characters)."""
    return secrets.token_urlsafe(SECRET_KEY_BYTES)


def ensure_home(settings: Settings) -> HomeLayout:
    """Create the home folder (owner-only) and its sub-folders; safe to call again.

    An existing home open to others is made owner-only: it holds the secret key and run
    outputs, and kernels running as another OS user must not read it.
    """
    root = settings.home_path
    layout = HomeLayout(root=root, runs=root / "runs", backups=root / "backups")
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if root.stat().st_mode & 0o077:
            root.chmod(0o700)
        layout.runs.mkdir(mode=0o700, exist_ok=True)
        layout.backups.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the workbench home {root} ({exc.strerror or exc}); set "
            "WORKBENCH_HOME to a folder you can write."
        ) from None
    return layout


def ensure_secret_key(settings: Settings) -> bool:
    """Write a generated key to ``$WORKBENCH_HOME/secret_key`` (mode 0600) unless one exists.

    Returns True when a key was generated. A key configured through WORKBENCH_SECRET_KEY or
    WORKBENCH_SECRET_KEY_FILE is left alone, and an existing key file is never overwritten.
    """
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return False
    path = settings.secret_key_path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(generate_secret_key() + "\n")
    return True

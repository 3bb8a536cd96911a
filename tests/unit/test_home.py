from __future__ import annotations

import stat
from pathlib import Path

import pytest

from workbench.core.config import load_settings
from workbench.core.errors import ConfigError
from workbench.core.home import ensure_home, ensure_secret_key


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_is_private(isolated_env: Path) -> None:
    layout = ensure_home(load_settings())
    assert layout.root == isolated_env
    assert _mode(layout.root) == 0o700
    assert layout.runs.is_dir()
    assert layout.backups.is_dir()


def test_secret_key_is_generated_once_with_mode_0600(isolated_env: Path) -> None:
    settings = load_settings()
    ensure_home(settings)
    assert ensure_secret_key(settings) is True
    key_file = isolated_env / "secret_key"
    first = key_file.read_text()
    assert _mode(key_file) == 0o600
    assert len(first.strip().encode()) >= 32
    assert ensure_secret_key(settings) is False
    assert key_file.read_text() == first
    assert settings.effective_secret_key() == (first.strip(), str(key_file))


def test_loose_permissions_on_existing_key_are_tightened(isolated_env: Path) -> None:
    settings = load_settings()
    ensure_home(settings)
    key_file = isolated_env / "secret_key"
    key_file.write_text("k" * 64)
    key_file.chmod(0o644)
    ensure_secret_key(settings)
    assert _mode(key_file) == 0o600


def test_configured_key_is_not_replaced(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "configured-" + "q7" * 20)
    settings = load_settings()
    ensure_home(settings)
    assert ensure_secret_key(settings) is False
    assert not (isolated_env / "secret_key").exists()


def test_unwritable_home_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("WORKBENCH_HOME", str(blocker / "home"))
    with pytest.raises(ConfigError, match="WORKBENCH_HOME"):
        ensure_home(load_settings())

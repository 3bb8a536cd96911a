"""The kernel boundary settings: WORKBENCH_KERNEL_USER and WORKBENCH_KERNEL_BOUNDARY, the
production refusal without a boundary, the development warning, and a private home."""

from __future__ import annotations

import logging
import os
import pwd
import stat
from pathlib import Path

import pytest

from workbench.core.config import load_settings
from workbench.core.errors import ConfigError, InsecureConfigurationError
from workbench.core.home import ensure_home
from workbench.core.production import kernel_boundary_problem
from workbench.runs import sandbox
from workbench.runs.errors import KernelUserError

PG = "postgresql://workbench:Zq8-generated-Pw-4hT@db:5432/workbench"


@pytest.fixture(autouse=True)
def _not_warned_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_warned", False)


def test_settings_read_the_kernel_user_and_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().kernel_user is None
    assert load_settings().kernel_boundary == "host"
    monkeypatch.setenv("WORKBENCH_KERNEL_USER", "wbkernel")
    monkeypatch.setenv("WORKBENCH_KERNEL_BOUNDARY", "container")
    settings = load_settings()
    assert settings.kernel_user == "wbkernel"
    assert settings.kernel_boundary == "container"


def test_an_unknown_boundary_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_KERNEL_BOUNDARY", "chroot")
    with pytest.raises(ConfigError, match="WORKBENCH_KERNEL_BOUNDARY"):
        load_settings()


def test_no_kernel_user_is_none() -> None:
    assert sandbox.kernel_user(load_settings()) is None
    assert sandbox.kernel_user(load_settings(kernel_user="  ")) is None
    assert sandbox.popen_options(None) == {}


def test_an_unknown_kernel_user_is_refused_with_what_to_do() -> None:
    with pytest.raises(KernelUserError, match=r"no user of this machine.*useradd"):
        sandbox.kernel_user(load_settings(kernel_user="no-such-user-wb"))


@pytest.mark.parametrize("name", ["root", "0"])
def test_root_is_refused(name: str) -> None:
    with pytest.raises(KernelUserError, match="root"):
        sandbox.kernel_user(load_settings(kernel_user=name))


def test_the_services_own_user_is_refused() -> None:
    own = pwd.getpwuid(os.geteuid()).pw_name
    with pytest.raises(KernelUserError, match="unprivileged user") as caught:
        sandbox.kernel_user(load_settings(kernel_user=own))
    assert isinstance(caught.value, ConfigError)


def test_no_boundary_is_a_problem_in_team_mode_only() -> None:
    assert kernel_boundary_problem(load_settings()) is None  # embedded SQLite: single user
    problem = kernel_boundary_problem(load_settings(database_url=PG))
    assert problem is not None
    assert "WORKBENCH_KERNEL_USER" in problem and "WORKBENCH_KERNEL_BOUNDARY=container" in problem
    assert "Zq8" not in problem  # never the URL's password
    assert kernel_boundary_problem(load_settings(database_url=PG, kernel_user="x")) is None
    settings = load_settings(database_url=PG, kernel_boundary="container")
    assert kernel_boundary_problem(settings) is None


def test_production_team_mode_without_a_boundary_refuses_to_start() -> None:
    settings = load_settings(env="production", database_url=PG)
    with pytest.raises(InsecureConfigurationError, match=r"scheduler: .*WORKBENCH_KERNEL_USER"):
        sandbox.require_boundary(settings, "scheduler")
    container = load_settings(env="production", database_url=PG, kernel_boundary="container")
    sandbox.require_boundary(container, "scheduler")  # the deployment's containers
    sandbox.require_boundary(load_settings(env="production"), "scheduler")  # SQLite


def test_a_wrong_kernel_user_stops_the_start_in_any_environment() -> None:
    for env in ("development", "production"):
        settings = load_settings(env=env, database_url=PG, kernel_user="no-such-user-wb")
        with pytest.raises(KernelUserError):
            sandbox.require_boundary(settings, "worker")


def test_development_team_mode_without_a_boundary_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(database_url=PG)
    with caplog.at_level(logging.WARNING, logger="workbench.runs.sandbox"):
        sandbox.require_boundary(settings, "scheduler")
        sandbox.require_boundary(settings, "local worker")
        sandbox.require_boundary(load_settings(), "scheduler")  # SQLite: nothing to say
    warnings = [r for r in caplog.records if r.name == "workbench.runs.sandbox"]
    assert len(warnings) == 1
    assert "scheduler" in warnings[0].getMessage()
    assert "WORKBENCH_KERNEL_USER" in warnings[0].getMessage()


def test_an_existing_open_home_is_made_private(isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True)
    isolated_env.chmod(0o755)
    ensure_home(load_settings())
    assert stat.S_IMODE(isolated_env.stat().st_mode) == 0o700


def test_a_kernel_folder_without_a_user_is_private_and_removable() -> None:
    folder = sandbox.kernel_folder(None)
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert folder.stat().st_uid == os.geteuid()
        assert not folder.is_relative_to(load_settings().home_path)
        assert sandbox.user_env(None, folder) == {"HOME": str(folder)}
        (folder / "left-behind").write_text("x")
    finally:
        sandbox.remove_folder(folder)
    assert not folder.exists()

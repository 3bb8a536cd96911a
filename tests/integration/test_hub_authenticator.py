"""The hub's authenticator and spawner on real PostgreSQL, as JupyterHub calls them: refresh
refuses a disabled account, a spawned server's login file is its system user's alone and goes
when it stops, and a spawner configured to pass on the hub's secrets is refused.

The sign-in page itself, the spawn and what a kernel sees are driven in Chromium by
tests/e2e/test_hub_browser.py.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from tests.cli import run_cli
from tests.integration.test_dashboards_hostile import kernel_user_name
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import User
from workbench.hub.authenticator import (
    CREDENTIALS_VARIABLE,
    URL_VARIABLE,
    WorkbenchAuthenticator,
)
from workbench.hub.errors import HubSecretError
from workbench.hub.spawner import WorkbenchSpawner

pytestmark = pytest.mark.postgres


@pytest.fixture
def hub_env(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The hub's own environment (the service's key and login), with two analysts."""
    key = secrets.token_urlsafe(48)
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", key)
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", pg_url)
    bench = Workbench(load_settings(), pg_url)
    accounts.add_team("red", workbench=bench)
    accounts.add_team("blue", workbench=bench)
    passwords = {}
    for name, team in (("ada", "red"), ("bob", "blue")):
        passwords[name] = secrets.token_urlsafe(16)
        accounts.add_user(name, password=passwords[name], teams_=(team,), workbench=bench)
    yield passwords
    with bench.session() as session:
        made = [u.db_role for u in session.query(User) if u.db_role]
    bench.close()
    from tests.integration.test_rls_policies import _drop_roles

    _drop_roles(pg_url.rsplit("/", 1)[1], made)


@pytest.fixture
def authenticators() -> Iterator[list[WorkbenchAuthenticator]]:
    made: list[WorkbenchAuthenticator] = []
    yield made
    for authenticator in made:
        authenticator.close()


def _spawner(name: str, config: Config | None = None) -> Any:
    user = SimpleNamespace(name=name, escaped_name=name, url=f"/user/{name}/")
    return WorkbenchSpawner(user=user, config=config or Config())


def test_refresh_gives_teams_as_groups_and_refuses_a_disabled_account(
    hub_env: dict[str, str], authenticators: list[WorkbenchAuthenticator]
) -> None:
    authenticator = WorkbenchAuthenticator()
    authenticators.append(authenticator)
    ada = SimpleNamespace(name="ada")
    assert asyncio.run(authenticator.refresh_user(ada)) == {"name": "ada", "groups": ["red"]}
    accounts.disable_user("ada", workbench=authenticator.workbench)
    assert asyncio.run(authenticator.refresh_user(ada)) is False
    assert asyncio.run(authenticator.refresh_user(SimpleNamespace(name="nobody"))) is False


def test_a_servers_login_file_is_its_system_users_alone_and_goes_when_it_stops(
    hub_env: dict[str, str], tmp_path: Path, authenticators: list[WorkbenchAuthenticator]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("handing the file to another system user needs root")
    system = kernel_user_name()
    config = Config()
    config.WorkbenchSpawner.system_user_template = system
    authenticator = WorkbenchAuthenticator(credentials_dir=str(tmp_path / "logins"))
    authenticators.append(authenticator)
    spawner = _spawner("ada", config)
    asyncio.run(authenticator.pre_spawn_start(spawner.user, spawner))
    path = Path(spawner.environment[CREDENTIALS_VARIABLE])
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == pwd.getpwnam(system).pw_uid
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o711  # passable, not listable
    url = path.read_text()
    assert "ada" in url.split("@")[0] and url != hub_env["ada"]
    own = accounts.connection_url("ada", workbench=authenticator.workbench)
    assert url == own  # ada's own login, not the service's
    assert os.environ["WORKBENCH_DATABASE_URL"] not in url
    # The next spawn gets a new file; the old one is gone.
    asyncio.run(authenticator.pre_spawn_start(spawner.user, spawner))
    assert not path.exists()
    path = Path(spawner.environment[CREDENTIALS_VARIABLE])
    assert path.exists()
    given = [k for k in spawner.environment if k.startswith("WORKBENCH_")]
    assert given == [CREDENTIALS_VARIABLE]  # the hub's own settings stay in the hub
    assert spawner.user_env({})["USER"] == system  # the server's account, not the hub's name
    authenticator.post_spawn_stop(spawner.user, spawner)
    assert not path.exists()
    assert CREDENTIALS_VARIABLE not in spawner.environment


def test_a_container_spawners_server_gets_its_own_url_in_its_environment_only(
    hub_env: dict[str, str], authenticators: list[WorkbenchAuthenticator]
) -> None:
    """credentials = "environment" (KubeSpawner: the server is a pod of its own)."""
    authenticator = WorkbenchAuthenticator(credentials="environment")
    authenticators.append(authenticator)
    spawner = _spawner("bob")
    asyncio.run(authenticator.pre_spawn_start(spawner.user, spawner))
    own = accounts.connection_url("bob", workbench=authenticator.workbench)
    assert spawner.environment == {URL_VARIABLE: own}
    # A respawn is not mistaken for a secret of the hub's; a stop takes the login back.
    asyncio.run(authenticator.pre_spawn_start(spawner.user, spawner))
    assert spawner.environment == {URL_VARIABLE: own}
    authenticator.post_spawn_stop(spawner.user, spawner)
    assert spawner.environment == {}


def test_the_single_user_command_refuses_the_services_secrets(
    hub_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`workbench hub singleuser` (the spawner's command) checks its seat before starting:
    the hub's own settings are refused, whatever configuration passed them on."""
    key = os.environ["WORKBENCH_SECRET_KEY"]
    result = run_cli("hub", "singleuser", "--debug")
    assert result.code != 0 and "Traceback" not in result.output
    assert "master secret key" in result.stderr and key not in result.output
    monkeypatch.delenv("WORKBENCH_SECRET_KEY")
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "another-home"))  # no key file there
    result = run_cli("hub", "singleuser")
    assert result.code != 0 and "the service's login" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "setting",
    [
        ("env_keep", ["PATH", "WORKBENCH_DATABASE_URL"]),
        ("env_keep", ["PATH", "WORKBENCH_SECRET_KEY_FILE"]),
        ("environment", {"WORKBENCH_SECRET_KEY": "x" * 40}),
        ("environment", {"WORKBENCH_DATABASE_URL_FILE": "/etc/workbench/database_url"}),
    ],
    ids=["service url kept", "key file kept", "key given", "another login file given"],
)
def test_a_spawner_that_would_pass_on_a_secret_is_refused(
    hub_env: dict[str, str], setting: tuple[str, Any], tmp_path: Path
) -> None:
    name, value = setting
    config = Config()
    setattr(config.Spawner, name, value)
    authenticator = WorkbenchAuthenticator(credentials_dir=str(tmp_path / "logins"))
    spawner = _spawner("bob", config)
    with pytest.raises(HubSecretError, match="would be handed") as caught:
        asyncio.run(authenticator.pre_spawn_start(spawner.user, spawner))
    assert "x" * 40 not in str(caught.value)
    logins = tmp_path / "logins"
    assert not logins.exists() or not list(logins.iterdir())  # no login was written


def test_hub_config_loads_in_jupyterhubs_loader_and_holds_no_secret(
    hub_env: dict[str, str], tmp_path: Path
) -> None:
    proxy = tmp_path / "configurable-http-proxy"
    proxy.write_text("#!/bin/sh\n")
    target = tmp_path / "etc" / "jupyterhub_config.py"
    args = ("hub", "config", "--proxy", str(proxy), "--port", "8123", "--dashboards-port",
            "8866", "--scheduler", "--system-user", "wb-{username}")  # fmt: skip
    env = {"WORKBENCH_HOME": str(tmp_path / "home"), **os.environ}
    assert run_cli(*args, "--write", str(target), env=env).code == 0
    text = target.read_text()
    for secret in (os.environ["WORKBENCH_SECRET_KEY"], os.environ["WORKBENCH_DATABASE_URL"]):
        assert secret not in text
    again = run_cli(*args, "--write", str(target), env=env)
    assert again.code != 0 and "--force" in again.output and "Traceback" not in again.output
    config = PyFileConfigLoader(target.name, path=str(target.parent)).load_config()
    assert config.JupyterHub.authenticator_class == "workbench"
    assert config.JupyterHub.spawner_class == "workbench"
    assert config.JupyterHub.bind_url == "http://127.0.0.1:8123/"
    assert config.ConfigurableHTTPProxy.command == [str(proxy.resolve())]
    assert config.WorkbenchSpawner.system_user_template == "wb-{username}"
    services = {s["name"]: s for s in config.JupyterHub.services}
    assert services["workbench-dashboards"]["command"][-3:] == ["serve", "--port", "8866"]
    assert services["workbench-scheduler"]["command"][-1] == "scheduler"
    # The services (service processes) get the hub's settings when it starts; servers do not.
    assert (
        services["workbench-scheduler"]["environment"]["WORKBENCH_SECRET_KEY"]
        == (os.environ["WORKBENCH_SECRET_KEY"])
    )
    state = Path(config.JupyterHub.cookie_secret_file).parent
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert state == (tmp_path / "home" / "hub").resolve()


def test_hub_config_without_a_proxy_says_how_to_install_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env.update(PATH="/usr/bin:/bin", WORKBENCH_HOME=str(tmp_path / "home"))
    result = run_cli("hub", "config", "--proxy", str(tmp_path / "missing"), env=env)
    assert result.code != 0 and "Traceback" not in result.output
    assert "npm ci --prefix deploy/hub" in result.output


def test_in_production_the_analysts_seats_start_without_the_master_key(
    hub_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`workbench lab` and the hub's single-user server run without the key by design, so
    production asks them for everything but the key; the hub itself still needs it."""
    with Workbench(load_settings(), os.environ["WORKBENCH_DATABASE_URL"]) as service:
        own = accounts.connection_url("ada", workbench=service)
    monkeypatch.setenv("WORKBENCH_ENV", "production")
    # The hub, a service: refused without a strong key.
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "changeme")
    refused = run_cli("hub", "config", "--proxy", sys.executable)
    assert refused.code != 0 and "WORKBENCH_SECRET_KEY" in refused.stderr
    # The analyst's seats: their own login, no key anywhere.
    monkeypatch.delenv("WORKBENCH_SECRET_KEY")
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", own)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "analyst-home"))
    lab = run_cli("lab", "--help")
    assert lab.code == 0, lab.stderr
    server = run_cli("hub", "singleuser")
    assert "WORKBENCH_SECRET_KEY" not in server.stderr  # past the production check and the seat
    assert "JUPYTERHUB_SERVICE_URL" in server.stderr  # jupyterhub-singleuser itself started
    assert run_cli("hub", "config", "--proxy", sys.executable).code != 0  # the hub needs it

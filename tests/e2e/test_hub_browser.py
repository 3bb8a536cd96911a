"""JupyterHub with Workbench sign-in, in Chromium: analysts of two teams sign in, JupyterLab
opens on a server of their own system user, and a notebook cell sees its team's rows only.

The hub is `workbench hub config`'s file run by `workbench hub serve` (a real JupyterHub, as
root, its proxy from npm);
each analyst's server runs as their own system user. Tried from the analyst's side: the
server's and the kernel's environment hold no master key, no service login and no other
analyst's login; the key file, the hub's state and the other logins' folder cannot be read; a
disabled account and a viewer are refused at the door.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import system_users
from tests.cli import run_cli
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.world import World, free_port
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import load_settings

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

SPAWN_TIMEOUT_MS = 120_000


@dataclass
class Hub:
    base: str
    process: subprocess.Popen[bytes]
    log: Path
    key_file: Path
    state: Path
    analysts: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Team letter (or "disabled") -> (user name, password)."""
    logins: dict[str, str] = field(default_factory=dict)
    """User name -> their database password, as the service decrypts it."""


def _start(
    env: dict[str, str], config: Path, workdir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / "hub.log"
    workbench = str(Path(sys.executable).with_name("workbench"))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [workbench, "hub", "serve", "--config", str(config)], env=env, cwd=workdir, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return process, log


@pytest.fixture(scope="module")
def hub(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    system_users.require_root()
    workdir = tmp_path_factory.mktemp("hub")
    home = workdir / "home"
    home.mkdir(mode=0o700)
    key_file = home / "secret_key"
    key_file.write_text(world.env["WORKBENCH_SECRET_KEY"])
    key_file.chmod(0o600)
    env = {k: v for k, v in world.env.items() if k != "WORKBENCH_SECRET_KEY"}
    env.update(WORKBENCH_HOME=str(home), WORKBENCH_SECRET_KEY_FILE=str(key_file))
    settings = load_settings(secret_key=world.env["WORKBENCH_SECRET_KEY"], home=home)
    bench = Workbench(settings, world.url)
    prefix = world.viewers["a"][0].split("_")[0]
    analysts = {"a": world.viewers["analyst"]}
    for letter, team in (("b", f"{prefix}-b"), ("disabled", f"{prefix}-a")):
        name, password = f"{prefix}_hub_{letter}", secrets.token_urlsafe(16)
        account = accounts.add_user(
            name, role="analyst", password=password, teams_=(team,), workbench=bench
        )
        world.roles.append(str(account.user.db_role))
        analysts[letter] = (name, password)
    logins = {}
    for name, _ in analysts.values():
        url = accounts.connection_url(name, workbench=bench)
        logins[name] = str(httpx.URL(url.replace("postgresql+psycopg", "postgresql")).password)
    accounts.disable_user(analysts["disabled"][0], workbench=bench)
    bench.close()

    names = [name for name, _ in analysts.values()]
    for name in names:
        system_users.create(name)
    port = free_port()
    config = workdir / "jupyterhub_config.py"
    written = run_cli("hub", "config", "--write", str(config), "--port", str(port), env=env)
    assert written.code == 0, written.output
    process, log = _start(env, config, workdir)
    running = Hub(
        f"http://127.0.0.1:{port}", process, log, key_file, home / "hub", analysts, logins
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(running.base + "/hub/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for name in names:
            system_users.remove(name)


def _sign_in(page: Any, hub: Hub, name: str, password: str) -> None:
    page.goto(hub.base + "/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("#login_submit")


def _run_cell(page: Any, code: str, marker: str) -> str:
    """Type ``code`` into a new cell of the open notebook, run it, and return its output once
    ``marker`` (printed last) shows."""
    page.locator(".jp-NotebookPanel .jp-Cell .cm-content").last.click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for()
    output = page.locator(".jp-OutputArea-output", has_text=marker).last
    output.wait_for(timeout=60_000)
    return str(output.inner_text())


def _open_notebook(page: Any) -> None:
    page.locator(".jp-Launcher").first.wait_for(timeout=SPAWN_TIMEOUT_MS)
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.wait_for(timeout=60_000)
    # The kernel is ready once the status bar says it is idle.
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)


ROWS_CELL = (
    "import workbench as wb\n"
    "print('ORIGINS', ' '.join(sorted(wb.sql('SELECT DISTINCT origin FROM flights')['origin'])))"
)
ENV_CELL = (
    "import json, os\n"
    "server = open(f'/proc/{os.getppid()}/environ', 'rb').read().decode().split(chr(0))\n"
    "own = open(os.environ['WORKBENCH_DATABASE_URL_FILE']).read()\n"
    "print('ENVIRONMENTS', json.dumps({'kernel': dict(os.environ), 'server': server,"
    " 'whoami': os.getuid()}))\n"
    "print('OWN-LOGIN', own.split('@')[0].split('//')[1].split(':')[0], 'END')"
)


def _probe_cell(paths: list[str]) -> str:
    lines = ["import os", "for path in " + repr(paths) + ":"]
    lines += [
        "    try:",
        "        open(path).read() if os.path.isfile(path) else os.listdir(path)",
        "        print('READ', path)",
        "    except OSError as exc:",
        "        print('REFUSED', path, type(exc).__name__)",
    ]
    lines.append("print('PROBED')")
    return "\n".join(lines)


@pytest.mark.parametrize("team", ["a", "b"])
def test_an_analyst_signs_in_and_their_kernel_holds_their_own_login_only(
    hub: Hub, world: World, page: Any, team: str
) -> None:
    name, password = hub.analysts[team]
    _sign_in(page, hub, name, password)
    _open_notebook(page)
    assert f"/user/{name}/lab" in page.url
    # As in `workbench lab`: the seat fetches nothing from outside (no news feed).
    config = json.loads(page.locator("#jupyter-config-data").text_content())
    assert config["news"] == {"disabled": True}

    rows = _run_cell(page, ROWS_CELL, "ORIGINS")
    expected = sorted(world.rows_of(team)["origin"].unique())
    assert rows.split("ORIGINS", 1)[1].split() == expected  # its team's rows, no other's

    text = _run_cell(page, ENV_CELL, "OWN-LOGIN")
    found = re.search(r"ENVIRONMENTS (\{.*\})", text)
    assert found is not None, text
    environments = json.loads(found.group(1))
    everything = json.dumps(environments)
    assert environments["whoami"] != 0  # the server is not the hub's user
    assert "WORKBENCH_DATABASE_URL_FILE" in environments["kernel"]
    assert world.env["WORKBENCH_SECRET_KEY"] not in everything  # no master key
    assert str(hub.key_file) not in everything
    assert world.url not in everything  # no service login (its URL)
    for variable in ("WORKBENCH_SECRET_KEY", "WORKBENCH_DATABASE_URL", "WORKBENCH_HOME"):
        assert variable not in environments["kernel"], variable
    for other, login_password in hub.logins.items():
        if other != name:
            assert login_password not in everything and login_password not in text
    own = text.split("OWN-LOGIN", 1)[1].split()[0]
    assert own != "" and own not in world.url  # the analyst's own database login

    credentials = str(Path(environments["kernel"]["WORKBENCH_DATABASE_URL_FILE"]).parent)
    probe = _run_cell(
        page,
        _probe_cell([str(hub.key_file), str(hub.state), credentials, str(hub.log)]),
        "PROBED",
    )
    assert "READ" not in probe, probe
    assert probe.count("REFUSED") == 4, probe


def test_a_disabled_analyst_and_a_viewer_are_refused_at_the_door(
    hub: Hub, world: World, page: Any
) -> None:
    _sign_in(page, hub, *hub.analysts["disabled"])
    page.get_by_text("Wrong user name or password.").wait_for()
    assert "/hub/login" in page.url
    _sign_in(page, hub, hub.analysts["a"][0], "not-the-password-" + uuid.uuid4().hex)
    page.get_by_text("Wrong user name or password.").wait_for()
    _sign_in(page, hub, *world.viewers["b"])
    page.get_by_text("Your Workbench account opens dashboards only").wait_for()
    assert "/hub/login" in page.url


def _new_notebook(page: Any, hub: Hub, team: str) -> None:
    """Sign in as the analyst of ``team`` and open a new notebook in a reset workspace (their
    server, started by an earlier test, would bring its tabs back instead of the launcher)."""
    name, password = hub.analysts[team]
    _sign_in(page, hub, name, password)
    page.wait_for_url(f"**/user/{name}/lab**", timeout=SPAWN_TIMEOUT_MS)
    page.goto(f"{hub.base}/user/{name}/lab?reset")
    _open_notebook(page)


def _data_panel_item(page: Any, table: str) -> Any:
    """The Data panel's entry of ``table``, opened to its details."""
    page.locator(".jp-SideBar [title='Workbench data']").first.click()
    page.locator(".wb-Data .wb-Runs-bar button", has_text="Refresh").click()
    item = page.locator(f".wb-Data [data-table='{table}']")
    item.locator(".wb-Data-name").click()
    item.locator(".wb-Data-column").first.wait_for()
    return item


def test_an_analyst_shares_their_teams_table_from_the_data_panel(
    hub: Hub, world: World, page: Any
) -> None:
    """Team b's analyst writes a table and shares it with team a from the Data panel; team a's
    analyst then reads it, and cannot share it on: the database decides, not the page."""
    prefix = world.viewers["a"][0].split("_")[0]
    table = f"hub_shared_{uuid.uuid4().hex[:6]}"
    _new_notebook(page, hub, "b")
    write = f"import pandas as pd, workbench as wb\nwb.write(pd.DataFrame({{'x': [1, 2]}}), {table!r})\nprint('WROTE')"  # noqa: E501
    _run_cell(page, write, "WROTE")
    form = _data_panel_item(page, table).locator(".wb-Data-share")
    form.locator("input").fill(f"{prefix}-a")
    form.get_by_role("button", name="Share").click()
    form.get_by_text(f"Team {prefix}-a may read {table}.").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hub_data_share.png"))
    page.goto(hub.base + "/hub/logout")

    _new_notebook(page, hub, "a")
    read = f"import workbench as wb\nprint('SUM', int(wb.read_table({table!r})['x'].sum()))"
    assert _run_cell(page, read, "SUM").split("SUM", 1)[1].split() == ["3"]
    form = _data_panel_item(page, table).locator(".wb-Data-share")
    form.locator("input").fill(f"{prefix}-a")
    form.get_by_role("button", name="Share").click()
    refusal = form.locator(".wb-Form-error")
    refusal.get_by_text(f"Table '{table}' was not shared").wait_for()
    page.goto(hub.base + "/hub/logout")

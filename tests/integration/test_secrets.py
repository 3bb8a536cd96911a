"""Secrets by team, decrypted by the service and handed to the kernel: no key in any kernel.

Real PostgreSQL (teams A and B, an analyst of each, a viewer and an admin), the embedded
SQLite database, real kernels and the real `workbench` CLI in subprocesses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.cli import run_cli
from tests.integration.test_rls_policies import World, world  # noqa: F401 (fixture)
from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.db.identity_connect import user_database_url
from workbench.runs import secrets as store
from workbench.runs.api import queue_run, show
from workbench.runs.errors import SecretError, SecretNotFoundError
from workbench.runs.kernels import KernelPool, WarmKernel, kernel_env

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
A_TOKEN, B_TOKEN, SHARED, OVERRIDE = "tokA-7Qe9x", "tokB-3Kp2w", "shared-Vb81n", "mine-Zr55q"


def _team(world: World, letter: str) -> str:  # noqa: F811
    team = world.team_a if letter == "a" else world.team_b
    with world.bench.engine.connect() as conn:
        return str(conn.execute(text("SELECT name FROM teams WHERE id = :t"), {"t": team}).scalar())


def _login(world: World, name: str) -> Workbench:  # noqa: F811
    """The user's own workbench: their database login, no secret key."""
    url = user_database_url(world.settings, world.users[name], world.url)
    settings = world.settings.model_copy(update={"secret_key": None})
    return Workbench(settings, url.render_as_string(hide_password=False))


@pytest.fixture
def stored(world: World) -> World:  # noqa: F811
    """A's and B's token, a global one, and a global `override` that team A overrides."""
    store.set_secret(world.bench, "token", A_TOKEN, team=_team(world, "a"))
    store.set_secret(world.bench, "b_token", B_TOKEN, team=_team(world, "b"))
    store.set_secret(world.bench, "shared", SHARED)
    store.set_secret(world.bench, "override", "global-value")
    store.set_secret(world.bench, "override", OVERRIDE, team=_team(world, "a"))
    return world


def _refs(*names: str) -> dict[str, object]:
    return {"p": [f"secret:{n}" for n in names], "other": "plain", "n": 3}


def _message(exc: pytest.ExceptionInfo[SecretNotFoundError], name: str) -> str:
    return str(exc.value).replace(name, "NAME")


def test_values_for_run_are_exactly_the_referenced_permitted_ones(stored: World) -> None:
    values = store.values_for_run(
        stored.bench, _refs("token", "shared", "override"), team_id=stored.team_a
    )
    assert values == {"token": A_TOKEN, "shared": SHARED, "override": OVERRIDE}
    assert store.values_for_run(stored.bench, {"x": "secret:shared"}, team_id=stored.team_b) == {
        "shared": SHARED
    }
    assert store.values_for_run(stored.bench, {"x": "no secret", "y": 1}, team_id=None) == {}
    # A run of no team (Workbench's own notebooks) gets global secrets only.
    assert store.values_for_run(stored.bench, {"x": "secret:override"}, team_id=None) == {
        "override": "global-value"
    }


def test_another_teams_secret_is_refused_as_if_missing(stored: World) -> None:
    with pytest.raises(SecretNotFoundError) as forbidden:
        store.values_for_run(stored.bench, _refs("shared", "b_token"), team_id=stored.team_a)
    with pytest.raises(SecretNotFoundError) as missing:
        store.values_for_run(stored.bench, _refs("nowhere"), team_id=stored.team_a)
    assert _message(forbidden, "b_token") == _message(missing, "nowhere")
    for exc in (forbidden, missing):
        assert B_TOKEN not in str(exc.value) and SHARED not in str(exc.value)
    with pytest.raises(SecretNotFoundError) as no_team:
        store.values_for_run(stored.bench, {"x": "secret:token"}, team_id=None)
    assert _message(no_team, "token") == _message(missing, "nowhere")


def test_queue_run_checks_the_runs_team(stored: World) -> None:
    alice = _login(stored, "alice")
    try:
        run_id = queue_run(
            NOTEBOOKS / "uses_secret.ipynb", {"token": "secret:token"}, workbench=alice
        )
        assert show(run_id, workbench=alice).parameters == {"token": "secret:token"}
        queue_run(NOTEBOOKS / "uses_secret.ipynb", {"token": "secret:shared"}, workbench=alice)
        with pytest.raises(SecretNotFoundError) as forbidden:
            queue_run(NOTEBOOKS / "uses_secret.ipynb", {"token": "secret:b_token"}, workbench=alice)
        with pytest.raises(SecretNotFoundError) as missing:
            queue_run(NOTEBOOKS / "uses_secret.ipynb", {"token": "secret:nowhere"}, workbench=alice)
        assert _message(forbidden, "b_token") == _message(missing, "nowhere")
    finally:
        alice.close()
    # The service queues for an owner: the owner's team decides, as for the run itself.
    bob = stored.users["bob"].username
    notebook = NOTEBOOKS / "uses_secret.ipynb"
    queue_run(notebook, {"token": "secret:b_token"}, owner=bob, workbench=stored.bench)
    with pytest.raises(SecretNotFoundError):
        queue_run(notebook, {"token": "secret:token"}, owner=bob, workbench=stored.bench)


def test_a_job_naming_another_teams_secret_is_refused_when_saved(stored: World) -> None:
    """Before, the job was saved and every one of its runs failed at execution."""
    from workbench.scheduler import api as jobs

    notebook = str(NOTEBOOKS / "uses_secret.ipynb")
    alice = _login(stored, "alice")
    try:
        jobs.register("own", notebook, parameters={"token": "secret:token"}, workbench=alice)
        with pytest.raises(SecretNotFoundError):
            jobs.register(
                "theirs", notebook, parameters={"token": "secret:b_token"}, workbench=alice
            )
        assert [job.name for job in jobs.list_jobs(workbench=alice)] == ["own"]
    finally:
        alice.close()
    bob = stored.users["bob"].username
    with pytest.raises(SecretNotFoundError):
        jobs.register(
            "b_job", notebook, parameters={"token": "secret:token"}, owner=bob,
            workbench=stored.bench,
        )  # fmt: skip


def test_a_users_login_lists_names_only_and_sets_nothing(stored: World) -> None:
    for name, sees in (("alice", {"token", "override"}), ("vera", {"token", "override"})):
        bench = _login(stored, name)
        try:
            found = store.list_secrets(bench)
            assert {s.name for s in found if s.team_id is not None} == sees
            assert {s.name for s in found if s.team_id is None} == {"shared", "override"}
            assert all(s.team_id in (None, stored.team_a) for s in found)
            narrowed = store.list_secrets(bench, team=_team(stored, "a"))
            assert {(s.name, s.team) for s in narrowed if s.team_id} == {
                ("token", _team(stored, "a")),
                ("override", _team(stored, "a")),
            }
            with pytest.raises(SecretError, match="admin's act"):
                store.set_secret(bench, "token", "overwritten", team=_team(stored, "a"))
            with pytest.raises(SecretError, match="admin's act"):
                store.delete_secret(bench, "token", team=_team(stored, "a"))
            with pytest.raises(SecretError, match="not a member"):
                store.list_secrets(bench, team=_team(stored, "b"))
            with bench.engine.connect() as conn, pytest.raises(DBAPIError, match="permission"):
                conn.execute(text("SELECT value_encrypted FROM secrets"))
        finally:
            bench.close()
    everything = store.list_secrets(stored.bench)
    assert [(s.name, s.team) for s in everything] == [
        ("b_token", _team(stored, "b")),
        ("override", None),
        ("override", _team(stored, "a")),
        ("shared", None),
        ("token", _team(stored, "a")),
    ]
    store.delete_secret(stored.bench, "override", team=_team(stored, "a"))
    assert store.values_for_run(stored.bench, {"x": "secret:override"}, team_id=stored.team_a) == {
        "override": "global-value"
    }
    with pytest.raises(SecretNotFoundError):
        store.delete_secret(stored.bench, "override", team=_team(stored, "a"))
    with pytest.raises(SecretError, match="no team"):
        store.set_secret(stored.bench, "x", "v", team="no-such-team")


# -- the hand-over in a real kernel ----------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[KernelPool]:
    with KernelPool(0, env=kernel_env()) as kernels:
        yield kernels


def _printed(pool: KernelPool, kernel: WarmKernel, code: str) -> str:
    """What ``code`` printed in ``kernel`` (an error as ``Name: message``)."""
    seen: list[str] = []

    def hook(msg: dict[str, object]) -> None:
        content = msg["content"]
        assert isinstance(content, dict)
        if msg["msg_type"] == "stream":
            seen.append(str(content["text"]))
        elif msg["msg_type"] == "error":
            seen.append(f"{content['ename']}: {content['evalue']}")

    pool.call(kernel.client.execute_interactive(code, output_hook=hook, timeout=60))
    return "".join(seen)


def test_handed_values_resolve_in_the_kernel_without_key_or_database(
    pool: KernelPool, settings: Settings
) -> None:
    values = {"api_token": "v-" + "Xy7" * 8, "other.name-2": "quote ' and \" and \\ end"}
    code = store.hand_over_code(values)
    key, _ = settings.effective_secret_key()
    assert key is None or key not in code
    assert "WORKBENCH_" not in code and "postgresql" not in code
    kernel = pool.call(pool.acquire())
    try:
        names = "print(sorted(k for k in globals() if not k.startswith('_')))"
        before = _printed(pool, kernel, names)
        pool.call(kernel.run_silently(code))
        assert _printed(pool, kernel, names) == before  # nothing in the user namespace
        probe = (
            "import json, os\nfrom workbench.runs.secrets import resolve\n"
            "print(json.dumps({'values': [resolve('api_token'), resolve('other.name-2')],"
            " 'env': [k for k in os.environ if k.startswith('WORKBENCH_')],"
            " 'in_env': any(v in os.environ.values() for v in"
            " (resolve('api_token'), resolve('other.name-2')))}))"
        )
        seen = json.loads(_printed(pool, kernel, probe))
        assert seen == {"values": list(values.values()), "env": [], "in_env": False}
        refused = _printed(pool, kernel, "resolve('never_handed')")
        assert refused.startswith("SecretNotFoundError: Secret 'never_handed' was not handed")
        assert values["api_token"] not in refused
    finally:
        pool.call(kernel.discard())


def test_the_injected_cell_resolves_a_handed_reference(pool: KernelPool) -> None:
    from workbench.runs.notebook import render_injection

    cell = render_injection({"token": "secret:api_token", "tokens": ["secret:api_token", "x"]})
    assert "Q9-value" not in cell
    kernel = pool.call(pool.acquire())
    try:
        pool.call(kernel.run_silently(store.hand_over_code({"api_token": "Q9-value"})))
        _printed(pool, kernel, cell)
        assert _printed(pool, kernel, "print(token, tokens)") == "Q9-value ['Q9-value', 'x']\n"
    finally:
        pool.call(kernel.discard())


def test_hand_over_refuses_what_is_not_a_secret_name() -> None:
    with pytest.raises(SecretError):
        store.hand_over_code({"x'); import os; ('": "v"})


# -- the embedded database -------------------------------------------------------------------


def test_sqlite_secrets_are_global_and_handed_the_same_way(
    sqlite_url: str, settings: Settings
) -> None:
    settings = settings.model_copy(update={"secret_key": SecretStr("k" * 48)})
    with Workbench(settings, sqlite_url) as wb:
        store.set_secret(wb, "api_token", "sqlite-value")
        assert [(s.name, s.team) for s in store.list_secrets(wb)] == [("api_token", None)]
        with pytest.raises(SecretError, match="team mode"):
            store.set_secret(wb, "api_token", "v", team="red")
        assert store.values_for_run(wb, {"t": "secret:api_token"}, team_id=None) == {
            "api_token": "sqlite-value"
        }
        run_id = queue_run(
            NOTEBOOKS / "uses_secret.ipynb", {"token": "secret:api_token"}, workbench=wb
        )
        assert show(run_id, workbench=wb).parameters == {"token": "secret:api_token"}
        with pytest.raises(SecretNotFoundError):
            queue_run(NOTEBOOKS / "uses_secret.ipynb", {"token": "secret:nope"}, workbench=wb)


# -- the CLI ----------------------------------------------------------------------------------


def _table_rows(output: str) -> set[tuple[str, ...]]:
    rows = set()
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) == 2 and cells != ["name", "team"]:
            rows.add(tuple(cells))
    return rows


def test_cli_set_with_team_and_list_from_service_and_from_a_login(world: World) -> None:  # noqa: F811
    ensure_home(world.settings)
    key = world.settings.secret_key
    assert key is not None
    service = {"WORKBENCH_DATABASE_URL": world.url, "WORKBENCH_SECRET_KEY": key.get_secret_value()}
    a = _team(world, "a")
    for args, value in ((["cli_a", "--team", a], "cli-A-91x"), (["cli_global"], "cli-G-27y")):
        done = run_cli("secrets", "set", *args, "--value-file", _file(world, value), env=service)
        assert done.code == 0, done.output
        assert value not in done.output
    assert store.values_for_run(world.bench, {"x": "secret:cli_a"}, team_id=world.team_a) == {
        "cli_a": "cli-A-91x"
    }
    listed = run_cli("secrets", "list", env=service)
    assert listed.code == 0, listed.output
    assert _table_rows(listed.stdout) == {("cli_a", a), ("cli_global", "(global)")}
    alice_url = user_database_url(world.settings, world.users["alice"], world.url)
    alice = {"WORKBENCH_DATABASE_URL": alice_url.render_as_string(hide_password=False)}
    mine = run_cli("secrets", "list", env=alice)
    assert mine.code == 0, mine.output
    assert _table_rows(mine.stdout) == {
        ("cli_a", "(one of your teams)"),
        ("cli_global", "(global)"),
    }
    assert _table_rows(run_cli("secrets", "list", "--team", a, env=alice).stdout) == {
        ("cli_a", a),
        ("cli_global", "(global)"),
    }
    bob_url = user_database_url(world.settings, world.users["bob"], world.url)
    bob = {"WORKBENCH_DATABASE_URL": bob_url.render_as_string(hide_password=False)}
    assert _table_rows(run_cli("secrets", "list", env=bob).stdout) == {("cli_global", "(global)")}
    refused = run_cli(
        "secrets", "set", "cli_a", "--team", a, "--value-file", _file(world, "x"), env=alice
    )
    assert refused.code != 0
    assert "Traceback" not in refused.output
    deleted = run_cli("secrets", "delete", "cli_a", "--team", a, env=service)
    assert deleted.code == 0, deleted.output
    gone = run_cli("secrets", "delete", "cli_a", "--team", a, env=service)
    assert gone.code == 1 and "Traceback" not in gone.output


def _file(world: World, value: str) -> str:  # noqa: F811
    path = world.settings.home_path / f"value-{abs(hash(value))}"
    path.write_text(value + "\n", encoding="utf-8")
    return str(path)


def test_cli_on_sqlite_keeps_working(settings: Settings, sqlite_url: str) -> None:
    ensure_home(settings)
    ensure_secret_key(settings)
    env = {"WORKBENCH_DATABASE_URL": sqlite_url}
    path = settings.home_path / "v"
    path.write_text("sq-value", encoding="utf-8")
    assert run_cli("secrets", "set", "sq", "--value-file", str(path), env=env).code == 0
    assert _table_rows(run_cli("secrets", "list", env=env).stdout) == {("sq", "(global)")}
    teamed = run_cli("secrets", "set", "sq", "--team", "red", "--value-file", str(path), env=env)
    assert teamed.code == 1 and "team mode" in teamed.stderr and "Traceback" not in teamed.output

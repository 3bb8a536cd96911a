"""`workbench run`, `runs`, `notebooks` and `secrets` as a user types them (subprocesses)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run_cli
from workbench.app import Workbench
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.runs.api import queue_run
from workbench.runs.storage import HTML_NAME, NOTEBOOK_NAME

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


@pytest.fixture
def env(settings, db_url: str) -> dict[str, str]:
    ensure_home(settings)
    ensure_secret_key(settings)
    return {"WORKBENCH_DATABASE_URL": db_url}


def _run_id(output: str) -> str:
    match = re.search(r"run ([0-9a-f-]{36}) ", output)
    assert match, output
    return match.group(1)


def test_notebooks_params_prints_the_schema() -> None:
    table = run_cli("notebooks", "params", str(NOTEBOOKS / "typed_params.ipynb"))
    assert table.code == 0, table.output
    for text in ("carrier", "airline code", "datetime.date", "one of 'arrivals', 'departures'"):
        assert text in table.stdout
    as_json = run_cli("notebooks", "params", str(NOTEBOOKS / "typed_params.ipynb"), "--json")
    schema = json.loads(as_json.stdout)
    assert schema["properties"]["min_delay"] == {
        "type": "integer",
        "default": 15,
        "description": "minutes",
    }


def test_run_then_list_show_logs(env, settings) -> None:
    done = run_cli("run", str(NOTEBOOKS / "non_ascii_params.ipynb"), "-p", "city", "Köln", env=env)
    assert done.code == 0, done.output
    assert "succeeded" in done.stdout and "(cell 3 of 3)" in done.stdout
    run_id = _run_id(done.stdout)
    folder = settings.home_path / "runs" / run_id
    assert (folder / NOTEBOOK_NAME).is_file() and (folder / HTML_NAME).is_file()
    listed = run_cli("runs", "list", env=env)
    assert run_id in listed.stdout and "non_ascii_params" in listed.stdout
    shown = run_cli("runs", "show", run_id, env=env)
    assert shown.code == 0
    assert re.search(r"status\s+│?\s*succeeded", shown.stdout), shown.stdout
    assert '{"city": "Köln"}' in shown.stdout
    assert "cli" in shown.stdout  # triggered_by
    logs = run_cli("runs", "logs", run_id, env=env)
    assert "Köln" in logs.stdout


def test_failing_run_shows_the_cell_error_and_exits_non_zero(env) -> None:
    failed = run_cli("run", str(NOTEBOOKS / "fails_in_cell_2.ipynb"), env=env)
    assert failed.code == 1
    assert "failed" in failed.stdout
    assert "ValueError in cell 2" in failed.stderr
    assert "cell two fails on purpose" in failed.stderr
    assert "Traceback" not in failed.stderr.split("ValueError in cell 2")[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "x", "seven"], "'x' expects int, got a value of type str"),
        (["-p", "y", "1"], "Unknown parameter 'y'"),
        (["-p", "x"], "needs a name and a value"),
    ],
)
def test_bad_parameters_exit_2_without_a_traceback(env, args, message) -> None:
    result = run_cli("run", str(NOTEBOOKS / "trivial.ipynb"), *args, env=env)
    assert result.code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_secrets_by_reference(env, settings) -> None:
    value = "tok-cli-" + "Zq8" * 10
    stored = subprocess.run(
        [sys.executable, "-m", "workbench", "secrets", "set", "SERVICE_TOKEN"],
        input=value, capture_output=True, text=True, check=False,
        env={**__import__("os").environ, **env},
    )  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    assert value not in stored.stdout + stored.stderr
    assert "SERVICE_TOKEN" in run_cli("secrets", "list", env=env).stdout
    done = run_cli(
        "run", str(NOTEBOOKS / "uses_secret.ipynb"), "-p", "token", "secret:SERVICE_TOKEN", env=env
    )
    assert done.code == 0, done.output
    folder = settings.home_path / "runs" / _run_id(done.stdout)
    for path in folder.iterdir():
        assert value.encode() not in path.read_bytes()
    assert value not in done.output
    assert run_cli("secrets", "delete", "SERVICE_TOKEN", env=env).code == 0
    assert run_cli("secrets", "delete", "SERVICE_TOKEN", env=env).code == 1


def test_cancel_a_queued_run(env, settings, db_url) -> None:
    with Workbench(settings, db_url) as wb:
        run_id = str(queue_run(NOTEBOOKS / "trivial.ipynb", workbench=wb))
    first = run_cli("runs", "cancel", run_id, env=env)
    assert first.code == 0 and "cancelled" in first.stdout
    again = run_cli("runs", "cancel", run_id, env=env)
    assert again.code == 1 and "already finished" in again.stderr
    missing = run_cli("runs", "show", "not-a-uuid", env=env)
    assert missing.code == 1 and "is not a run id" in missing.stderr


def test_run_hands_over_to_a_warm_worker(env, settings) -> None:
    import os
    import signal
    import time

    from workbench.runs.serve import socket_path

    server = subprocess.Popen(
        [sys.executable, "-m", "workbench", "runs", "serve", "--kernels", "1"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        sock = socket_path(settings, env["WORKBENCH_DATABASE_URL"])
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sock.exists()
        assert sock.stat().st_mode & 0o077 == 0
        done = run_cli("run", str(NOTEBOOKS / "trivial.ipynb"), "-p", "x", "2", env=env)
        assert done.code == 0, done.output
        shown = run_cli("runs", "show", _run_id(done.stdout), env=env)
        assert f":{server.pid}:" in shown.stdout  # executed by the warm worker's process
        bad = run_cli("run", str(NOTEBOOKS / "trivial.ipynb"), "-p", "x", "two", env=env)
        assert bad.code == 2 and "'x' expects int" in bad.stderr
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert not sock.exists()

"""`workbench run`, `runs`, `notebooks` and `secrets` as a user types them (subprocesses)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services
from tests.cli import run_cli
from workbench.app import Workbench
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.runs.api import notebook_params, queue_run, show
from workbench.runs.storage import HTML_NAME, NOTEBOOK_NAME

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


@pytest.fixture
def env(settings, db_url: str) -> dict[str, str]:
    ensure_home(settings)
    ensure_secret_key(settings)
    return {"WORKBENCH_DATABASE_URL": db_url}


@pytest.fixture
def run_as(pg_owner: str | None) -> list[str]:
    """`workbench run` options naming the run's owner: the service's runs in team mode."""
    return ["--as", pg_owner] if pg_owner else []


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


def test_run_then_list_show_logs(run_as, env, settings) -> None:
    done = run_cli(
        "run", *run_as, str(NOTEBOOKS / "non_ascii_params.ipynb"), "-p", "city", "Köln", env=env
    )
    assert done.code == 0, done.output
    # The notebook has two cells; the injected parameters cell is never counted.
    assert "succeeded" in done.stdout and "(cell 2 of 2)" in done.stdout
    if not run_as:  # in a pipe no progress bar, not even its blank lines (team mode may warn)
        assert done.stderr == "", repr(done.stderr)
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


def test_failing_run_shows_the_cell_error_and_exits_non_zero(run_as, env) -> None:
    failed = run_cli("run", *run_as, str(NOTEBOOKS / "fails_in_cell_2.ipynb"), env=env)
    assert failed.code == 1
    assert "failed" in failed.stdout
    assert "ValueError in cell 2" in failed.stderr
    assert "cell two fails on purpose" in failed.stderr
    assert "Traceback" not in failed.stderr.split("ValueError in cell 2")[0]


def test_every_place_numbers_the_failing_cell_as_the_notebook_does(run_as, env, settings) -> None:
    """Cell 6 of 7 (markdown cells count, the injected parameters cell does not) in the
    outcome line, the error line, the stored record (which the dashboards show as
    `error_name: error_message`, the name once) and `runs logs`."""
    notebook = NOTEBOOKS / "fails_in_cell_6_after_markdown.ipynb"
    failed = run_cli("run", *run_as, str(notebook), "-p", "x", "2", env=env)
    assert failed.code == 1, failed.output
    assert "(cell 6 of 7)" in failed.stdout, failed.stdout
    assert "ValueError in cell 6: cell six fails on purpose" in failed.stderr, failed.stderr
    run_id = _run_id(failed.stdout)
    with Workbench(settings, env["WORKBENCH_DATABASE_URL"]) as wb:
        record = show(run_id, workbench=wb)
    assert (record.error_cell, record.progress_cell, record.progress_total) == (6, 6, 7)
    assert record.error_name == "ValueError"
    assert record.error_message == "cell six fails on purpose"  # not "ValueError: ..."
    logs = run_cli("runs", "logs", run_id, env=env)
    assert "[cell 4 stdout] step four ran 2" in logs.stdout, logs.stdout
    assert "[cell 6 error]" in logs.stdout and "[cell 5" not in logs.stdout
    listed = json.loads(run_cli("runs", "list", "--json", env=env).stdout)
    assert listed[0]["id"] == run_id and listed[0]["cells"] == "6/7"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "x", "seven"], "x: 'seven' is not a whole number (such as 15)."),
        (["-p", "x=seven"], "x: 'seven' is not a whole number (such as 15)."),
        (["-p", "y", "1"], "Unknown parameter 'y'"),
        (["-p", "x"], "-p x needs a value: write `-p NAME VALUE` or `-p NAME=VALUE`."),
        (["-p", "x", "--timeout", "5"], "-p x needs a value"),
        (["-f", "missing.yaml"], "Cannot read the parameters file missing.yaml"),
    ],
)
def test_bad_parameters_exit_2_without_a_traceback(run_as, env, args, message) -> None:
    result = run_cli("run", *run_as, str(NOTEBOOKS / "trivial.ipynb"), *args, env=env)
    assert result.code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_secrets_by_reference(run_as, env, settings) -> None:
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
        "run", *run_as, str(NOTEBOOKS / "uses_secret.ipynb"), "-p", "token",
        "secret:SERVICE_TOKEN", env=env,
    )  # fmt: skip
    assert done.code == 0, done.output
    folder = settings.home_path / "runs" / _run_id(done.stdout)
    for path in folder.iterdir():
        assert value.encode() not in path.read_bytes()
    assert value not in done.output
    assert run_cli("secrets", "delete", "SERVICE_TOKEN", env=env).code == 0
    assert run_cli("secrets", "delete", "SERVICE_TOKEN", env=env).code == 1


def test_cancel_a_queued_run(pg_owner: str | None, env, settings, db_url) -> None:
    with Workbench(settings, db_url) as wb:
        run_id = str(queue_run(NOTEBOOKS / "trivial.ipynb", owner=pg_owner, workbench=wb))
    first = run_cli("runs", "cancel", run_id, env=env)
    assert first.code == 0 and "cancelled" in first.stdout
    again = run_cli("runs", "cancel", run_id, env=env)
    assert again.code == 1 and "already finished" in again.stderr
    missing = run_cli("runs", "show", "not-a-uuid", env=env)
    assert missing.code == 1 and "is not a run id" in missing.stderr


def _worker_pid(wb_env: dict[str, str], settings, run_id: str) -> int:
    with Workbench(settings, wb_env["WORKBENCH_DATABASE_URL"]) as wb:
        worker = show(run_id, workbench=wb).worker or ""
    return int(worker.split(":")[1])


def test_the_first_run_starts_a_warm_worker_for_later_runs_which_exits_when_idle(
    run_as, env, settings
) -> None:
    import psutil

    from tests.runs_helpers import family, still_alive, wait_for
    from workbench.runs.serve import socket_path

    env = {**env, "WORKBENCH_WARM_WORKER_IDLE_SECONDS": "6"}
    trivial = str(NOTEBOOKS / "trivial.ipynb")
    first = run_cli("run", *run_as, trivial, "-p", "x", "1", env=env)
    assert first.code == 0, first.output
    assert "Started a warm worker for later runs" in first.stderr  # never a hidden process
    assert "exits after 6 s without a run" in first.stderr
    sock = socket_path(settings, env["WORKBENCH_DATABASE_URL"])
    wait_for(sock.exists, 60, "the warm worker's socket")
    assert sock.stat().st_mode & 0o077 == 0  # the owner's only
    # From the other side: the OS user run kernels run as cannot reach it.
    assert _connect_as(_kernel_user(), sock) == "PermissionError"
    second = run_cli("run", *run_as, trivial, "-p", "x", "2", env=env)
    assert second.code == 0, second.output
    assert "warm worker" not in second.stderr  # it went to the worker: nothing started
    pid = _worker_pid(env, settings, _run_id(second.stdout))
    assert pid != _worker_pid(env, settings, _run_id(first.stdout))
    server = psutil.Process(pid)
    assert "--background" in server.cmdline() and "serve" in server.cmdline()
    # One worker per database: a second one, started by hand, is refused in one line.
    again = run_cli("runs", "serve", env=env)
    assert again.code == 1 and "already serves this database" in again.stderr, again.output
    assert "Traceback" not in again.output
    descendants = family(pid)
    assert descendants, "the warm worker holds started kernels"
    assert server.is_running()  # it exits when idle, not when a refused second one tried
    wait_for(lambda: not server.is_running() or server.status() == psutil.STATUS_ZOMBIE, 60,
             "the idle warm worker to exit")  # fmt: skip
    assert not sock.exists()
    wait_for(lambda: not still_alive(descendants), 15, "the warm worker's kernels to end")
    # And then a run is run here again, and starts the next worker.
    third = run_cli("run", *run_as, trivial, "-p", "x", "3", env=env)
    assert third.code == 0, third.output
    wait_for(sock.exists, 60, "the next warm worker's socket")
    nxt = psutil.Process(_socket_owner(sock))
    nxt.terminate()
    nxt.wait(timeout=30)


CONNECT = """
import socket, sys
client = socket.socket(socket.AF_UNIX)
try:
    client.connect(sys.argv[1])
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


def _kernel_user() -> str:
    name = os.environ.get("WORKBENCH_TEST_KERNEL_USER")
    if not name:
        message = "WORKBENCH_TEST_KERNEL_USER names no kernel user (`.ci/run` makes wbkernel)"
        if services.in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return name


def _connect_as(user: str, sock: Path) -> str:
    """What connecting to ``sock`` as the OS user ``user`` gives: "connected" or the error."""
    done = subprocess.run(
        ["runuser", "-u", user, "--", sys.executable, "-c", CONNECT, str(sock)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.stdout.strip() or done.stderr


def _socket_owner(sock: Path) -> int:
    """The pid of the process listening on the Unix socket ``sock``."""
    import psutil

    for process in psutil.process_iter():
        try:
            if any(c.laddr == str(sock) for c in process.net_connections(kind="unix")):
                return process.pid
        except psutil.Error:
            continue
    raise AssertionError(f"nobody listens on {sock}")


def test_run_hands_over_to_a_warm_worker(run_as, env, settings) -> None:
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
        done = run_cli("run", *run_as, str(NOTEBOOKS / "trivial.ipynb"), "-p", "x", "2", env=env)
        assert done.code == 0, done.output
        shown = run_cli("runs", "show", _run_id(done.stdout), env=env)
        assert f":{server.pid}:" in shown.stdout  # executed by the warm worker's process
        bad = run_cli("run", *run_as, str(NOTEBOOKS / "trivial.ipynb"), "-p", "x", "two", env=env)
        assert bad.code == 2 and "x: 'two' is not a whole number" in bad.stderr
        # A name in a notebook folder is found before the request goes to the warm worker.
        folder = Path("notebooks")
        folder.mkdir()
        shutil.copy(NOTEBOOKS / "trivial.ipynb", folder / "warm_by_name.ipynb")
        by_name = run_cli("run", *run_as, "warm_by_name", "-p", "x", "3", env=env)
        assert by_name.code == 0, by_name.output
        with Workbench(settings, env["WORKBENCH_DATABASE_URL"]) as wb:
            run = show(_run_id(by_name.stdout), workbench=wb)
        assert run.notebook == str((folder / "warm_by_name.ipynb").resolve())
        assert f":{server.pid}:" in (run.worker or "")
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert not sock.exists()


def _notebook_folder(cwd: Path) -> Path:
    """``./notebooks`` (a built-in notebook folder) with two notebooks."""
    folder = cwd / "notebooks"
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "non_ascii_params.ipynb", folder / "city_report.ipynb")
    shutil.copy(NOTEBOOKS / "typed_params.ipynb", folder)
    return folder.resolve()


def test_a_notebook_is_run_by_its_name_in_a_notebook_folder(
    run_as, env, settings, tmp_path
) -> None:
    folder = _notebook_folder(tmp_path)
    done = run_cli("run", *run_as, "city_report", "-p", "city", "Köln", env=env)
    assert done.code == 0, done.output
    with Workbench(settings, env["WORKBENCH_DATABASE_URL"]) as wb:
        assert show(_run_id(done.stdout), workbench=wb).notebook == str(
            folder / "city_report.ipynb"
        )
    assert "Köln" in run_cli("runs", "logs", _run_id(done.stdout), env=env).stdout

    missing = run_cli("run", *run_as, "no_such_report", env=env)
    assert missing.code == 2, missing.output
    assert "'no_such_report' does not exist" in missing.stderr
    assert str(folder) in missing.stderr  # where it looked
    assert "workbench notebooks list" in missing.stderr
    assert "Traceback" not in missing.output


def test_an_existing_path_wins_over_the_notebook_folders(
    pg_owner: str | None, settings, db_url, tmp_path
) -> None:
    from workbench.scheduler.jobs import checked_parameters

    folder = _notebook_folder(tmp_path)
    shutil.copy(NOTEBOOKS / "trivial.ipynb", tmp_path / "city_report.ipynb")
    with Workbench(settings, db_url) as wb:
        here = queue_run("city_report.ipynb", owner=pg_owner, workbench=wb)
        assert show(here, workbench=wb).notebook == str((tmp_path / "city_report.ipynb").resolve())
        by_name = queue_run("typed_params", {"carrier": "DL"}, owner=pg_owner, workbench=wb)
        assert show(by_name, workbench=wb).notebook == str(folder / "typed_params.ipynb")
    # Jobs take notebooks the same way and store the found notebook's absolute path.
    path, values = checked_parameters("typed_params.ipynb", {"min_delay": 5})
    assert (path, values["min_delay"]) == (str(folder / "typed_params.ipynb"), 5)


def test_notebooks_list_shows_the_notebook_folders(settings, tmp_path) -> None:
    empty = run_cli("notebooks", "list")
    assert empty.code == 0, empty.output
    assert "No notebooks in the notebook folders" in empty.stdout
    assert json.loads(run_cli("notebooks", "list", "--json").stdout) == []

    folder = _notebook_folder(tmp_path)
    (folder / "broken.ipynb").write_text("not a notebook")
    home_folder = settings.home_path / "notebooks"
    home_folder.mkdir(parents=True)
    shutil.copy(NOTEBOOKS / "trivial.ipynb", home_folder)
    listed = run_cli("notebooks", "list", "--json")
    assert listed.code == 0, listed.output
    typed = len(notebook_params(NOTEBOOKS / "typed_params.ipynb").parameters)
    assert json.loads(listed.stdout) == [
        {"folder": str(home_folder.resolve()), "name": "trivial.ipynb", "parameters": 1},
        {"folder": str(folder), "name": "broken.ipynb", "parameters": None},
        {"folder": str(folder), "name": "city_report.ipynb", "parameters": 1},
        {"folder": str(folder), "name": "typed_params.ipynb", "parameters": typed},
    ]
    table = run_cli("notebooks", "list")
    assert table.code == 0, table.output
    for text in ("city_report.ipynb", "typed_params.ipynb", "unreadable", str(home_folder)):
        assert text in table.stdout
    # The names it lists are what `notebooks params` (and `run`) take.
    params = run_cli("notebooks", "params", "typed_params", "--json")
    assert params.code == 0, params.output
    assert "carrier" in json.loads(params.stdout)["properties"]


def test_parameters_from_a_file_and_the_command_line_in_either_spelling(
    run_as, env, tmp_path
) -> None:
    """`-f FILE` (YAML or JSON) gives values of their own types, `-p` wins over it, and
    `-p NAME VALUE` and `-p NAME=VALUE` mean the same, on `run` as on `jobs add`."""
    yaml_file = tmp_path / "params.yaml"
    yaml_file.write_text("start: 2013-02-01\nmin_delay: 5\ntags: [a, b]\ncarrier: DL\n")
    json_file = tmp_path / "params.json"
    json_file.write_text('{"min_delay": 7, "mode": "departures"}')
    notebook = str(NOTEBOOKS / "typed_params.ipynb")
    done = run_cli(
        "run", *run_as, notebook, "-f", str(yaml_file), "-p", "carrier", "AA",
        "-p", "label=night shift", env=env,
    )  # fmt: skip
    assert done.code == 0, done.output
    shown = run_cli("runs", "show", _run_id(done.stdout), env=env).stdout
    assert '"start": "2013-02-01"' in shown and '"min_delay": 5' in shown
    assert '"tags": ["a", "b"]' in shown and '"carrier": "AA"' in shown
    assert '"label": "night shift"' in shown
    from_json = run_cli("run", *run_as, notebook, "-f", str(json_file), env=env)
    assert from_json.code == 0, from_json.output
    shown = run_cli("runs", "show", _run_id(from_json.stdout), env=env).stdout
    assert '"min_delay": 7' in shown and '"mode": "departures"' in shown
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text("start: [2013\n")
    for name, words in (("list.yaml", "must hold a mapping"), ("broken.yaml", "not valid YAML")):
        refused = run_cli("run", *run_as, notebook, "-f", str(tmp_path / name), env=env)
        assert refused.code == 2 and words in refused.stderr, refused.output
        assert "Traceback" not in refused.output

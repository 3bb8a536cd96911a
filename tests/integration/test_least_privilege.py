"""A run executes as its owner: a hostile notebook scheduled by analyst A finds nothing else.

Real PostgreSQL, real kernels (as the unprivileged OS user of ``WORKBENCH_TEST_KERNEL_USER``
when there is one: `.ci/run` creates it), the real scheduler with the local process pool and
with real Celery workers on Redis. The notebook prints its whole environment, lists its home,
opens the service's key file and another run's folder by their paths, queries team B's table,
``users``, ``secrets``, ``audit_log`` and every run's results, reads the query cache's Redis
keys and asks for a secret its parameters did not reference. Then the output notebook, its
HTML, the run's record, the services' logs and every Redis value are searched for the master
key, the service's URL, B's login and password, B's rows and B's secret: none is there, and
the run still read A's rows and recorded its result.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import redis
from sqlalchemy import text

from tests import services
from tests.integration.test_rls_policies import World, world  # noqa: F401 (fixture)
from tests.runs_helpers import run_row, wait_for
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.core.home import ensure_home
from workbench.db import rls
from workbench.db.identity_connect import user_database_url
from workbench.db.models import RunStatus
from workbench.runs import secrets as stored_secrets
from workbench.runs import storage
from workbench.runs.results import results
from workbench.scheduler import api as jobs
from workbench.scheduler.executors import CeleryExecutor, LocalExecutor
from workbench.scheduler.service import run_scheduler

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
KERNEL_USER_ENV = "WORKBENCH_TEST_KERNEL_USER"

HOSTILE = r"""
import glob, json, os, pathlib
import workbench as wb
from workbench.runs.secrets import resolve

report = {"env": dict(os.environ), "uid": os.getuid()}
def attempt(name, fn):
    try:
        report[name] = fn()
    except Exception as exc:
        report[name] = f"refused: {type(exc).__name__}"

attempt("home", lambda: sorted(os.listdir(os.environ.get("HOME", "/"))))
attempt("key_file", lambda: pathlib.Path(SERVICE_KEY).read_text())
attempt("service_home", lambda: sorted(os.listdir(SERVICE_HOME)))
attempt("other_run", lambda: pathlib.Path(OTHER_RUN).read_text())
for table in ("b_ledger", "users", "secrets", "audit_log", "run_results"):
    attempt(table, lambda table=table: wb.sql(f"SELECT * FROM {table}").to_dict("records"))
attempt("b_secret", lambda: resolve("b_token"))
def redis_values():
    import redis
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    return [str(client.dump(k)) for k in client.scan_iter(count=1000)]
attempt("redis", redis_values)
print(json.dumps(report, default=str))
"""

READS_A = """
a_rows = wb.sql("SELECT * FROM a_ledger")
wb.record("a_rows", len(a_rows))
print("token was", token)
"""


@pytest.fixture
def kernel_user() -> str | None:
    """The OS user kernels run as in these tests; CI must have one (`.ci/run` makes it)."""
    name = os.environ.get(KERNEL_USER_ENV)
    if not name and os.environ.get("CI") == "true":
        pytest.fail(f"{KERNEL_USER_ENV} is not set: .ci/run creates the kernel user")
    return name or None


@pytest.fixture
def boundary_user(kernel_user: str | None) -> str:
    """The kernel user, for the tests whose promise needs the OS boundary: without one the
    kernel is the service's own OS user and reads its key file (development only, and the
    service warns), so those tests are skipped there, never in CI."""
    if not kernel_user:
        pytest.skip(
            f"needs an unprivileged kernel user: set {KERNEL_USER_ENV} (.ci/run creates "
            "wbkernel); without one a kernel is the service's OS user and reads its key file"
        )
    return kernel_user


@pytest.fixture
def public_folder() -> Iterator[Path]:
    """A folder the kernel user may read (pytest's own folders are root's, mode 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="wb-lp-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _hostile_notebook(folder: Path, service_home: Path, other_run: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('token = ""')
    params.metadata["tags"] = ["parameters"]
    paths = (
        f"SERVICE_KEY = {str(service_home / 'secret_key')!r}\n"
        f"SERVICE_HOME = {str(service_home)!r}\nOTHER_RUN = {str(other_run)!r}\n"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(paths + HOSTILE)]
    nb.cells.append(nbformat.v4.new_code_cell(READS_A))
    path = folder / "hostile.ipynb"
    nbformat.write(nb, path)
    path.chmod(0o644)
    return path


@pytest.fixture
def ledgers(world: World) -> dict[str, str]:  # noqa: F811
    """Team A's and team B's tables, each row marked, and a secret for each team."""
    marks = {"a": f"A-ROW-{uuid.uuid4().hex}", "b": f"B-ROW-{uuid.uuid4().hex}"}
    with world.bench.engine.begin() as conn:
        for letter, team in (("a", world.team_a), ("b", world.team_b)):
            conn.execute(text(f"CREATE TABLE {letter}_ledger (id serial PRIMARY KEY, mark text)"))
            rls.protect_table(conn, f"{letter}_ledger", team_id=team)
            for i in range(3):
                conn.execute(
                    text(f"INSERT INTO {letter}_ledger (mark) VALUES (:m)"),
                    {"m": f"{marks[letter]}-{i}"},
                )
    marks["a_token"] = "tokA-" + secrets.token_hex(16)
    marks["b_token"] = "tokB-" + secrets.token_hex(16)
    stored_secrets.set_secret(world.bench, "a_token", marks["a_token"], team=_team(world, "a"))
    stored_secrets.set_secret(world.bench, "b_token", marks["b_token"], team=_team(world, "b"))
    return marks


def _team(world: World, letter: str) -> str:  # noqa: F811
    with world.bench.engine.connect() as conn:
        team = world.team_a if letter == "a" else world.team_b
        return str(conn.execute(text("SELECT name FROM teams WHERE id = :t"), {"t": team}).scalar())


def _analyst(world: World, name: str) -> Workbench:  # noqa: F811
    """The analyst's own workbench: their login, no secret key."""
    url = user_database_url(world.settings, world.users[name], world.url)
    settings = world.settings.model_copy(update={"secret_key": None})
    return Workbench(settings, url.render_as_string(hide_password=False))


def _service_env(world: World, kernel_user: str | None) -> dict[str, str]:  # noqa: F811
    key = world.settings.secret_key
    assert key is not None
    env = {
        "WORKBENCH_DATABASE_URL": world.url,
        "WORKBENCH_SECRET_KEY": key.get_secret_value(),
        "WORKBENCH_HOME": str(world.settings.home_path),
    }
    if kernel_user:
        env["WORKBENCH_KERNEL_USER"] = kernel_user
    return env


@pytest.mark.parametrize("executor", ["local", "celery"])
def test_a_hostile_scheduled_run_reaches_nothing_but_its_owners_rights(
    world: World,  # noqa: F811
    ledgers: dict[str, str],
    boundary_user: str,
    public_folder: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    processes: list[subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
    executor: str,
) -> None:
    kernel_user = boundary_user
    # The service's home in a folder others may enter: only its own mode keeps kernels out.
    settings = world.settings.model_copy(update={"home": public_folder / "service-home"})
    home = ensure_home(settings).root
    key = settings.secret_key.get_secret_value()  # type: ignore[union-attr]
    (home / "secret_key").write_text(key)
    (home / "secret_key").chmod(0o600)
    other_run = home / "runs" / str(uuid.uuid4()) / storage.NOTEBOOK_NAME
    other_run.parent.mkdir(parents=True)
    other_run.write_text(f"another team's output {ledgers['b']}")
    notebook = _hostile_notebook(public_folder, home, other_run)
    env = _service_env(world, kernel_user) | {"WORKBENCH_HOME": str(home)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    alice = _analyst(world, "alice")
    jobs.register("hostile", str(notebook), parameters={"token": "secret:a_token"}, workbench=alice)
    run_id = jobs.trigger("hostile", workbench=alice)
    alice.close()

    service = Workbench(settings, world.url)
    logs = _execute_by_the_scheduler(service, executor, redis_url, monkeypatch, processes)
    wait_for(lambda: run_row(service, run_id).finished_at is not None, 180, "the hostile run")
    row = run_row(service, run_id)
    assert row.status is RunStatus.SUCCEEDED, (row.error_name, row.error_message)
    # The run still read A's rows and recorded its result.
    assert results(run_id, workbench=service) == {"a_rows": 3}

    location = storage.run_location(service.settings, run_id)
    output = storage.read_output(location, storage.NOTEBOOK_NAME).decode()
    html = storage.read_output(location, storage.HTML_NAME).decode()
    report = _report(output)
    assert report["env"].get("WORKBENCH_SECRET_KEY") is None
    assert "WORKBENCH_DATABASE_URL" in report["env"]  # its owner's own login, password hidden
    assert report["b_ledger"] == []  # row-level security: none of team B's rows
    for table in ("users", "secrets", "audit_log"):
        assert str(report[table]).startswith("refused"), table
    assert str(report["b_secret"]).startswith("refused")
    if kernel_user:
        assert report["uid"] != os.getuid()
        for what in ("key_file", "service_home", "other_run"):
            assert report[what] == "refused: PermissionError", what
    assert "token was ***" in output  # its own secret was handed, and hidden in the output

    redis_dump = _redis_everything(redis_url)
    haystack = "\n".join([output, html, json.dumps(_row_texts(row)), logs, redis_dump])
    b_login = user_database_url(world.settings, world.users["bob"], world.url)
    alice_login = user_database_url(world.settings, world.users["alice"], world.url)
    needles = {
        "master key": world.settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
        "service URL": world.url,
        "B's role": str(b_login.username),
        "B's password": str(b_login.password),
        "A's password": str(alice_login.password),
        "B's rows": ledgers["b"],
        "B's secret": ledgers["b_token"],
        "A's secret": ledgers["a_token"],
    }
    found = [what for what, needle in needles.items() if needle and needle in haystack]
    assert found == []
    _readers_of_the_finished_run(world, service, run_id)
    service.close()


def _readers_of_the_finished_run(
    world: World,  # noqa: F811
    service: Workbench,
    run_id: uuid.UUID,
) -> None:
    """Who reads the executed run: A's analyst, viewer and the admin do; B's analyst finds
    neither the run, its results, its output nor its job (not found, as if missing)."""
    from workbench.dashboards.auth import Account
    from workbench.dashboards.outputs import run_output_html
    from workbench.runs.api import runs as list_runs
    from workbench.runs.api import show
    from workbench.runs.errors import RunNotFoundError
    from workbench.scheduler.errors import JobNotFoundError

    expect = {"alice": True, "vera": True, "root": True, "bob": False}
    for name, sees in expect.items():
        user = world.users[name]
        bench = _analyst(world, name)
        try:
            listed = [r.id for r in list_runs(workbench=bench)]
            assert (run_id in listed) is sees, name
            if sees:
                assert show(run_id, workbench=bench).id == run_id
                assert results(run_id, workbench=bench) == {"a_rows": 3}, name
                assert "hostile" in [j.name for j in jobs.list_jobs(workbench=bench)], name
            else:
                with pytest.raises(RunNotFoundError):
                    show(run_id, workbench=bench)
                assert results(run_id, workbench=bench) == {}
                assert jobs.list_jobs(workbench=bench) == []
                with pytest.raises(JobNotFoundError):
                    jobs.trigger("hostile", workbench=bench)
        finally:
            bench.close()
        account = Account(str(user.id), user.username, user.role, True)
        page = run_output_html(service, account, run_id)
        # Outputs are for analysts and admins who see the run; viewers see dashboards.
        assert (page is not None) is (sees and name != "vera"), name


def _execute_by_the_scheduler(
    service: Workbench,
    executor: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    processes: list[subprocess.Popen[bytes]],
) -> str:
    """Start the scheduler (and for Celery a worker) until the queue is empty; their logs."""
    if executor == "celery":
        queue = f"wbtest-{uuid.uuid4().hex[:8]}"
        for name, value in {
            "WORKBENCH_CELERY_BROKER_URL": redis_url,
            "WORKBENCH_CELERY_QUEUE": queue,
            "WORKBENCH_EXECUTOR": "celery",
        }.items():
            monkeypatch.setenv(name, value)
        log = tempfile.TemporaryFile()  # noqa: SIM115 (read after the worker stops)
        worker = subprocess.Popen(
            [sys.executable, "-m", "workbench", "worker", "--concurrency", "1"],
            env=dict(os.environ),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        processes.append(worker)
        chosen: Any = CeleryExecutor(load_settings())
    else:
        log = None
        chosen = LocalExecutor(1)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_scheduler, args=(service, chosen), kwargs={"stop": stop, "poll_seconds": 0.2}
    )
    thread.start()
    try:
        wait_for(lambda: _queue_empty(service), 180, "the run to finish")
    finally:
        stop.set()
        thread.join(timeout=30)
        chosen.close()
    if log is None:
        return ""
    if processes and processes[-1].poll() is None:
        services.stop(processes[-1], 20)
    with log:
        log.seek(0)
        return log.read().decode(errors="replace")


def _queue_empty(service: Workbench) -> bool:
    with service.engine.connect() as conn:
        return not conn.execute(
            text("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
        ).scalar()


def _report(output_notebook: str) -> dict[str, Any]:
    nb = nbformat.reads(output_notebook, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text_out = out.get("text", "")
            if text_out.startswith("{"):
                report: dict[str, Any] = json.loads(text_out)
                return report
    raise AssertionError("the hostile cell printed no report")


def _row_texts(row: Any) -> dict[str, Any]:
    return {
        "error_message": row.error_message,
        "parameters": row.parameters,
        "output_uri": row.output_uri,
        "worker": row.worker,
    }


def _redis_everything(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    parts = []
    for key in client.scan_iter(count=1000):
        parts.append(str(key))
        dumped = client.dump(key)
        parts.append(dumped.decode("latin-1") if dumped else "")
    client.close()
    return "\n".join(parts)


# -- the threat model table of docs/security.md ----------------------------------------------

PROCESSES = {
    "CLI of an admin (on the server)",
    "CLI of an analyst",
    "scheduler",
    "executor",
    "the command line's warm worker (`workbench runs serve`, started by a `workbench run`)",
    "run kernel",
    "dashboards server",
    "dashboard kernel",
    "analyst's notebook server",
    "lab kernel",
    "hub (`workbench hub serve`, or `jupyterhub` with `workbench hub config`'s file)",
    "hub server (one analyst's, spawned by the hub)",
}
KERNELS = {
    "run kernel",
    "dashboard kernel",
    "analyst's notebook server",
    "lab kernel",
    "hub server (one analyst's, spawned by the hub)",
    "CLI of an analyst",
}


def _threat_table() -> dict[str, dict[str, str]]:
    text_ = DOCS.read_text(encoding="utf-8")
    start = text_.index("<!-- threat-model:")
    lines = text_[start:].splitlines()[1:]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows: dict[str, dict[str, str]] = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def test_the_threat_model_names_every_process_and_what_it_holds() -> None:
    table = _threat_table()
    assert set(table) == PROCESSES
    for process, row in table.items():
        assert set(row) == {"process", "master key", "service login", "a user's login",
                            "secret values", "why"}  # fmt: skip
        expected = "no" if process in KERNELS else "yes"
        assert row["master key"] == expected, process
        assert row["service login"] == expected, process
        assert row["why"], process


def test_the_run_kernel_row_is_what_a_run_holds(
    world: World,  # noqa: F811
    ledgers: dict[str, str],
    public_folder: Path,
    kernel_user: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The table's run kernel row, checked against a real run: only its owner's login and
    the secret its parameters name."""
    from workbench.runs.api import queue_run
    from workbench.runs.execute import execute_run
    from workbench.runs.kernels import KernelPool
    from workbench.runs.sandbox import kernel_user as resolve_kernel_user

    row = _threat_table()["run kernel"]
    assert (row["master key"], row["service login"]) == ("no", "no")
    assert row["a user's login"] == "its owner's own"
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('token = ""')
    params.metadata["tags"] = ["parameters"]
    probe = (
        "import os, json\nfrom workbench.runs.secrets import resolve\n"
        "def ok(f):\n    try:\n        f(); return True\n"
        "    except Exception:\n        return False\n"
        "print(json.dumps({'url': os.environ.get('WORKBENCH_DATABASE_URL', ''),"
        " 'key': 'WORKBENCH_SECRET_KEY' in os.environ,"
        " 'a': ok(lambda: resolve('a_token')), 'b': ok(lambda: resolve('b_token'))}))"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(probe)]
    path = public_folder / "probe.ipynb"
    nbformat.write(nb, path)
    path.chmod(0o644)
    if kernel_user:
        monkeypatch.setenv("WORKBENCH_KERNEL_USER", kernel_user)
    service = Workbench(world.settings, world.url)
    alice = _analyst(world, "alice")
    run_id = queue_run(path, {"token": "secret:a_token"}, workbench=alice)
    alice.close()
    with KernelPool(0, kernel_user=resolve_kernel_user(service.settings)) as pool:
        run = execute_run(run_id, workbench=service, kernels=pool)
    assert run.status is RunStatus.SUCCEEDED, run.error_message
    output = storage.read_output(run.output_uri or "", storage.NOTEBOOK_NAME).decode()
    seen = _report(output)
    owner = str(user_database_url(world.settings, world.users["alice"], world.url).username)
    assert f"://{owner}:***@" in seen["url"]  # the owner's login (its password hidden)
    assert seen["key"] is False
    assert (seen["a"], seen["b"]) == (True, False)
    service.close()


def _plain_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('ran')")]
    path = folder / "plain.ipynb"
    nbformat.write(nb, path)
    path.chmod(0o644)
    return path


def test_a_scheduled_run_of_a_disabled_owner_ends_refused(
    world: World,  # noqa: F811
    public_folder: Path,
) -> None:
    from workbench.accounts.api import disable_user
    from workbench.runs.execute import execute_run

    service = Workbench(world.settings, world.url)
    alice = world.users["alice"].username
    jobs.register("nightly", str(_plain_notebook(public_folder)), owner=alice, workbench=service)
    disable_user(alice, workbench=service)
    run = execute_run(jobs.trigger("nightly", workbench=service), workbench=service)
    assert run.status is RunStatus.REFUSED
    assert f"owner {alice!r} is disabled" in (run.error_message or "")
    assert "jobs transfer" in (run.error_message or "")
    service.close()


def test_an_unowned_row_is_refused_unless_it_is_workbenchs_own_notebook(
    world: World,  # noqa: F811
    public_folder: Path,
) -> None:
    """A queued row without an owner (only the service can write one) runs nothing in team
    mode, unless its notebook is one the installed package ships."""
    from workbench.runs.execute import execute_run

    service = Workbench(world.settings, world.url)
    run_id = uuid.uuid4()
    with service.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, notebook, parameters, status, triggered_by, queued_at,"
                " attempt, max_attempts, progress_cell, progress_total)"
                " VALUES (:i, :n, '{}', 'queued', 'api', now(), 0, 1, 0, 0)"
            ),
            {"i": run_id, "n": str(_plain_notebook(public_folder))},
        )
    run = execute_run(run_id, workbench=service)
    assert run.status is RunStatus.REFUSED
    assert "has no owner" in (run.error_message or "")
    assert run.started_at is not None and run.progress_cell == 0
    service.close()

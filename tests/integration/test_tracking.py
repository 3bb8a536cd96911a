"""Error tracking end to end: real commands and services, a local HTTP server as Sentry.

The DSN points at a server of the test (tests/fakesentry.py); every request it receives is
decoded and split into envelope items, and the raw bytes are searched for each configured
secret.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from sqlalchemy.engine import make_url

from tests.cli import run_cli
from tests.conftest import make_owner
from tests.fakesentry import assert_no_secret, dsn, events, raw_bytes, token
from tests.httpserver import LocalServer, local_server
from tests.runs_helpers import run_row, wait_for
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.db.models import RunStatus
from workbench.runs import records

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FAILING = str(NOTEBOOKS / "fails_in_cell_2.ipynb")


@pytest.fixture
def sentry() -> Iterator[LocalServer]:
    with local_server() as server:
        yield server


@pytest.fixture
def hook() -> Iterator[LocalServer]:
    """Where the webhook notifier posts (its token is one of the secrets)."""
    with local_server() as server:
        yield server


def _with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def _secret_notebook(path: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('token: str = ""', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('print("using", token)\nraise ValueError("refused " + token)'),
    ]
    nbformat.write(nb, path)
    return str(path)


def test_a_failed_run_sends_one_event_without_secrets(
    sentry: LocalServer, hook: LocalServer, settings: Any, db_url: str, tmp_path: Path
) -> None:
    ensure_home(settings)
    values = {
        "secret key": token("sk"),
        "Redis password": token("redispw"),
        "webhook token": token("hooktok"),
        "stored secret": token("tok-stored"),
    }
    url = db_url
    if url.startswith("postgresql"):  # the test cluster trusts local logins: any password
        values["database password"] = token("dbpw")
        url = _with_password(url, values["database password"])
    env = {
        "WORKBENCH_SENTRY_DSN": dsn(sentry),
        "WORKBENCH_SECRET_KEY": values["secret key"],
        "WORKBENCH_DATABASE_URL": url,
        "WORKBENCH_REDIS_URL": f"redis://:{values['Redis password']}@127.0.0.1:6379/15",
        "WORKBENCH_WEBHOOK_URL": f"{hook.url}/hooks/{values['webhook token']}",
    }
    stored = subprocess.run(
        [sys.executable, "-m", "workbench", "secrets", "set", "API_TOKEN"],
        input=values["stored secret"], capture_output=True, text=True, check=False,
        env={**os.environ, **env},
    )  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    assert sentry.received == []  # a command that succeeds sends nothing

    notebook = _secret_notebook(tmp_path / "refuses.ipynb")
    owner = []  # in team mode the service names the run's owner
    if url.startswith("postgresql"):
        owner = ["--as", make_owner(load_settings(secret_key=values["secret key"]), db_url)]
    failed = run_cli("run", *owner, notebook, "-p", "token", "secret:API_TOKEN", env=env)
    assert failed.code == 1, failed.output
    assert "ValueError in cell 2" in failed.stderr
    assert len(hook.received) == 1  # the webhook heard of it too

    (event,) = events(sentry)
    assert event["tags"]["notebook"] == notebook
    assert event["tags"]["job"] == "-"
    assert event["tags"]["attempt"] == "1"
    assert event["tags"]["error"] == "ValueError"
    assert event["tags"]["service"] == "cli"
    assert event["release"].startswith("workbench@")
    assert event["environment"] == "development"
    assert "breadcrumbs" not in event or not event["breadcrumbs"].get("values")
    assert "refused" not in json.dumps(event)  # no output, no error message
    assert_no_secret(sentry, values)


def test_only_the_last_attempt_of_a_retried_run_is_reported(
    sentry: LocalServer, settings: Any, sqlite_url: str, tmp_path: Path
) -> None:
    """A job with one retry, run by `workbench scheduler` and its local worker process."""
    ensure_home(settings)
    ensure_secret_key(settings)
    env = {"WORKBENCH_SENTRY_DSN": dsn(sentry), "WORKBENCH_DATABASE_URL": sqlite_url}
    added = run_cli(
        "jobs", "add", "flaky", FAILING, "--retries", "1", "--retry-delay", "0", env=env
    )
    assert added.code == 0, added.output
    assert run_cli("jobs", "trigger", "flaky", env=env).code == 0

    log = tmp_path / "scheduler.log"
    with log.open("wb") as out:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "workbench", "scheduler", "--workers", "1"],
            env={**os.environ, **env, "WORKBENCH_SCHEDULER_POLL_SECONDS": "0.2"},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    with Workbench(load_settings(), sqlite_url) as wb:
        (run,) = [r.id for r in records.list_runs(wb)]
        try:
            wait_for(
                lambda: run_row(wb, run).status is RunStatus.FAILED and bool(events(sentry)),
                120,
                "the second attempt to fail and be reported",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()}") from None
        finally:
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(timeout=60)
        assert run_row(wb, run).attempt == 2
    time.sleep(0.5)  # anything sent late would arrive now
    (event,) = events(sentry)
    assert (event["tags"]["job"], event["tags"]["attempt"]) == ("flaky", "2")
    assert event["tags"]["error"] == "ValueError"
    assert event["tags"]["service"] == "worker"  # sent by the local pool's worker process


def test_a_celery_worker_process_reports_the_failed_run(
    pg_owner: str | None,
    sentry: LocalServer,
    settings: Any,
    pg_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`workbench worker`: the forked process that ran the run reports it, once."""
    from workbench.scheduler import api as jobs
    from workbench.scheduler.executors import CeleryExecutor

    ensure_home(settings)
    ensure_secret_key(settings)
    env = {
        "WORKBENCH_SENTRY_DSN": dsn(sentry),
        "WORKBENCH_DATABASE_URL": pg_url,
        "WORKBENCH_CELERY_BROKER_URL": redis_url,
        "WORKBENCH_CELERY_QUEUE": f"wbtest-{secrets.token_hex(4)}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench",
            "worker",
            "--concurrency",
            "1",
            "--loglevel",
            "WARNING",
        ],
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        with Workbench(load_settings()) as wb:
            jobs.register("nightly", FAILING, owner=pg_owner, workbench=wb)
            run_id = jobs.trigger("nightly", workbench=wb)
            executor = CeleryExecutor(wb.settings)
            try:
                executor.send(run_id)
            finally:
                executor.close()
            wait_for(
                lambda: run_row(wb, run_id).status is RunStatus.FAILED and bool(events(sentry)),
                120,
                "the run to fail on the Celery worker and be reported",
            )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    (event,) = events(sentry)
    assert (event["tags"]["job"], event["tags"]["attempt"]) == ("nightly", "1")
    assert (event["tags"]["error"], event["tags"]["service"]) == ("ValueError", "worker")


CRASHER = '''\
import logging, os
from workbench.core.errors import ConfigError
from workbench.plugins.hookspecs import hookimpl

@hookimpl
def register_commands(app):
    @app.command("boom")
    def boom():
        """Fail the way a bug does."""
        secret = os.environ["WORKBENCH_SECRET_KEY"]
        logging.getLogger("workbench.crasher").info(
            "connecting to %s and %s",
            os.environ["WORKBENCH_DATABASE_URL"], os.environ["WORKBENCH_REDIS_URL"],
        )
        raise RuntimeError(f"bad state: {secret} at {os.environ['WORKBENCH_DATABASE_URL']}")

    @app.command("mistake")
    def mistake():
        """Fail the way a user's mistake does."""
        raise ConfigError("WORKBENCH_SOMETHING is wrong: fix it")
'''


@pytest.fixture
def crasher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed plugin with two commands that fail."""
    site = tmp_path / "site"
    info = site / "wb_crasher-0.0.1.dist-info"
    info.mkdir(parents=True)
    (site / "wb_crasher.py").write_text(CRASHER, encoding="utf-8")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wb-crasher\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[workbench]\ncrasher = wb_crasher\n")
    monkeypatch.setenv("WORKBENCH_PLUGINS", "crasher")
    return site


def test_an_unexpected_exception_is_reported_a_users_mistake_is_not(
    sentry: LocalServer, crasher: Path
) -> None:
    values = {
        "secret key": token("sk"),
        "database password": token("dbpw"),
        "Redis password": token("redispw"),
    }
    env = {
        "PYTHONPATH": str(crasher),
        "WORKBENCH_SENTRY_DSN": dsn(sentry),
        "WORKBENCH_SECRET_KEY": values["secret key"],
        "WORKBENCH_DATABASE_URL": f"postgresql://wb:{values['database password']}@db.invalid/wb",
        "WORKBENCH_REDIS_URL": f"redis://:{values['Redis password']}@127.0.0.1:6379/15",
        "WORKBENCH_LOG_LEVEL": "DEBUG",
    }
    mistake = run_cli("mistake", env=env)
    assert mistake.code != 0 and "WORKBENCH_SOMETHING is wrong" in mistake.stderr
    assert sentry.received == []

    boom = run_cli("boom", env=env)
    assert boom.code == 1 and "RuntimeError" in boom.stderr, boom.output
    (event,) = events(sentry)
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == "bad state: *** at ***"  # the key, and the whole secret URL
    frames = exception["stacktrace"]["frames"]
    assert frames and not any("vars" in frame for frame in frames)
    crumbs = [c.get("message", "") for c in event.get("breadcrumbs", {}).get("values", [])]
    assert "connecting to *** and ***" in crumbs, crumbs
    assert event["tags"]["service"] == "cli"
    assert "request" not in event and "ip_address" not in event.get("user", {})
    assert_no_secret(sentry, values)


def test_without_sentry_sdk_the_command_runs_and_says_so_once(
    sentry: LocalServer, tmp_path: Path, settings: Any, sqlite_url: str
) -> None:
    ensure_home(settings)
    ensure_secret_key(settings)
    hidden = tmp_path / "no-sentry"
    hidden.mkdir()
    (hidden / "sentry_sdk.py").write_text("raise ImportError(\"No module named 'sentry_sdk'\")\n")
    env = {
        "PYTHONPATH": str(hidden),
        "WORKBENCH_SENTRY_DSN": dsn(sentry),
        "WORKBENCH_DATABASE_URL": sqlite_url,
    }
    failed = run_cli("run", FAILING, env=env)
    assert failed.code == 1 and "ValueError in cell 2" in failed.stderr, failed.output
    assert failed.stderr.count("error tracking is off") == 1, failed.stderr
    assert "pip install 'workbench[sentry]'" in failed.stderr
    assert sentry.received == []


def test_without_a_dsn_sentry_is_not_even_imported(settings: Any) -> None:
    probe = (
        "import sys\n"
        "from workbench.cli.app import main\n"
        "try:\n    main(['plugins', 'list'])\nexcept SystemExit:\n    pass\n"
        "print('sentry_sdk' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "False", result.stdout


REQUEST_EVENT = """\
import json
import logging
import sys
import sentry_sdk
from workbench.core.config import load_settings
from workbench.ops.tracking import init_tracking

assert init_tracking(load_settings(), service="dashboards")
assert init_tracking(load_settings(), service="dashboards")  # again: the same client
webhook, password, private = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
line = f"GET /voila?q={private['query']} ({private['address']})"
try:
    raise KeyError("no such kernel")
except KeyError:  # as tornado logs a refused request, and a handler's uncaught exception
    logging.getLogger("tornado.general").warning("404 %s", line)
    logging.getLogger("tornado.application").error("Uncaught exception %s", line, exc_info=True)
sentry_sdk.add_breadcrumb(message="posting to " + webhook, data={"url": webhook})
sentry_sdk.capture_event({
    "message": "a handler failed",
    "level": "error",
    "request": {
        "url": "http://127.0.0.1/voila/render/kpis.ipynb", "method": "GET",
        "cookies": {"session": private["cookie"]},
        "headers": {"Authorization": private["header"]},
        "query_string": "q=" + private["query"],
        "env": {"REMOTE_ADDR": private["address"]},
        "data": private["body"],
    },
    "user": {"id": "u-1", "ip_address": private["address"]},
    "extra": {
        "nested": [{"target": webhook, "login": password}], password: "as a key", "count": "1",
    },
    "exception": {"values": [{"type": "E", "value": "x", "stacktrace": {"frames": [
        {"function": "handler", "vars": {"local": private["local"]}},
    ]}}]},
})
sentry_sdk.flush(timeout=10)
"""


def test_requests_users_and_frames_lose_their_private_fields(
    sentry: LocalServer, hook: LocalServer, tmp_path: Path
) -> None:
    """An event as a web framework would make one: only the safe fields leave the process."""
    secret, password = token("hooktok"), "pw"  # a short secret is masked where it is a value
    webhook = f"{hook.url}/hooks/{secret}?v=1&key={secret}"  # "1" is no secret on its own
    env = {
        **os.environ,
        "WORKBENCH_SENTRY_DSN": dsn(sentry),
        "WORKBENCH_WEBHOOK_URL": webhook,
        "WORKBENCH_REDIS_URL": f"redis://:{password}@127.0.0.1:6379/15",
    }
    private = {
        "cookie": "cookie-value-1",
        "header": "Bearer header-2",
        "query": "query-3",
        "address": "10.9.8.7",
        "body": "body-4",
        "local": "frame-var-5",
    }
    script = tmp_path / "request_event.py"
    script.write_text(REQUEST_EVENT, encoding="utf-8")
    subprocess.run(
        [sys.executable, str(script), webhook, password, json.dumps(private)],
        env=env,
        check=True,
        timeout=120,
    )
    logged, event = events(sentry)
    assert logged["logger"] == "tornado.application"
    assert logged["logentry"] == {"message": "Uncaught exception %s", "params": []}
    assert logged["exception"]["values"][0]["type"] == "KeyError"
    assert event["request"] == {"url": "http://127.0.0.1/voila/render/kpis.ipynb", "method": "GET"}
    assert event["user"] == {"id": "u-1"}
    assert "vars" not in event["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert event["extra"]["nested"] == [{"target": "***", "login": "***"}]
    assert event["extra"]["***"] == "as a key"
    (crumb,) = event["breadcrumbs"]["values"]  # not the web server's line
    assert crumb["message"] == "posting to ***" and crumb["data"] == {"url": "***"}
    assert event["tags"]["service"] == "dashboards"
    assert event["extra"]["count"] == "1"
    received = raw_bytes(sentry)
    for value in [secret, *private.values()]:
        assert value.encode() not in received, value


def test_doctor_masks_the_dsn_and_the_logs_never_hold_it(
    sentry: LocalServer, settings: Any, sqlite_url: str
) -> None:
    ensure_home(settings)
    ensure_secret_key(settings)
    address = dsn(sentry)
    env = {"WORKBENCH_SENTRY_DSN": address, "WORKBENCH_DATABASE_URL": sqlite_url}
    doctor = run_cli("doctor", env=env)
    (row,) = [line for line in doctor.stdout.splitlines() if "WORKBENCH_SENTRY_DSN" in line]
    assert "***" in row
    assert address not in doctor.output
    probe = (
        "import logging\n"
        "from workbench.core.config import load_settings\n"
        "from workbench.ops.logging import configure_logging\n"
        "configure_logging(load_settings())\n"
        f"logging.getLogger('workbench.probe').warning('sending to %s', {address!r})\n"
    )
    logged = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "sending to ***" in logged.stderr and address not in logged.stderr

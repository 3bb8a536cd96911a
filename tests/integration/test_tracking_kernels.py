"""No kernel sees anything of error tracking: run kernels, dashboard kernels, their spares.

The service runs with a DSN and with Sentry's own variables in its environment; a notebook
reports the names of its kernel's variables, as they are and as the process started with
(``/proc/self/environ``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.cli import run_cli
from tests.e2e.world import free_port
from tests.fakesentry import dsn
from tests.httpserver import LocalServer, local_server
from tests.runs_helpers import wait_for
from workbench.core.config import load_settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.ops.tracking import is_tracking_variable
from workbench.runs.kernels import kernel_env


@pytest.fixture
def sentry() -> Iterator[LocalServer]:
    with local_server() as server:
        yield server


ENV_NOTEBOOK_SOURCE = (
    "import json, os\n"
    "with open('/proc/self/environ', 'rb') as f:\n"
    "    initial = [e.split(b'=', 1)[0].decode() for e in f.read().split(b'\\0') if e]\n"
    "with open(out, 'w') as f:\n"
    "    json.dump({'environ': sorted(os.environ), 'initial': initial}, f)\n"
)


def _env_notebook(path: Path, first: Any) -> str:
    """A notebook that writes its kernel's variable names (now, and at its start) to ``out``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [first, nbformat.v4.new_code_cell(ENV_NOTEBOOK_SOURCE)]
    nbformat.write(nb, path)
    return str(path)


TRACKING_ENV = {
    "SENTRY_DSN": "http://public@127.0.0.1:9/2",
    "SENTRY_ENVIRONMENT": "leaky",
    "SUBPROCESS_SENTRY_TRACE": "0" * 32,
}


def _tracking_names(names: list[str]) -> list[str]:
    return [n for n in names if is_tracking_variable(n) or "SENTRY" in n.upper()]


def test_a_run_kernel_sees_no_sentry_variable(
    sentry: LocalServer, settings: Any, sqlite_url: str, tmp_path: Path
) -> None:
    ensure_home(settings)
    ensure_secret_key(settings)
    out = tmp_path / "environ.json"
    parameters = nbformat.v4.new_code_cell('out: str = ""', metadata={"tags": ["parameters"]})
    notebook = _env_notebook(tmp_path / "environ.ipynb", parameters)
    env = {
        **TRACKING_ENV,
        "WORKBENCH_SENTRY_DSN": dsn(sentry),
        "WORKBENCH_DATABASE_URL": sqlite_url,
    }
    done = run_cli("run", notebook, "-p", "out", str(out), env=env)
    assert done.code == 0, done.output
    seen = json.loads(out.read_text())
    assert "WORKBENCH_DATABASE_URL" in seen["environ"]  # what the run needs is there
    assert _tracking_names(seen["environ"]) == []
    assert _tracking_names(seen["initial"]) == []
    assert sentry.received == []  # a run that succeeds is no event


def test_kernel_env_holds_no_sentry_and_no_workbench_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dsn_file = tmp_path / "sentry_dsn"
    dsn_file.write_text("http://public@127.0.0.1:9/3\n")
    for name, value in {**TRACKING_ENV, "WORKBENCH_SENTRY_DSN_FILE": str(dsn_file)}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.sentry_dsn is not None
    assert settings.sentry_dsn.get_secret_value() == "http://public@127.0.0.1:9/3"
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:pw@127.0.0.1:6379/0")
    env = kernel_env()
    assert _tracking_names(list(env)) == []
    assert [name for name in env if name.startswith("WORKBENCH_")] == []
    assert "CELERY_BROKER_URL" not in env
    assert "PATH" in env


def test_a_dashboard_kernel_sees_no_sentry_variable(
    sentry: LocalServer, settings: Any, sqlite_url: str, tmp_path: Path
) -> None:
    ensure_home(settings)
    ensure_secret_key(settings)
    folder = tmp_path / "dashboards"
    folder.mkdir()
    out = tmp_path / "dashboard-environ.json"
    _env_notebook(folder / "environ.ipynb", nbformat.v4.new_code_cell(f"out = {str(out)!r}"))
    port = free_port()
    env = {
        **os.environ,
        **TRACKING_ENV,
        "WORKBENCH_SENTRY_DSN": dsn(sentry),
        "WORKBENCH_DATABASE_URL": sqlite_url,
    }
    log = tmp_path / "dashboards.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "workbench", "dashboards", "serve", "--port", str(port),
             "--pool-size", "1", "--folder", str(folder)],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # The pre-heated kernel runs the dashboard before any page asks for it.
        wait_for(lambda: out.is_file() and out.stat().st_size > 0, 120, "a pre-heated kernel")
        seen = json.loads(out.read_text())
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert "PATH" in seen["environ"]
    assert _tracking_names(seen["environ"]) == [], log.read_text()
    assert _tracking_names(seen["initial"]) == []

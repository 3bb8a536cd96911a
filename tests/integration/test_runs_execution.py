"""Notebook runs on real kernels, recorded in real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.db.models import Run as RunRow
from workbench.db.models import RunStatus
from workbench.runs import storage
from workbench.runs.api import Worker, cancel, latest_result, queue_run, results, run, show
from workbench.runs.errors import ParameterError, RunStateError, SecretNotFoundError
from workbench.runs.execute import MAX_CELL_OUTPUT_CHARS, execute_run
from workbench.runs.kernels import KernelPool
from workbench.runs.secrets import set_secret

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


@pytest.fixture
def wb(settings: Settings, db_url: str) -> Iterator[Workbench]:
    ensure_home(settings)
    ensure_secret_key(settings)
    bench = Workbench(settings, db_url)
    yield bench
    bench.close()


@pytest.fixture(scope="module")
def kernels() -> Iterator[KernelPool]:
    """Warm kernels shared by the tests here: each still serves exactly one run."""
    with KernelPool(2) as pool:
        yield pool


@pytest.fixture
def worker(wb: Workbench, kernels: KernelPool, pg_owner: str | None) -> Iterator[Worker]:
    with Worker(workbench=wb, kernels=kernels, owner=pg_owner) as w:
        yield w


def _output(run_record) -> tuple[bytes, bytes]:
    nb = storage.read_output(run_record.output_uri, storage.NOTEBOOK_NAME)
    html = storage.read_output(run_record.output_uri, storage.HTML_NAME)
    return nb, html


def test_trivial_run_is_recorded_completely(worker: Worker, wb: Workbench, settings) -> None:
    result = worker.run(NOTEBOOKS / "trivial.ipynb", x=21)
    assert result.status == RunStatus.SUCCEEDED, result.error_message
    assert result.parameters == {"x": 21}
    assert result.attempt == 1
    assert result.triggered_by == "api"
    assert result.queued_at <= result.started_at <= result.finished_at
    assert result.kernel_started_at is not None and result.kernel_started_at <= result.started_at
    # trivial.ipynb has two cells; the injected parameters cell is not counted.
    assert (result.progress_cell, result.progress_total) == (2, 2)
    assert result.error_name is None
    assert result.output_uri == str(settings.home_path / "runs" / str(result.id))
    nb, html = _output(result)
    doc = json.loads(nb)
    injected = doc["cells"][1]
    assert injected["metadata"]["tags"] == ["injected-parameters"]
    assert "".join(injected["source"]).strip().endswith("x = 21")
    assert doc["metadata"]["papermill"]["parameters"] == {"x": 21}
    assert b"<html" in html and b">21</span>" in html


def test_typed_and_non_ascii_parameters_reach_the_kernel(worker: Worker) -> None:
    result = worker.run(
        NOTEBOOKS / "typed_params.ipynb",
        carrier="Zürich 'x'\n\"", start="2014-02-03", min_delay=-2, mode="departures",
        tags=["a", "東京"],
    )  # fmt: skip
    assert result.ok, result.error_message
    text = json.loads(_output(result)[0])["cells"][-1]["outputs"][0]["text"]
    assert "".join(text).strip() == (
        "'Zürich \\'x\\'\\n\"' datetime.date(2014, 2, 3) -2 'departures' None ['a', '東京']"
    )
    other = worker.run(NOTEBOOKS / "non_ascii_params.ipynb", city="Ελλάδα — 🚀")
    assert other.ok
    printed = json.loads(_output(other)[0])["cells"][-1]["outputs"][0]["text"]
    assert "".join(printed) == "Ελλάδα — 🚀\n"


def test_bad_parameters_are_refused_before_anything_runs(wb: Workbench) -> None:
    with pytest.raises(ParameterError, match="Unknown parameter 'nope'"):
        run(NOTEBOOKS / "trivial.ipynb", nope=1, workbench=wb)
    with pytest.raises(ParameterError, match="'x' expects int, got a value of type str"):
        run(NOTEBOOKS / "trivial.ipynb", x="1", workbench=wb)
    with wb.session() as session:
        assert session.scalars(select(RunRow)).all() == []


@pytest.mark.parametrize(
    ("notebook", "timeout", "status", "name", "message", "cell"),
    [
        ("fails_in_cell_2", None, "failed", "ValueError", "cell two fails on purpose", 2),
        ("sleeps_past_timeout", 2, "timed_out", "RunTimeout", "passed its timeout of 2 s", 3),
        ("calls_sys_exit", None, "failed", "SystemExit", "called sys.exit(1) in cell 2", 2),
        ("kills_own_kernel", None, "failed", "KernelDied", "kernel died while running cell 2", 2),
    ],
)
def test_failure_notebooks_end_with_the_right_record(
    worker: Worker, notebook, timeout, status, name, message, cell
) -> None:
    started = time.monotonic()
    result = worker.run(NOTEBOOKS / f"{notebook}.ipynb", timeout=timeout)
    assert time.monotonic() - started < 20
    assert result.status.value == status
    assert result.error_name == name
    assert message in result.error_message
    assert result.error_cell == cell
    assert result.finished_at is not None
    assert json.loads(_output(result)[0])["metadata"]["papermill"]["status"] == status


def test_per_cell_timeout(worker: Worker) -> None:
    result = worker.run(NOTEBOOKS / "sleeps_past_timeout.ipynb", cell_timeout=1)
    assert result.status == RunStatus.TIMED_OUT
    assert result.error_name == "CellTimeout"
    assert result.error_cell == 3


def test_fifty_megabytes_of_output_are_truncated_and_the_run_kept(worker: Worker) -> None:
    result = worker.run(NOTEBOOKS / "prints_50mb.ipynb")
    assert result.ok, result.error_message
    nb, _ = _output(result)
    assert len(nb) < 3 * MAX_CELL_OUTPUT_CHARS
    cells = json.loads(nb)["cells"]
    assert "truncated" in "".join(cells[0]["outputs"][-1]["text"])
    assert "done" in "".join(cells[1]["outputs"][0]["text"])


def test_each_kernel_serves_one_run(worker: Worker) -> None:
    first = worker.run(NOTEBOOKS / "sets_a_variable.ipynb")
    second = worker.run(NOTEBOOKS / "sets_a_variable.ipynb")
    for result in (first, second):
        assert result.ok
        printed = json.loads(_output(result)[0])["cells"][0]["outputs"][0]["text"]
        assert "".join(printed) == "False\n"


def test_secret_value_never_leaves_the_kernel(worker: Worker, wb: Workbench, db_url) -> None:
    value = "tok-" + "s3cr3t-value-" * 3
    set_secret(wb, "API_TOKEN", value)
    with pytest.raises(SecretNotFoundError, match="MISSING"):
        worker.run(NOTEBOOKS / "uses_secret.ipynb", token="secret:MISSING")
    result = worker.run(NOTEBOOKS / "uses_secret.ipynb", token="secret:API_TOKEN")
    assert result.ok, result.error_message
    nb, html = _output(result)
    assert f"length {len(value)}".encode() in nb  # the kernel did see the value
    for blob in (nb, html, json.dumps(result.parameters, default=str).encode()):
        assert value.encode() not in blob
        assert b"s3cr3t" not in blob
    with wb.engine.connect() as conn:
        row = conn.execute(select(RunRow).where(RunRow.id == result.id)).one()
    assert "s3cr3t" not in repr(tuple(row))
    assert result.parameters == {"token": "secret:API_TOKEN"}


def test_recorded_results_read_back(worker: Worker, wb: Workbench) -> None:
    nb = NOTEBOOKS / "records_results.ipynb"
    first = worker.run(nb, carrier="DL", rate=0.5)
    second = worker.run(nb, rate=0.75)
    assert first.ok and second.ok, (first.error_message, second.error_message)
    got = results(first.id, workbench=wb)
    assert got["rate"] == 0.5 and got["count"] == 3
    pd.testing.assert_frame_equal(
        got["by_carrier"], pd.DataFrame({"carrier": ["DL", "AA"], "n": [1, 2]})
    )
    assert latest_result(nb, "rate", workbench=wb) == 0.75
    assert latest_result(nb, "rate", carrier="DL", workbench=wb) == 0.5
    assert latest_result(nb, "rate", carrier="UA", workbench=wb) == 0.75  # the default


def test_cancel_stops_a_running_notebook(
    worker: Worker, wb: Workbench, pg_owner: str | None
) -> None:
    run_id = queue_run(NOTEBOOKS / "sleeps_past_timeout.ipynb", owner=pg_owner, workbench=wb)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(run=worker.execute(run_id)))
    thread.start()
    deadline = time.monotonic() + 15
    while show(run_id, workbench=wb).progress_cell < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    cancelled = cancel(run_id, workbench=wb)
    assert cancelled.status == RunStatus.CANCELLED
    thread.join(timeout=10)
    assert not thread.is_alive()
    final = outcome["run"]
    assert final.status == RunStatus.CANCELLED
    assert final.error_message == "Cancelled on request while running cell 3."
    assert final.output_uri and storage.read_output(final.output_uri, storage.NOTEBOOK_NAME)
    with pytest.raises(RunStateError, match="already finished"):
        cancel(run_id, workbench=wb)


def test_execute_run_is_safe_for_a_finished_run(worker: Worker, wb: Workbench) -> None:
    done = worker.run(NOTEBOOKS / "trivial.ipynb")
    again = execute_run(done.id, workbench=wb, kernels=worker.kernels)
    assert again == show(done.id, workbench=wb)
    assert again.attempt == 1 and again.finished_at == done.finished_at


def test_outputs_go_to_an_fsspec_url(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_RUNS_STORAGE", "memory://wb-runs")  # the executor's base
    result = worker.run(NOTEBOOKS / "trivial.ipynb", x=4)
    assert result.ok
    assert result.output_uri == f"memory://wb-runs/{result.id}"
    assert b"injected-parameters" in _output(result)[0]

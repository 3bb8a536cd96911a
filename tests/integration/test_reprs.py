"""What a notebook shows for a Run, a Job and a table description: short, useful, no secret.

A repr fits on a line (under 200 characters) and names what a person needs at a glance; the
HTML repr is a small escaped table. Neither shows a run's token hash, a job's parameter values
or a password in an output URL. Real records from a real run and ``wb.jobs.register``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import workbench
from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.db.models import Job, Run, RunStatus
from workbench.runs.api import run
from workbench.scheduler import api as jobs

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
SHORT = 200


@pytest.fixture
def bench(settings: Settings, sqlite_url: str) -> Iterator[Workbench]:
    ensure_home(settings)
    ensure_secret_key(settings)
    with Workbench(settings, sqlite_url) as wb:
        yield wb


def _formats(value: object) -> dict[str, str]:
    """What Jupyter's display machinery makes of ``value`` (plain text and HTML)."""
    shell = InteractiveShell.instance()
    try:
        data, _ = shell.display_formatter.format(value)
    finally:
        InteractiveShell.clear_instance()
    return {k: str(v) for k, v in data.items()}


def test_a_failed_run_says_id_status_notebook_times_and_error(bench: Workbench) -> None:
    finished = run(NOTEBOOKS / "fails_in_cell_2.ipynb", workbench=bench)
    with bench.session() as session:
        record = session.get(Run, finished.id)
    assert record is not None and record.run_token_hash
    text = repr(record)
    assert len(text) < SHORT, text
    assert str(record.id) in text and "failed" in text and "fails_in_cell_2.ipynb" in text
    assert f"; ValueError in cell {record.error_cell}>" in text and "took" in text
    assert record.run_token_hash not in text
    shown = _formats(record)
    assert shown["text/plain"] == text
    page = shown["text/html"]
    assert f"ValueError in cell {record.error_cell}: cell two fails on purpose" in page
    assert page.count("ValueError") == 1 and str(record.id) in page
    assert str(NOTEBOOKS / "fails_in_cell_2.ipynb") in page
    assert record.run_token_hash not in page


def test_the_run_wb_run_returns_shows_the_same(bench: Workbench) -> None:
    finished = run(NOTEBOOKS / "trivial.ipynb", workbench=bench)
    with bench.session() as session:
        record = session.get(Run, finished.id)
    assert repr(finished) == repr(record) and len(repr(finished)) < SHORT
    assert _formats(finished)["text/html"] == record._repr_html_()


def test_a_run_hides_an_output_urls_password_and_escapes_html() -> None:
    now = datetime.now(UTC)
    record = Run(
        id=uuid.uuid4(),
        notebook="/srv/notebooks/<report>.ipynb",
        status=RunStatus.SUCCEEDED,
        queued_at=now,
        started_at=now,
        finished_at=now + timedelta(seconds=2.5),
        attempt=1,
        max_attempts=1,
        output_uri="s3://analyst:hunter2-password@bucket/runs/1",
        run_token_hash="f" * 64,
    )
    text, page = repr(record), record._repr_html_()
    assert "took 2.5 s" in text and "succeeded" in text and len(text) < SHORT
    assert "hunter2" not in text + page and "f" * 64 not in text + page
    assert "&lt;report&gt;.ipynb" in page and "<report>" not in page


def test_a_run_recorded_with_its_errors_name_in_the_message_shows_it_once() -> None:
    record = Run(
        id=uuid.uuid4(),
        notebook="a.ipynb",
        status=RunStatus.FAILED,
        error_name="KeyError",
        error_message="KeyError: 'carrier'",
    )
    assert repr(record).endswith("; KeyError>")
    page = record._repr_html_()
    assert "KeyError: &#x27;carrier&#x27;" in page and page.count("KeyError") == 1


def test_a_job_says_name_notebook_schedule_and_next_run_not_its_parameters(
    bench: Workbench,
) -> None:
    bench.sql("select 1")  # the schema is there
    job = jobs.register(
        "daily-kpis",
        NOTEBOOKS / "typed_params.ipynb",
        schedule="0 6 * * *",
        timezone="America/New_York",
        parameters={"carrier": "UA-value-not-shown"},
        workbench=bench,
    )
    text = repr(job)
    assert text.startswith("<Job daily-kpis typed_params.ipynb '0 6 * * *' America/New_York")
    assert "next " in text and ("EST" in text or "EDT" in text), text
    assert "UA-value-not-shown" not in text and len(text) < SHORT
    page = _formats(job)["text/html"]
    assert "carrier" in page and "UA-value-not-shown" not in page and "0 6 * * *" in page
    assert "object at 0x" not in text
    assert repr(Job(name="adhoc", notebook="a.ipynb")) == "<Job adhoc a.ipynb on demand>"


def test_a_wide_tables_description_fits_a_line(bench: Workbench) -> None:
    frame = pd.DataFrame({f"column_with_a_long_name_{i}": [i, i + 1] for i in range(30)})
    bench.write(frame, "wide")
    description = bench.describe("wide")
    text = repr(description)
    assert len(text) < SHORT, text
    assert "wide" in text and "2 rows" in text and "30 columns" in text
    assert "column_with_a_long_name_0" in text and "+27 more" in text
    assert "column_with_a_long_name_29" in _formats(description)["text/html"]


def test_the_facade_returns_the_same_short_reprs(bench: Workbench, sqlite_url: str) -> None:
    """``wb.describe`` and ``wb.jobs.register`` (the public names) give these objects."""
    bench.write(pd.DataFrame({"a": [1]}), "small")
    workbench.close()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("WORKBENCH_DATABASE_URL", sqlite_url)
            assert repr(workbench.describe("small")).startswith("<TableDescription small: 1 row,")
            job = workbench.jobs.register("adhoc", NOTEBOOKS / "trivial.ipynb")
            assert repr(job) == "<Job adhoc trivial.ipynb on demand>"
    finally:
        workbench.close()

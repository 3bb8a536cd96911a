"""A run's outputs: where the service puts them, and never a secret the run was handed.

Before, a cell raising on a `secret:` value (``int(token)``) put the value in the run's
``error_message``, so `runs show`, `runs logs` and the output notebook showed it; the output
location was read from the run's row, so a row pointing elsewhere was written and served
there, and a job's runs had no location at all (``/output.ipynb``).
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import nbformat
import pytest
from sqlalchemy import text

from tests.cli import run_cli
from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.dashboards.auth import Account
from workbench.dashboards.outputs import run_output_html
from workbench.db.models import Role, RunStatus
from workbench.runs import storage
from workbench.runs.api import queue_run
from workbench.runs.errors import StorageError
from workbench.runs.execute import execute_run
from workbench.runs.secrets import set_secret
from workbench.scheduler import api as jobs


def _notebook(folder: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('token = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    path = folder / "nb.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def bench(settings: Settings, sqlite_url: str) -> Workbench:
    ensure_home(settings)
    ensure_secret_key(settings)
    return Workbench(settings, sqlite_url)


def test_a_secret_a_cell_raises_on_is_hidden_everywhere(
    bench: Workbench, settings: Settings, sqlite_url: str, tmp_path: Path
) -> None:
    value = "not-a-number-" + secrets.token_hex(12)
    set_secret(bench, "NUM_TOKEN", value)
    notebook = _notebook(tmp_path, "print('the token is', token)\nint(token)")
    run_id = queue_run(notebook, {"token": "secret:NUM_TOKEN"}, workbench=bench)
    run = execute_run(run_id, workbench=bench)
    assert run.status is RunStatus.FAILED
    assert run.error_name == "ValueError"
    assert "***" in (run.error_message or "")
    assert value not in (run.error_message or "")
    location = storage.run_location(settings, run.id)
    for name in (storage.NOTEBOOK_NAME, storage.HTML_NAME):
        stored = storage.read_output(location, name)
        assert value.encode() not in stored, name
        assert b"***" in stored
    env = {"WORKBENCH_DATABASE_URL": sqlite_url}
    for command in ("show", "logs"):
        shown = run_cli("runs", command, str(run.id), env=env)
        assert shown.code == 0, shown.output
        assert value not in shown.output, command
        assert "ValueError" in shown.output
    bench.close()


def test_a_jobs_run_writes_under_the_storage_base(
    bench: Workbench, settings: Settings, tmp_path: Path
) -> None:
    def at_the_root() -> list[tuple[str, float]]:  # what code before this fix wrote there
        found = [Path("/output.ipynb"), Path("/output.html")]
        return [(str(p), p.stat().st_mtime) for p in found if p.exists()]

    before = at_the_root()
    notebook = _notebook(tmp_path, "print('hello', token)")
    jobs.register("hello", str(notebook), parameters={"token": "x"}, workbench=bench)
    run = execute_run(jobs.trigger("hello", workbench=bench), workbench=bench)
    assert run.status is RunStatus.SUCCEEDED, run.error_message
    expected = f"{settings.home_path / 'runs'}/{run.id}"
    assert run.output_uri == expected
    assert (Path(expected) / storage.NOTEBOOK_NAME).is_file()
    assert at_the_root() == before  # nothing written (or rewritten) at the root
    bench.close()


def test_outputs_are_served_from_where_the_service_put_them_not_the_row(
    bench: Workbench, settings: Settings, tmp_path: Path
) -> None:
    notebook = _notebook(tmp_path, "print('mine', token)")
    run = execute_run(queue_run(notebook, {"token": "own"}, workbench=bench), workbench=bench)
    other = tmp_path / "elsewhere"
    storage.write_output(str(other), storage.HTML_NAME, b"<p>another team's output</p>")
    for pointed in (str(other), "/", "http://127.0.0.1:9/x"):
        with bench.engine.begin() as conn:  # what a tampered row would say
            conn.execute(
                text("UPDATE runs SET output_uri = :u WHERE id = :i"),
                {
                    "u": pointed,
                    "i": run.id.hex if bench.engine.dialect.name == "sqlite" else run.id,
                },
            )
        page = _html_for(bench, run.id)
        assert page is not None and b"mine" in page
        assert b"another team" not in page
    bench.close()


def _html_for(bench: Workbench, run_id: uuid.UUID) -> bytes | None:
    """The dashboards server's reading of a run's HTML, with an active admin of that id."""
    from workbench.accounts.api import add_user

    made = add_user(f"reader{uuid.uuid4().hex[:6]}", role="admin", workbench=bench)
    reader = Account(str(made.user.id), made.user.username, Role.ADMIN, True)
    return run_output_html(bench, reader, run_id)


def test_a_location_is_built_from_a_run_id_only(settings: Settings) -> None:
    run_id = uuid.uuid4()
    assert storage.run_location(settings, run_id).endswith(f"/runs/{run_id}")
    with pytest.raises(StorageError):
        storage.run_location(settings, "../../etc")  # type: ignore[arg-type]


def test_the_operations_dashboards_output_link_matches_on_the_embedded_database(
    bench: Workbench, tmp_path: Path
) -> None:
    """The operations dashboard reads run ids with plain SQL: SQLite returns them without
    dashes. Its link, and the address in either spelling, reach the run's output route."""
    import re

    from workbench.dashboards.outputs import OUTPUT_PATH

    run_id = queue_run(_notebook(tmp_path, "x = 1"), workbench=bench)
    with bench.engine.connect() as connection:
        raw = connection.execute(text("SELECT id FROM runs")).scalar_one()
    assert "-" not in str(raw)  # how the embedded database answers a plain query
    for spelling in (str(raw), str(run_id)):
        found = re.fullmatch(OUTPUT_PATH, f"runs/{spelling}/output")
        assert found and uuid.UUID(found.group(1)) == run_id, spelling
    notebook = Path(__file__).resolve().parents[2] / "dashboards" / "workbench_operations.ipynb"
    assert "runs/{uuid.UUID(str(r.id))}/output" in notebook.read_text()

"""An ordinary mistake in a notebook shows the user's cell and the one public function called.

Each cell below makes a mistake a notebook user makes (a table that exists, a missing
``:param``, an unknown table, job or notebook) in a real kernel on the embedded database; the
error output must show no frame from inside the ``workbench`` package other than the public
function the cell called, named as that function. A bug (any other exception) keeps its frames.
"""

from __future__ import annotations

import re
import socket
import traceback
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import workbench
from workbench.core.boundary import public
from workbench.core.errors import WorkbenchError

PACKAGE = str(Path(workbench.__file__).resolve().parent)
ANSI = re.compile(r"\x1b\[[0-9;]*m")

SETUP = (
    "import pandas as pd\nimport workbench as wb\n"
    "wb.write(pd.DataFrame({'a': [1, 2]}), 'sales')\nbench = wb.connect()"
)
#: (cell, the public function's name, the error class, a phrase of its message)
MISTAKES = [
    ("wb.write(pd.DataFrame({'a': [3]}), 'sales')", "write", "DataError", "already exists"),
    ("wb.sql('select * from sales where a = :a')", "sql", "DataError", ":a"),
    ("wb.describe('nowhere')", "describe", "TableNotFoundError", "nowhere"),
    ("wb.read_table('nowhere')", "read_table", "TableNotFoundError", "nowhere"),
    ("bench.sql('select * from sales where a = :a')", "sql", "DataError", ":a"),
    ("bench.write(pd.DataFrame({'a': [3]}), 'sales')", "write", "DataError", "already exists"),
    ("wb.jobs.get('nightly')", "get", "JobNotFoundError", "nightly"),
    ("wb.run('missing.ipynb')", "run", "NotebookError", "missing.ipynb"),
]


def _frames(error_output: dict[str, Any]) -> list[str]:
    """The header of each frame of an error output (``Cell In[..]``, ``File ...``), uncoloured."""
    text = ANSI.sub("", "\n".join(error_output["traceback"]))
    headers = ("File ", "Cell In[")
    return [line.strip() for line in text.splitlines() if line.strip().startswith(headers)]


def _errors(setup: str, cells: list[str]) -> list[dict[str, Any]]:
    """The error output of each cell after ``setup``, run in order in one real kernel (which
    inherits this process's environment: the database the test set)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (setup, *cells)]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    assert not [o for o in nb.cells[0].outputs if o["output_type"] == "error"]
    found = []
    for cell in nb.cells[1:]:
        outputs = [o for o in cell.outputs if o["output_type"] == "error"]
        assert len(outputs) == 1, cell.source
        found.append(outputs[0])
    return found


def _assert_one_public_frame(
    expected: list[tuple[str, str, str, str]], errors: list[dict[str, Any]]
) -> None:
    for (cell, function, ename, phrase), output in zip(expected, errors, strict=True):
        assert output["ename"] == ename, (cell, output["evalue"])
        assert phrase in output["evalue"], (cell, output["evalue"])
        frames = _frames(output)
        inside = [f for f in frames if PACKAGE in f]
        assert len(inside) == 1, (cell, frames)
        assert f", in {function}(" in inside[0], (cell, frames)
        # Nothing else under the user's cell: no SQLAlchemy, pandas or chained cause.
        assert len(frames) == 2 and frames[0].startswith("Cell In["), (cell, frames)
        text = ANSI.sub("", "\n".join(output["traceback"]))
        assert "direct cause" not in text and "During handling" not in text, cell


def test_a_mistake_shows_only_the_public_function_called(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", sqlite_url)
    _assert_one_public_frame(MISTAKES, _errors(SETUP, [cell for cell, *_ in MISTAKES]))


#: Calls on a database that cannot be reached (or has no schema): (cell, function, error, phrase)
UNREACHABLE = [
    ("wb.sql('select 1')", "sql", "DatabaseError", "Could not connect"),  # the ADBC driver's
    ("wb.jobs.list_jobs()", "list_jobs", "DatabaseUnavailableError", "Cannot connect"),
    ("bench.tables()", "tables", "DatabaseUnavailableError", "Cannot connect"),
]
PASSWORD = "not-shown-7f3a"
NO_SCHEMA = [
    ("wb.jobs.list_jobs()", "list_jobs", "SchemaMissingError", "workbench init"),
    ("wb.jobs.get('nightly')", "get", "SchemaMissingError", "workbench init"),
]


def test_a_database_out_of_reach_is_one_message_from_the_function_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://nobody:{PASSWORD}@127.0.0.1:{port}/none"
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", url)
    setup = "import workbench as wb\nbench = wb.connect()"
    errors = _errors(setup, [c for c, *_ in UNREACHABLE])
    _assert_one_public_frame(UNREACHABLE, errors)
    for output in errors:  # the login's password never reaches the notebook's output
        assert PASSWORD not in output["evalue"] + "".join(output["traceback"])


def test_a_database_without_the_schema_says_to_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    setup = "import workbench as wb"
    _assert_one_public_frame(NO_SCHEMA, _errors(setup, [c for c, *_ in NO_SCHEMA]))


def _innermost() -> None:
    raise ValueError("a bug deep inside")


def _middle() -> None:
    _innermost()


def _mistake() -> None:
    try:
        int("x")
    except ValueError as cause:
        raise WorkbenchError("Table 'x' does not exist; check the name.") from cause


def test_a_bug_keeps_every_frame_and_a_mistake_keeps_its_cause_unshown() -> None:
    with pytest.raises(ValueError, match="a bug deep inside") as bug:
        public(_middle)()
    names = [frame.name for frame in traceback.extract_tb(bug.value.__traceback__)]
    assert names[-2:] == ["_middle", "_innermost"]

    with pytest.raises(WorkbenchError) as mistake:
        public(_mistake)()
    shown = "".join(traceback.format_exception(mistake.value))
    assert "invalid literal" not in shown and "_mistake" in shown
    assert isinstance(mistake.value.__context__, ValueError)  # reachable when debugging
    # Under the test's own frame, only the boundary's, named as the function called.
    frames = traceback.extract_tb(mistake.value.__traceback__)[1:]
    assert [(Path(f.filename).name, f.name) for f in frames] == [("boundary.py", "_mistake")]

"""``%load_ext workbench`` and the ``%%sql`` cell magic in a real IPython shell."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import workbench
from workbench.app import Workbench


@pytest.fixture
def shell(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A real IPython shell whose default workbench is the test database."""
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", db_url)
    workbench.close()
    wb = Workbench(workbench.default().settings, db_url)
    wb.write(pd.DataFrame({"city": ["Oslo", "Lima", "Oslo"], "temp": [3, 18, 5]}), "weather")
    wb.close()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "workbench")
    yield ip
    ip.user_ns.pop("city", None)
    ip.user_ns.pop("rows", None)
    workbench.close()
    InteractiveShell.clear_instance()


def test_sql_cell_binds_notebook_variables(shell: InteractiveShell) -> None:
    shell.user_ns["city"] = "Oslo"
    result = shell.run_cell_magic(
        "sql", "", "select temp from weather where city = :city order by temp"
    )
    assert isinstance(result, pd.DataFrame)
    assert result["temp"].tolist() == [3, 5]


def test_sql_cell_stores_its_result_in_a_variable(shell: InteractiveShell) -> None:
    shell.user_ns["city"] = "Lima"
    run = shell.run_cell("%%sql rows --cache 30\nselect temp from weather where city = :city\n")
    assert run.success
    assert shell.user_ns["rows"]["temp"].tolist() == [18]


def test_sql_cell_names_a_missing_variable(shell: InteractiveShell) -> None:
    run = shell.run_cell("%%sql\nselect * from weather where city = :nowhere\n")
    assert not run.success
    assert ":nowhere" in str(run.error_in_exec)


def test_describe_displays_as_html(shell: InteractiveShell) -> None:
    description = workbench.describe("weather")
    data, _ = shell.display_formatter.format(description)
    assert "text/html" in data
    assert "weather" in data["text/html"] and "temp" in data["text/html"]

"""The magics in a real kernel (ipykernel through jupyter_client), on SQLite and PostgreSQL:
snippets composed as common table expressions, bound parameters that stay values, `%wb`,
and completion of table and column names in SQL cells."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from workbench.app import Workbench
from workbench.core.config import Settings


class Kernel:
    def __init__(self, client: BlockingKernelClient) -> None:
        self.client = client

    def run(self, code: str) -> str:
        """Run ``code``; what it printed. A cell that fails raises with its error."""
        out: list[str] = []
        errors: list[str] = []

        def hook(message: dict[str, Any]) -> None:
            kind = message["header"]["msg_type"]
            if kind == "stream" and message["content"]["name"] == "stdout":
                out.append(message["content"]["text"])
            elif kind == "error":
                errors.append(f"{message['content']['ename']}: {message['content']['evalue']}")

        reply = self.client.execute_interactive(code, output_hook=hook, timeout=120)
        if reply["content"]["status"] != "ok":
            raise AssertionError("; ".join(errors) or reply["content"])
        return "".join(out)

    def fails(self, code: str) -> str:
        try:
            self.run(code)
        except AssertionError as exc:
            return str(exc)
        raise AssertionError(f"{code!r} did not fail")

    def complete(self, code: str) -> list[str]:
        msg_id = self.client.complete(code, len(code))
        while True:
            reply = self.client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                return list(reply["content"]["matches"])


@pytest.fixture
def kernel(db_url: str, settings: Settings) -> Iterator[Kernel]:
    with Workbench(settings, db_url) as wb:
        frame = pd.DataFrame({"city": ["Oslo", "Lima", "Oslo"], "temp": [3, 18, 5]})
        wb.write(frame, "weather")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_HOME=str(settings.home_path), WORKBENCH_DATABASE_URL=db_url)
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.blocking_client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    try:
        found = Kernel(client)
        found.run("%load_ext workbench")
        yield found
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _records(kernel: Kernel, expression: str) -> Any:
    return json.loads(kernel.run(f"print({expression}.to_json(orient='records'))"))


def test_snippets_compose_as_common_table_expressions(kernel: Kernel) -> None:
    kernel.run("%%sql --save warm --no-execute\nselect * from weather where temp > :low\n")
    kernel.run("low = 4")
    kernel.run(
        "%%sql counts --with warm\nselect city, count(*) as n from warm group by city order by city"
    )
    assert _records(kernel, "counts") == [{"city": "Lima", "n": 1}, {"city": "Oslo", "n": 1}]
    # A snippet built on a snippet; the line magic takes the same options.
    kernel.run(
        "%%sql --save warm_oslo --with warm --no-execute\nselect * from warm where city = 'Oslo'"
    )
    kernel.run("rows = %sql --with warm_oslo select temp from warm_oslo")
    assert _records(kernel, "rows") == [{"temp": 5}]
    listed = _records(kernel, "get_ipython().run_line_magic('wb', 'snippets')")
    assert [r["snippet"] for r in listed] == ["warm", "warm_oslo"]
    assert "No snippet cold" in kernel.fails("%%sql --with cold\nselect 1")
    assert "not a name" in kernel.fails("%%sql --save 'two words'\nselect 1")


def test_a_hostile_parameter_stays_a_value(kernel: Kernel) -> None:
    for hostile in ("Oslo' OR '1'='1", "x'); DROP TABLE weather; --"):
        kernel.run(f"city = {hostile!r}")
        kernel.run("%%sql rows\nselect * from weather where city = :city")
        assert _records(kernel, "rows") == []
    kernel.run("%%sql rows\nselect count(*) as n from weather")
    assert _records(kernel, "rows") == [{"n": 3}]


def test_wb_tables_describe_and_profile(kernel: Kernel) -> None:
    tables = _records(kernel, "get_ipython().run_line_magic('wb', 'tables')")
    assert [t["name"] for t in tables] == ["weather"]
    assert "temp" in kernel.run("print(get_ipython().run_line_magic('wb', 'describe weather'))")
    profile = {
        r["column"]: r
        for r in _records(kernel, "get_ipython().run_line_magic('wb', 'profile weather')")
    }
    assert profile["city"]["distinct"] == 2 and profile["city"]["nulls"] == 0
    assert profile["city"]["min"] == "Lima" and profile["city"]["mean"] is None
    assert profile["temp"]["min"] == 3 and profile["temp"]["max"] == 18
    assert profile["temp"]["mean"] == pytest.approx(26 / 3)
    assert "does not exist" in kernel.fails("%wb profile nowhere")
    assert "%wb tables | describe" in kernel.fails("%wb drop weather")


def test_completion_offers_tables_and_columns_in_sql_cells_only(kernel: Kernel) -> None:
    assert "weather" in kernel.complete("%%sql\nselect * from wea")
    assert "temp" in kernel.complete("%%sql rows\nselect te")
    assert "weather" in kernel.complete("rows = %sql select * from wea")
    kernel.run("weathervane = 1")
    python = kernel.complete("weath")
    assert "weathervane" in python and "weather" not in python

"""Hostile cells in a real notebook kernel, logged in as an analyst of team A."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from tests.integration.test_rls_policies import World, world  # noqa: F401 (fixture)

CELLS = [
    "import os, json, psycopg\nconn = psycopg.connect(os.environ['WB_TEST_ANALYST_URL'], "
    "autocommit=True)\nresults = {}",
    # Each trick in its own cell, the way an analyst would type it.
    *[
        f"try:\n    conn.execute({statement!r})\n    results[{statement!r}] = 'ran'\n"
        f"except psycopg.Error as exc:\n    results[{statement!r}] = type(exc).__name__"
        for statement in [
            "RESET ROLE",
            "SET ROLE {bob}",
            "SET app.user_id = '{bob_id}'",
            "SELECT set_config('app.user_id', '{bob_id}', false)",
            "CREATE TEMP VIEW peek AS SELECT * FROM metrics",
            "ALTER TABLE metrics DISABLE ROW LEVEL SECURITY",
            "DROP POLICY wb_team ON metrics",
        ]
    ],
    "seen = conn.execute(\"SELECT count(*) FROM metrics WHERE team_id = '{b}'\").fetchone()[0]\n"
    "via_view = conn.execute(\"SELECT count(*) FROM pg_temp.peek WHERE label LIKE 'b%'\")"
    ".fetchone()[0]\n"
    "print(json.dumps({'seen': seen, 'via_view': via_view, 'results': results}))",
]


def test_hostile_cells_in_a_kernel_see_no_row_of_team_b(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob = world.users["bob"]
    values = {"bob": bob.db_role, "bob_id": str(bob.id), "b": str(world.team_b)}
    monkeypatch.setenv("WB_TEST_ANALYST_URL", world.psycopg_url("alice"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(_fill(c, values)) for c in CELLS]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    output = nb.cells[-1].outputs[0]["text"]
    report = json.loads(output)
    assert report["seen"] == 0
    assert report["via_view"] == 0
    results = report["results"]
    assert results[_fill("SET ROLE {bob}", values)] == "InsufficientPrivilege"
    assert results["ALTER TABLE metrics DISABLE ROW LEVEL SECURITY"] == "InsufficientPrivilege"
    assert results["DROP POLICY wb_team ON metrics"] == "InsufficientPrivilege"
    assert results["RESET ROLE"] == "ran"
    assert world.owner_count("metrics", world.team_b) == 3


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template

"""`workbench jobs` as a user runs it, on the embedded database."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
KPIS = str(ROOT / "notebooks" / "flights_kpis.ipynb")


def test_job_lifecycle_on_the_command_line() -> None:
    """Parameters as for `workbench run`: `-p NAME VALUE` and a YAML file (in the test's own
    folder, the working directory)."""
    assert run_cli("init").code == 0
    Path("params.yaml").write_text("on_time_minutes: 15\ncarrier: AA\n")
    added = run_cli(
        "jobs", "add", "daily-kpis", KPIS,
        "--schedule", "30 2 * * *", "--timezone", "Europe/Berlin",
        "-p", "carrier", "UA", "-f", "params.yaml", "--retries", "2", "--catchup", "all",
    )  # fmt: skip
    assert added.code == 0, added.output
    assert "next run: " in added.stdout

    listed = run_cli("jobs", "list")
    assert re.search(r"daily-kpis.*30 2 \* \* \*.*Europe/Berlin.*active", listed.stdout)

    shown = run_cli("jobs", "show", "daily-kpis")
    assert '"carrier": "UA"' in shown.stdout
    assert '"on_time_minutes": 15' in shown.stdout
    assert re.search(r"catch-up\s+│?\s*all \(limit 100\)", shown.stdout)

    assert run_cli("jobs", "pause", "daily-kpis").code == 0
    assert "paused" in run_cli("jobs", "list").stdout
    assert run_cli("jobs", "resume", "daily-kpis").code == 0

    triggered = run_cli("jobs", "trigger", "daily-kpis")
    assert re.search(r"queued run [0-9a-f-]{36}", triggered.stdout)

    assert run_cli("jobs", "delete", "daily-kpis").code == 0
    gone = run_cli("jobs", "show", "daily-kpis")
    assert gone.code != 0
    assert "No job named 'daily-kpis'" in gone.stderr
    assert "Traceback" not in gone.output


def test_invalid_job_definitions_are_clear_errors() -> None:
    assert run_cli("init").code == 0
    bad_cron = run_cli("jobs", "add", "x", "n.ipynb", "--schedule", "every morning")
    assert bad_cron.code == 2
    assert "five fields" in bad_cron.stderr
    bad_zone = run_cli(
        "jobs", "add", "x", "n.ipynb", "--schedule", "0 6 * * *", "--timezone", "Europe/Atlantis"
    )
    assert bad_zone.code == 2
    assert "IANA" in bad_zone.stderr
    bad_param = run_cli("jobs", "add", "x", "n.ipynb", "-p", "carrier")
    assert bad_param.code == 2
    assert "NAME=VALUE" in bad_param.stderr
    for result in (bad_cron, bad_zone, bad_param):
        assert "Traceback" not in result.output


def test_job_parameters_are_checked_against_the_notebook_at_registration() -> None:
    assert run_cli("init").code == 0
    cases = [
        (["-p", "on_time_minutes=soon"], "on_time_minutes: 'soon' is not a whole number"),
        (["-p", "on_time_minutes", "soon"], "on_time_minutes: 'soon' is not a whole number"),
        (["-p", "carier=UA"], "Unknown parameter 'carier'; this notebook declares: start, end"),
    ]
    for args, message in cases:
        refused = run_cli("jobs", "add", "kpis", KPIS, *args)
        assert refused.code == 2, refused.output
        assert message in refused.stderr
        assert "Traceback" not in refused.output
    # The same mistake gives the same message through `workbench run`.
    direct = run_cli("run", KPIS, "-p", "on_time_minutes", "soon")
    assert direct.code == 2
    assert "on_time_minutes: 'soon' is not a whole number" in direct.stderr
    missing = run_cli("jobs", "add", "kpis", "no_such.ipynb")
    assert missing.code != 0
    assert "does not exist" in missing.stderr
    assert run_cli("jobs", "show", "kpis").code != 0, "nothing was registered"

    # Typed text is converted by type and stored typed, with the notebook's absolute path.
    added = run_cli("jobs", "add", "kpis", KPIS, "-p", "on_time_minutes=30", "-p", "carrier=UA")
    assert added.code == 0, added.output
    shown = run_cli("jobs", "show", "kpis")
    assert '"on_time_minutes": 30' in shown.stdout
    assert '"carrier": "UA"' in shown.stdout

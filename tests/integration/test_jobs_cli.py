"""`workbench jobs` as a user runs it, on the embedded database."""

from __future__ import annotations

import re

from tests.cli import run_cli


def test_job_lifecycle_on_the_command_line() -> None:
    assert run_cli("init").code == 0
    added = run_cli(
        "jobs", "add", "daily-kpis", "notebooks/flights_kpis.ipynb",
        "--schedule", "30 2 * * *", "--timezone", "Europe/Berlin",
        "-p", "carrier=UA", "-p", "on_time_minutes=15", "--retries", "2", "--catchup", "all",
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

"""`workbench jobs` as a user runs it (the embedded database, and both for saving again)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli import run_cli
from workbench.app import Workbench
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.db.models import Job
from workbench.scheduler import api as jobs

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


@pytest.fixture
def env(settings, db_url: str) -> dict[str, str]:
    ensure_home(settings)
    ensure_secret_key(settings)
    return {"WORKBENCH_DATABASE_URL": db_url}


def _definition(job: Job) -> tuple[object, ...]:
    return (
        job.schedule, job.timezone, job.parameters, job.retries, job.retry_delay_seconds,
        job.timeout_seconds, job.max_concurrency, job.catchup.value, job.catchup_limit,
    )  # fmt: skip


def test_saving_a_job_again_keeps_what_is_not_given(env, settings, db_url, pg_owner) -> None:
    """`jobs add` again with only --schedule, then `wb.jobs.register` with only schedule=:
    the time zone, parameters and every other option stay; what is given changes."""
    owner = ["--owner", pg_owner] if pg_owner else []
    first = run_cli(
        "jobs", "add", "kpis", KPIS, *owner, "--schedule", "30 2 * * *",
        "--timezone", "Europe/Berlin", "-p", "carrier", "UA", "--retries", "2",
        "--retry-delay", "30", "--timeout", "600", "--max-concurrency", "2",
        "--catchup", "all", "--catchup-limit", "5", env=env,
    )  # fmt: skip
    assert first.code == 0, first.output
    again = run_cli("jobs", "add", "kpis", KPIS, *owner, "--schedule", "0 6 * * *", env=env)
    assert again.code == 0, again.output
    with Workbench(settings, db_url) as wb:
        job = jobs.get("kpis", workbench=wb)
        expected = ("0 6 * * *", "Europe/Berlin", None, 2, 30, 600, 2, "all", 5)
        assert _definition(job)[:2] == expected[:2] and _definition(job)[3:] == expected[3:]
        assert job.parameters["carrier"] == "UA"
        kept = dict(job.parameters)
        saved = jobs.register("kpis", KPIS, schedule="15 7 * * *", owner=pg_owner, workbench=wb)
        assert _definition(saved) == ("15 7 * * *", "Europe/Berlin", kept, 2, 30, 600, 2, "all", 5)
        changed = jobs.register(
            "kpis", KPIS, schedule="15 7 * * *", timezone="UTC", parameters={"carrier": "AA"},
            timeout=0, retries=0, owner=pg_owner, workbench=wb,
        )  # fmt: skip
        assert changed.timezone == "UTC" and changed.parameters["carrier"] == "AA"
        assert changed.timeout_seconds is None and changed.retries == 0
        assert changed.max_concurrency == 2  # still kept
        fresh = jobs.register("other", KPIS, owner=pg_owner, workbench=wb)
        assert _definition(fresh)[1:] == ("UTC", fresh.parameters, 0, 60, None, 1, "latest", 100)
    shown = " ".join(run_cli("jobs", "add", "--help").stdout.split())
    assert "(new job: UTC)" in shown and "keeps the job's current value" in shown

"""The command line's output for people and for scripts (subprocesses, both databases).

In an 80-column pipe no table cuts what a user copies (ids, names, paths, the database URL);
every listing and `show` prints one JSON document with `--json`; a run is named by a unique
prefix of its id, as git names commits, and through row-level security another team's run is
"no such run", never "ambiguous"; `--help` reads as a user types the command.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from tests.cli import Result, run_cli
from tests.integration.test_rls_policies import World, world  # noqa: F401 (fixture)
from workbench.app import Workbench
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.db.identity_connect import user_database_url
from workbench.db.models import Run as RunRow
from workbench.runs import api as runs
from workbench.runs.errors import AmbiguousRunIdError, RunNotFoundError

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
NARROW = {"COLUMNS": "80"}
LONG_NAME = "quarterly_on_time_performance_by_carrier_and_airport.ipynb"


@pytest.fixture
def env(settings, db_url: str) -> dict[str, str]:
    ensure_home(settings)
    ensure_secret_key(settings)
    return {"WORKBENCH_DATABASE_URL": db_url}


def _add_runs(bench: Workbench, *ids: str, notebook: str = "trivial.ipynb", **row: object) -> None:
    """Runs with chosen ids (so their prefixes are known), written as the service."""
    with bench.session() as session, session.begin():
        for rid in ids:
            session.add(RunRow(id=uuid.UUID(rid), notebook=str(NOTEBOOKS / notebook), **row))


def _cli(*args: str, env: dict[str, str]) -> Result:
    return run_cli(*args, env={**env, **NARROW})


# -- unique prefixes --------------------------------------------------------------------------

A1 = "abcd1234-0000-4000-8000-000000000001"
A2 = "abcd5678-0000-4000-8000-000000000002"
B1 = "ef012345-0000-4000-8000-000000000003"


def test_a_run_is_named_by_a_unique_prefix_of_its_id(env, settings, db_url) -> None:
    with Workbench(settings, db_url) as bench:
        _add_runs(bench, A1, A2, B1)
        assert runs.show("abcd1", workbench=bench).id == uuid.UUID(A1)
        assert runs.show("ABCD-5678", workbench=bench).id == uuid.UUID(A2)  # dashes, case
    shown = _cli("runs", "show", "abcd12", env=env)
    assert shown.code == 0, shown.output
    assert A1 in shown.stdout and A2 not in shown.stdout
    ambiguous = _cli("runs", "show", "abcd", env=env)
    assert ambiguous.code == 2 and "ambiguous" in ambiguous.stderr
    assert A1 in ambiguous.stderr and A2 in ambiguous.stderr and B1 not in ambiguous.stderr
    short = _cli("runs", "logs", "abc", env=env)
    assert short.code == 1 and "too short" in short.stderr and "4" in short.stderr
    missing = _cli("runs", "show", "9999", env=env)
    assert missing.code == 1 and "No run has an id starting with 9999" in missing.stderr
    logs = _cli("runs", "logs", "ef01", env=env)
    assert logs.code == 1 and f"Run {B1} has no output notebook yet" in logs.stderr
    cancelled = _cli("runs", "cancel", "abcd5", env=env)
    assert cancelled.code == 0 and f"run {A2} cancelled" in cancelled.stdout
    for out in (ambiguous, short, missing, logs):
        assert "Traceback" not in out.output


def _bench_of(w: World, name: str) -> Workbench:
    url = user_database_url(w.settings, w.users[name], w.url).render_as_string(hide_password=False)
    return Workbench(w.settings, url)


def test_a_prefix_matches_only_the_runs_a_login_may_see(world: World) -> None:  # noqa: F811
    alice, bob = world.users["alice"], world.users["bob"]
    _add_runs(world.bench, A1, created_by=alice.id, team_id=world.team_a)
    _add_runs(world.bench, A2, created_by=bob.id, team_id=world.team_b)
    with pytest.raises(AmbiguousRunIdError):
        runs.show("abcd", workbench=world.bench)  # the service sees both
    with _bench_of(world, "bob") as bench:
        assert runs.show("abcd", workbench=bench).id == uuid.UUID(A2)  # his, not ambiguous
        with pytest.raises(RunNotFoundError, match="No run has an id starting with abcd1"):
            runs.show("abcd1", workbench=bench)  # alice's: not found, never ambiguous
        with pytest.raises(RunNotFoundError) as refused:
            runs.cancel("abcd12", workbench=bench)
        assert not isinstance(refused.value, AmbiguousRunIdError)
    with _bench_of(world, "alice") as bench:
        assert runs.show("abcd", workbench=bench).id == uuid.UUID(A1)


# -- tables in an 80-column pipe --------------------------------------------------------------


def _one_line_with(text: str, output: str) -> bool:
    return any(text in line for line in output.splitlines())


def test_tables_in_an_80_column_pipe_never_cut_identifiers(env, settings, db_url, pg_owner) -> None:
    long = Path(settings.home_path) / LONG_NAME
    shutil.copy(NOTEBOOKS / "trivial.ipynb", long)
    with Workbench(settings, db_url) as bench:
        _add_runs(bench, A1, notebook=str(long), output_uri=str(long.parent / "runs" / A1))
    listed = _cli("runs", "list", env=env)
    assert listed.code == 0, listed.output
    assert _one_line_with(A1, listed.stdout) and _one_line_with(LONG_NAME, listed.stdout)
    shown = _cli("runs", "show", A1, env=env)
    assert _one_line_with(str(long), shown.stdout), shown.stdout
    assert _one_line_with(str(long.parent / "runs" / A1), shown.stdout)
    owner = ["--owner", pg_owner] if pg_owner else []
    added = _cli("jobs", "add", "quarterly-on-time-performance", str(long), *owner, env=env)
    assert added.code == 0, added.output
    jobs = _cli("jobs", "list", env=env)
    assert _one_line_with(str(long), jobs.stdout), jobs.stdout
    assert _one_line_with("quarterly-on-time-performance", jobs.stdout)
    plugins = _cli("plugins", "list", env=env)
    assert _one_line_with("workbench.dashboards.catalog", plugins.stdout), plugins.stdout
    settings_json = json.loads(_cli("doctor", "--json", env=env).stdout)["settings"]
    url = settings_json["WORKBENCH_DATABASE_URL"]
    doctor = _cli("doctor", env=env)
    assert _one_line_with(url, doctor.stdout), doctor.stdout
    params = _cli("notebooks", "params", str(NOTEBOOKS / "typed_params.ipynb"), env=env)
    assert _one_line_with("2013-01-01", params.stdout), params.stdout


# -- --json -----------------------------------------------------------------------------------


def _json(*args: str, env: dict[str, str]) -> object:
    done = _cli(*args, "--json", env=env)
    assert done.code == 0, done.output
    return json.loads(done.stdout)  # one document, nothing else on stdout


def test_every_listing_and_show_prints_one_json_document(
    env, settings, db_url, pg_owner, tmp_path
) -> None:
    with Workbench(settings, db_url) as bench:
        _add_runs(bench, A1)
    listed = _json("runs", "list", env=env)
    assert isinstance(listed, list) and listed[0]["id"] == A1
    assert listed[0]["notebook"] == str(NOTEBOOKS / "trivial.ipynb")
    shown = _json("runs", "show", "abcd", env=env)
    assert isinstance(shown, dict) and shown["id"] == A1 and shown["status"] == "queued"
    queued = datetime.fromisoformat(shown["queued_at"])
    assert queued.utcoffset() is not None and queued.utcoffset().total_seconds() == 0
    owner = ["--owner", pg_owner] if pg_owner else []
    added = _cli("jobs", "add", "nightly", str(NOTEBOOKS / "trivial.ipynb"), *owner, env=env)
    assert added.code == 0, added.output
    jobs = _json("jobs", "list", env=env)
    assert isinstance(jobs, list) and jobs[0]["name"] == "nightly" and jobs[0]["schedule"] is None
    job = _json("jobs", "show", "nightly", env=env)
    assert isinstance(job, dict) and uuid.UUID(job["id"]) and job["parameters"] == {}
    assert _json("secrets", "list", env=env) == []
    users = _json("users", "list", env=env)
    assert isinstance(users, list)
    plugins = _json("plugins", "list", env=env)
    assert isinstance(plugins, list) and {"plugin", "version", "status", "hooks"} <= set(plugins[0])
    sources = _json("sources", env=env)
    assert isinstance(sources, list) and "files" in {s["source"] for s in sources}
    assert isinstance(_json("notebooks", "list", env=env), list)
    (tmp_path / "dashboards").mkdir()
    assert _json("dashboards", "list", env=env) == []
    if pg_owner:
        assert isinstance(_json("teams", "list", env=env), list)


# -- help, defaults, empty lists --------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [("run",), ("runs", "show"), ("runs", "list"), ("jobs", "add"), ("runs",), ()]
)
def test_help_names_arguments_as_typed_and_flags_without_a_type(command) -> None:
    shown = run_cli(*command, "--help")
    assert shown.code == 0, shown.output
    assert "<bool>" not in shown.stdout
    usage = next(line for line in shown.stdout.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage
    if command == ("run",):
        assert re.search(r"Usage: workbench run \[OPTIONS\] NOTEBOOK\b", usage), usage
        assert re.search(r"--help\s+Show this message", shown.stdout)


def test_notebooks_params_prints_defaults_as_the_user_types_them() -> None:
    table = run_cli("notebooks", "params", str(NOTEBOOKS / "typed_params.ipynb"))
    assert table.code == 0, table.output
    assert "2013-01-01" in table.stdout and "datetime.date(" not in table.stdout
    assert re.search(r"min_delay\s+│\s+int\s+│\s+15\s", table.stdout), table.stdout


def test_empty_listings_say_what_to_do(env) -> None:
    for args, text in [
        (("secrets", "list"), "No secrets yet: `workbench secrets set NAME`"),
        (("jobs", "list"), "No jobs yet: `workbench jobs add"),
        (("runs", "list"), "No runs yet: `workbench run NB`"),
    ]:
        done = _cli(*args, env=env)
        assert done.code == 0 and text in done.stdout, done.output


def test_init_prints_its_summary_uncut_in_an_80_column_pipe(isolated_env: Path) -> None:
    done = run_cli("init", env=NARROW)
    assert done.code == 0, done.output
    assert _one_line_with(f"home:        {isolated_env}", done.stdout), done.stdout
    database = f"database:    sqlite+pysqlite:///{isolated_env}/workbench.db"
    assert _one_line_with(database, done.stdout), done.stdout

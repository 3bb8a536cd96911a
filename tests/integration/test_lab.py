"""`workbench lab`: a real JupyterLab with the Workbench server extension, on the embedded
database and in team mode, reached over HTTP and its kernels' websocket.

Who holds what: on the embedded database the server and its kernels are the analyst's own
workbench. In team mode the server holds one analyst's own database login and nothing else:
a server that would hold the master key or the service's login is refused before it starts,
because every kernel it starts would get them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jsonschema
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy import select

from tests.cli import run_cli
from tests.conftest import make_owner
from tests.lab_helpers import ROOT, Lab, lab_env, start_lab
from tests.runs_helpers import still_alive, wait_for
from workbench.accounts import api as accounts_api
from workbench.app import Workbench
from workbench.core.config import Settings, load_settings
from workbench.db.models import User
from workbench.lab.routes import API, routes
from workbench.runs.api import queue_run, show
from workbench.scheduler import api as jobs

CARRIERS = "import pandas as pd, workbench as wb; wb.write(pd.DataFrame({'code': ['AA', 'UA'], 'name': ['American', 'United']}), 'carriers')"  # noqa: E501
ROUTES = ["whoami", "tables", "tables/carriers", "params?path=notebooks/flights_kpis.ipynb"]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("lab")
    env = lab_env(workdir / "home", workdir / "jupyter")
    assert run_cli("init", env=env).code == 0
    subprocess.run([sys.executable, "-c", CARRIERS], env=env, check=True, timeout=120)
    lab = start_lab(env, workdir)
    yield lab
    if lab.process.poll() is None:
        lab.stop()


def test_every_route_needs_the_servers_sign_in(embedded: Lab) -> None:
    for route in ROUTES:
        refused = embedded.get(f"/workbench/api/{route}", token=False)
        assert refused.status_code == 403, route
        assert embedded.get(f"/workbench/api/{route}").status_code == 200, route


def test_whoami_and_the_tables_of_the_embedded_database(embedded: Lab) -> None:
    me = embedded.get("/workbench/api/whoami").json()
    assert me["mode"] == "embedded" and me["database"] == "sqlite" and me["login"] is None
    tables = embedded.get("/workbench/api/tables").json()["tables"]
    assert [t["name"] for t in tables] == ["carriers"]
    assert tables[0]["last_write_rows"] == 2 and tables[0]["last_write_mode"] == "create"
    carriers = embedded.get("/workbench/api/tables/carriers").json()
    assert carriers["rows"] == 2
    assert [(c["name"], c["dtype"]) for c in carriers["columns"]] == [
        ("code", "str"),
        ("name", "str"),
    ]
    missing = embedded.get("/workbench/api/tables/nowhere")
    assert missing.status_code == 404
    assert missing.json() == {
        "message": "Table 'nowhere' does not exist; check the name with wb.tables().",
        "error": "TableNotFoundError",
    }
    assert missing.headers["content-type"] == "application/json"
    # Sharing is a team-mode act: the embedded database has one user and says so.
    shared = _post(embedded, "tables/carriers/share", {"team": "red"})
    assert shared.status_code == 400 and "PostgreSQL" in shared.json()["message"]
    wrong = _post(embedded, "tables/carriers/share", {"team": 7})
    assert wrong.status_code == 400 and "team must be" in wrong.json()["message"]


def test_a_notebooks_parameters_as_json_schema(embedded: Lab) -> None:
    reply = embedded.get("/workbench/api/params?path=notebooks/flights_kpis.ipynb")
    schema = reply.json()["schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert schema["properties"]["carrier"]["type"] == ["string", "null"]
    assert validator.is_valid({"start": "2013-02-01", "carrier": None, "on_time_minutes": 10})
    assert not validator.is_valid({"on_time_minutes": "ten"})
    assert not validator.is_valid({"unknown": 1})
    assert not validator.is_valid({"start": "February"})


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("", 400, "Give a notebook"),
        ("notebooks/flights_kpis.py", 400, "Give a notebook"),
        ("../../../../etc/x.ipynb", 404, "in the server's folder"),
        ("notebooks/nothing_here.ipynb", 404, "No notebook"),
        ("README.md.ipynb", 404, "No notebook"),
    ],
)
def test_params_refuses_what_is_no_notebook_of_the_server(
    embedded: Lab, path: str, status: int, words: str
) -> None:
    reply = embedded.get(f"/workbench/api/params?path={path}")
    assert reply.status_code == status
    assert words in reply.json()["message"]


def test_a_kernel_of_the_server_reaches_the_same_workbench(embedded: Lab) -> None:
    out = embedded.execute("import workbench as wb; print(sorted(wb.tables()['name']))")
    assert out.strip() == "['carriers']"


def test_the_servers_kernels_talk_to_it_encrypted(embedded: Lab) -> None:
    """CurveZMQ keys for each kernel, not plain text on TCP ports every local user can reach
    (ipykernel warned of it in the analyst's terminal at every kernel start)."""
    out = embedded.execute(
        "import json; from ipykernel.connect import get_connection_file as f\n"
        "info = json.load(open(f()))\n"
        "print(info['transport'], bool(info.get('curve_publickey')), "
        "bool(info.get('curve_secretkey')))"
    )
    assert out.split() == ["tcp", "True", "True"], out
    assert "without encryption" not in embedded.log.read_text(errors="replace")


def test_sigterm_stops_the_server_and_every_kernel(tmp_path: Path) -> None:
    env = lab_env(tmp_path / "home", tmp_path / "jupyter")
    assert run_cli("init", env=env).code == 0
    lab = start_lab(env, tmp_path)
    try:
        assert lab.execute("print(6 * 7)").strip() == "42"
    finally:  # stopped whatever happened: a failure here leaves no server to a later test
        code = lab.stop()
    assert code == 0
    assert lab.descendants, "the kernel was not a child of the server"
    wait_for(lambda: not still_alive(lab.descendants), 15, "the kernels to end")


def test_lab_without_a_database_says_to_run_init(tmp_path: Path) -> None:
    env = lab_env(tmp_path / "home", tmp_path / "jupyter")
    result = run_cli("lab", "--no-browser", env=env)
    assert result.code != 0
    assert "workbench init" in result.stderr and "Traceback" not in result.output


def _team_env(tmp_path: Path, url: str) -> dict[str, str]:
    return lab_env(tmp_path / "home", tmp_path / "jupyter", WORKBENCH_DATABASE_URL=url)


def test_team_mode_refuses_the_services_login_and_the_master_key(
    tmp_path: Path, pg_url: str
) -> None:
    # The service's login, no key anywhere: every kernel would read every team's rows.
    result = run_cli("lab", "--no-browser", "--allow-root", env=_team_env(tmp_path, pg_url))
    assert result.code != 0, result.output
    assert "the service's login" in result.stderr and "Traceback" not in result.output
    # The master key in the environment: refused whatever the login.
    env = {**_team_env(tmp_path, pg_url), "WORKBENCH_SECRET_KEY": "k" * 64}
    result = run_cli("lab", "--no-browser", "--allow-root", env=env)
    assert result.code != 0
    assert "master secret key" in result.stderr and "k" * 64 not in result.output


def test_team_mode_with_an_analysts_own_login(
    tmp_path: Path, pg_url: str, settings: Settings
) -> None:
    """The server and its kernels act as the analyst: their login, their team's tables."""
    from workbench.core.home import ensure_home, ensure_secret_key

    ensure_home(settings)
    ensure_secret_key(settings)  # the service's key, in the service's home only
    name, other = make_owner(settings, pg_url), make_owner(settings, pg_url)
    with Workbench(settings, pg_url) as service:
        for owner in (name, other):
            frame = pd.DataFrame({"carrier": ["AA"], "owner": [owner]})
            service.write(frame, f"delays_{owner}", team=f"team-{owner}")
        with service.session() as session:
            user = session.scalars(select(User).where(User.username == name)).one()
    # The admin's command writes the analyst's own URL; the analyst's lab reads it.
    handed = tmp_path / "handed" / "db_url"
    handed.parent.mkdir()
    service_env = {"WORKBENCH_DATABASE_URL": pg_url}
    wrote = run_cli("users", "connection-url", name, "--file", str(handed), env=service_env)
    assert wrote.code == 0, wrote.output
    assert handed.stat().st_mode & 0o777 == 0o600
    own_url = handed.read_text().strip()
    assert own_url.split("@")[0].rsplit(":", 1)[1] not in wrote.output  # the password
    again = run_cli("users", "connection-url", name, "--file", str(handed), env=service_env)
    assert again.code != 0 and "--force" in again.stderr
    # A secret of each team, stored by the service: the analyst is told only their team's name.
    value = tmp_path / "value"
    value.write_text("v" * 32)
    for owner in (name, other):
        stored = run_cli("secrets", "set", f"key_{owner}", "--team", f"team-{owner}",
                         "--value-file", str(value), env=service_env)  # fmt: skip
        assert stored.code == 0, stored.output
    analyst = tmp_path / "analyst"  # another home: no key file there
    env = lab_env(analyst / "home", analyst / "jupyter", WORKBENCH_DATABASE_URL_FILE=str(handed))
    lab = start_lab(env, tmp_path)
    try:
        me = lab.get("/workbench/api/whoami").json()
        assert me["mode"] == "team" and me["login"] == user.db_role
        tables = lab.get("/workbench/api/tables").json()["tables"]
        assert [t["name"] for t in tables] == [f"delays_{name}"]
        assert lab.get(f"/workbench/api/tables/delays_{other}").status_code == 404
        assert lab.get(f"/workbench/api/tables/delays_{name}").json()["rows"] == 1
        # Sharing: the analyst's table with the other team, which reads it from then on (the
        # other user's own login); another team's table is not the analyst's to share.
        with Workbench(settings, pg_url) as service:
            other_url = accounts_api.connection_url(other, workbench=service)
        engine = sa.create_engine(other_url)
        try:
            count = sa.text(f"SELECT count(*) FROM delays_{name}")
            with engine.connect() as connection:
                assert connection.execute(count).scalar() == 0
            shared = _post(lab, f"tables/delays_{name}/share", {"team": f"team-{other}"})
            assert shared.status_code == 200, shared.text
            with engine.connect() as connection:
                assert connection.execute(count).scalar() == 1
        finally:
            engine.dispose()
        refused = _post(lab, f"tables/delays_{other}/share", {"team": f"team-{name}"})
        assert refused.status_code in {400, 403, 404}, refused.text
        secrets = lab.get("/workbench/api/secrets")
        assert [s["name"] for s in secrets.json()["secrets"]] == [f"key_{name}"]
        assert "v" * 32 not in secrets.text
        out = lab.execute(
            "import os, sqlalchemy as sa, workbench as wb\n"
            "print(wb.sql('SELECT current_user AS who')['who'][0])\n"
            "print(sorted(k for k in os.environ if 'SECRET' in k))\n"
        )
        assert out.split() == [user.db_role, "[]"]
        # Runs: the analyst's own are theirs; another team's do not exist for them.
        mine = _post(lab, "runs", {"notebook": SLEEPS, "parameters": {"seconds": 0}})
        assert mine.status_code == 201, mine.text
        with Workbench(settings, pg_url) as service:
            theirs = queue_run(ROOT / SLEEPS, {"seconds": 0}, owner=other, workbench=service)
            record = show(mine.json()["id"], workbench=service)
        assert record.created_by == user.id and record.triggered_by == "lab"
        assert lab.get(f"/workbench/api/runs/{theirs}").status_code == 404
        assert _post(lab, f"runs/{theirs}/cancel", {}).status_code == 404
        listed = [r["id"] for r in lab.get("/workbench/api/runs").json()["runs"]]
        assert listed == [mine.json()["id"]]
        output = lab.get(f"/workbench/api/runs/{mine.json()['id']}/output")
        assert output.status_code == 404 and "dashboards server" in output.json()["message"]
        # Jobs: the analyst's job is theirs; another team's, even of the same name, is unseen.
        job = {"name": "daily", "notebook": SLEEPS, "schedule": "0 6 * * *"}
        saved = _post(lab, "jobs", job)
        assert saved.status_code == 200, saved.text
        assert saved.json()["owner_id"] == str(user.id)
        with Workbench(settings, pg_url) as service:
            jobs.register("hidden", str(ROOT / SLEEPS), owner=other, workbench=service)
        assert [j["name"] for j in lab.get("/workbench/api/jobs").json()["jobs"]] == ["daily"]
        # The job's newest run, read under row-level security: the analyst's trigger, not the
        # service's run of the other team's job of the same notebook.
        triggered = _post(lab, "jobs/daily/trigger", {})
        assert triggered.status_code == 201, triggered.text
        with Workbench(settings, pg_url) as service:
            jobs.trigger("hidden", team=f"team-{other}", workbench=service)
        (daily,) = lab.get("/workbench/api/jobs").json()["jobs"]
        assert daily["last_run"]["id"] == triggered.json()["id"]
        assert lab.get("/workbench/api/jobs/hidden").status_code == 404
        assert _post(lab, "jobs/hidden/pause", {}).status_code == 404
    finally:
        assert lab.stop() == 0


def test_connection_urls_exist_only_in_team_mode(tmp_path: Path) -> None:
    env = lab_env(tmp_path / "home", tmp_path / "jupyter")
    assert run_cli("init", env=env).code == 0
    target = tmp_path / "url"
    result = run_cli("users", "connection-url", "admin", "--file", str(target), env=env)
    assert result.code != 0
    assert "PostgreSQL" in result.stderr and "Traceback" not in result.output
    assert not target.exists()


OPENAPI = Path(__file__).resolve().parents[2] / "workbench" / "lab" / "openapi.yaml"


def _openapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())
    return document


def test_the_openapi_document_names_every_route_and_method() -> None:
    document = _openapi()
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    served = set()
    for pattern, handler in routes("/"):
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.removeprefix(API))
        for method in ("get", "post", "put", "patch", "delete"):
            if method in vars(handler):
                served.add((path, method))
    assert documented == served


def _check_reply(document: dict[str, Any], path: str, reply: Any) -> None:
    operation = document["paths"][path]["get"]["responses"][str(reply.status_code)]
    if "$ref" in operation:
        operation = document["components"]["responses"][operation["$ref"].rsplit("/", 1)[1]]
    schema = operation["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator(
        {**schema, "components": document["components"]},
        format_checker=jsonschema.FormatChecker(),
    )
    validator.validate(reply.json())


def test_every_answer_of_the_server_matches_the_openapi_document(embedded: Lab) -> None:
    document = _openapi()
    asked = [
        ("/whoami", "whoami"),
        ("/tables", "tables"),
        ("/tables/{name}", "tables/carriers"),
        ("/tables/{name}", "tables/nowhere"),
        ("/params", "params?path=notebooks/flights_kpis.ipynb"),
        ("/params", "params?path=x.txt"),
        ("/params", "params?path=nothing.ipynb"),
        ("/runs", "runs"),
        ("/runs", "runs?limit=0"),
        ("/jobs", "jobs"),
        ("/jobs/{name}", "jobs/nowhere"),
        ("/schedule", "schedule?cron=0+6+*+*+1-5&timezone=America/New_York"),
        ("/secrets", "secrets"),
        ("/dashboards", "dashboards"),
        ("/schedule", "schedule?cron=0+25+*+*+*"),
    ]
    statuses = set()
    for path, route in asked:
        reply = embedded.get(f"/workbench/api/{route}")
        statuses.add(reply.status_code)
        _check_reply(document, path, reply)
    assert statuses == {200, 400, 404}


SLEEPS = "tests/notebooks/sleeps.ipynb"


def _post(lab: Lab, path: str, body: object) -> httpx.Response:
    return httpx.post(
        f"{lab.base}/workbench/api/{path}",
        headers={"Authorization": f"token {lab.token}"},
        json=body,
        timeout=30,
    )


def test_a_run_queued_through_the_api_is_the_command_lines_run(embedded: Lab) -> None:
    queued = _post(embedded, "runs", {"notebook": SLEEPS, "parameters": {"seconds": 0.1}})
    assert queued.status_code == 201, queued.text
    run_id = queued.json()["id"]
    listed = run_cli("runs", "list", "--json", env=embedded.env)
    (mine,) = [r for r in json.loads(listed.stdout) if r["id"] == run_id]
    assert mine["status"] == "queued" and mine["triggered_by"] == "lab"
    summary = embedded.get("/workbench/api/runs").json()["runs"]
    assert run_id in [r["id"] for r in summary]
    record = embedded.get(f"/workbench/api/runs/{run_id[:8]}").json()
    assert record["id"] == run_id and record["parameters"] == {"seconds": 0.1}
    assert record["path"] == SLEEPS  # what JupyterLab opens to show a failing cell
    assert [r["path"] for r in summary if r["id"] == run_id] == [SLEEPS]
    cancelled = _post(embedded, f"runs/{run_id}/cancel", {})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = _post(embedded, f"runs/{run_id}/cancel", {})
    assert again.status_code == 409 and "already finished" in again.json()["message"]
    assert embedded.get("/workbench/api/runs/0123456789abcdef").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"notebook": SLEEPS, "parameters": {"seconds": "slow"}}, 400, "seconds"),
        ({"notebook": SLEEPS, "parameters": {"minutes": 1}}, 400, "minutes"),
        ({"notebook": SLEEPS, "parameters_text": {"seconds": "slow"}}, 400, "'slow' is not"),
        ({"notebook": SLEEPS, "parameters_text": {"seconds": 1}}, 400, "typed text"),
        ({"notebook": SLEEPS, "parameters": [1]}, 400, "an object"),
        ({"notebook": SLEEPS, "timeout": "soon"}, 400, "whole number"),
        ({"notebook": "../../etc/x.ipynb"}, 404, "in the server's folder"),
        ({"notebook": "README.md"}, 400, "Give a notebook"),
        ([], 400, "JSON object"),
    ],
)
def test_bad_input_to_queue_a_run_is_refused_with_its_reason(
    embedded: Lab, body: object, status: int, words: str
) -> None:
    before = len(embedded.get("/workbench/api/runs?limit=500").json()["runs"])
    refused = _post(embedded, "runs", body)
    assert refused.status_code == status, refused.text
    assert words in refused.json()["message"]
    assert len(embedded.get("/workbench/api/runs?limit=500").json()["runs"]) == before


def test_a_run_of_a_notebook_outside_the_servers_folder_has_no_path(
    embedded: Lab, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.ipynb"
    shutil.copy(ROOT / SLEEPS, elsewhere)
    with Workbench(load_settings(home=Path(embedded.env["WORKBENCH_HOME"]))) as bench:
        run_id = str(queue_run(elsewhere, {"seconds": 0}, workbench=bench))
    record = embedded.get(f"/workbench/api/runs/{run_id}").json()
    assert record["notebook"] == str(elsewhere.resolve()) and record["path"] is None
    assert _post(embedded, f"runs/{run_id}/cancel", {}).status_code == 200


def test_the_dashboards_of_the_servers_folder_are_listed_for_the_launcher(
    embedded: Lab,
) -> None:
    answer = embedded.get("/workbench/api/dashboards").json()
    names = sorted(d["name"] for d in answer["dashboards"])
    assert names == sorted(p.name for p in (ROOT / "dashboards").glob("*.ipynb"))
    assert all(d["path"] == f"dashboards/{d['name']}" for d in answer["dashboards"])
    # No dashboards server configured: the tiles open the notebooks themselves.
    assert answer["dashboards_url"] is None
    assert {d["url"] for d in answer["dashboards"]} == {None}


def test_a_form_sends_what_was_typed_and_a_refusal_names_its_field(embedded: Lab) -> None:
    """parameters_text is read as the command line reads -p; a wrong value's refusal names the
    parameter, so the form shows it at that field."""
    refused = _post(embedded, "runs", {"notebook": SLEEPS, "parameters_text": {"seconds": "x"}})
    assert refused.status_code == 400
    assert refused.json()["parameters"] == ["seconds"]
    unknown = _post(embedded, "runs", {"notebook": SLEEPS, "parameters_text": {"minutes": "1"}})
    assert unknown.json()["parameters"] == ["minutes"]
    queued = _post(embedded, "runs", {"notebook": SLEEPS, "parameters_text": {"seconds": "0"}})
    assert queued.status_code == 201, queued.text
    run = embedded.get(f"/workbench/api/runs/{queued.json()['id']}").json()
    assert run["parameters"] == {"seconds": 0}  # typed by the notebook's declaration


def test_a_run_is_queued_again_with_its_parameters(embedded: Lab) -> None:
    first = _post(embedded, "runs", {"notebook": SLEEPS, "parameters_text": {"seconds": "0.25"}})
    assert first.status_code == 201, first.text
    again = _post(embedded, f"runs/{first.json()['id']}/rerun", {})
    assert again.status_code == 201, again.text
    assert again.json()["rerun_of"] == first.json()["id"]
    record = embedded.get(f"/workbench/api/runs/{again.json()['id']}").json()
    assert record["parameters"] == {"seconds": 0.25} and record["triggered_by"] == "lab"
    assert record["status"] == "queued"
    assert _post(embedded, "runs/0123456789abcdef/rerun", {}).status_code == 404
    for run_id in (first.json()["id"], again.json()["id"]):
        assert _post(embedded, f"runs/{run_id}/cancel", {}).status_code == 200


def test_a_cookie_session_must_send_its_xsrf_token(embedded: Lab) -> None:
    with httpx.Client(base_url=embedded.base, timeout=30) as browser:
        assert browser.get(f"/lab?token={embedded.token}").status_code == 200
        assert "_xsrf" in browser.cookies
        body = {"notebook": SLEEPS, "parameters": {"seconds": 0}}
        forged = browser.post("/workbench/api/runs", json=body)
        assert forged.status_code == 403
        sent = browser.post(
            "/workbench/api/runs", json=body, headers={"X-XSRFToken": browser.cookies["_xsrf"]}
        )
        assert sent.status_code == 201, sent.text


def test_a_runs_output_is_served_sandboxed(embedded: Lab) -> None:
    done = run_cli("run", str(ROOT / SLEEPS), "-p", "seconds", "0", env=embedded.env)
    assert done.code == 0, done.output
    run_id = json.loads(run_cli("runs", "list", "--json", env=embedded.env).stdout)[0]["id"]
    html = embedded.get(f"/workbench/api/runs/{run_id}/output")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.headers["content-security-policy"].startswith("sandbox;")
    notebook = embedded.get(f"/workbench/api/runs/{run_id}/output?format=ipynb")
    assert notebook.json()["nbformat"] == 4
    assert embedded.get(f"/workbench/api/runs/{run_id}/output?format=pdf").status_code == 400


def test_a_finished_runs_display_in_a_kernel_links_to_its_output_here(embedded: Lab) -> None:
    done = run_cli("run", str(ROOT / SLEEPS), "-p", "seconds", "0", env=embedded.env)
    assert done.code == 0, done.output
    run_id = json.loads(run_cli("runs", "list", "--json", env=embedded.env).stdout)[0]["id"]
    page = embedded.execute(
        f"from workbench.runs.api import show; print(show({run_id!r})._repr_html_())"
    )
    link = re.search(r"<a href='([^']+)' target='_blank' rel='noopener'>", page)
    assert link is not None, page
    assert link.group(1) == f"/workbench/api/runs/{run_id}/output"
    assert embedded.get(link.group(1)).status_code == 200  # the link opens the output
    # Outside a server with the extension a display has no link to follow.
    with Workbench(load_settings(home=Path(embedded.env["WORKBENCH_HOME"]))) as bench:
        assert "<a href" not in show(run_id, workbench=bench)._repr_html_()


def test_secret_names_are_listed_and_their_values_never(embedded: Lab, tmp_path: Path) -> None:
    value = "s3cr3t-" + "x" * 24
    value_file = tmp_path / "value"
    value_file.write_text(value)
    stored = run_cli(
        "secrets", "set", "api_token", "--value-file", str(value_file), env=embedded.env
    )
    assert stored.code == 0, stored.output
    reply = embedded.get("/workbench/api/secrets")
    assert reply.status_code == 200
    assert {"name": "api_token", "reference": "secret:api_token"} in reply.json()["secrets"]
    assert value not in reply.text


def test_a_schedules_preview_lists_its_next_five_times_in_its_zone(embedded: Lab) -> None:
    reply = embedded.get("/workbench/api/schedule?cron=30+6+*+*+1-5&timezone=America/New_York")
    assert reply.status_code == 200, reply.text
    times = [datetime.fromisoformat(t) for t in reply.json()["next_runs"]]
    assert len(times) == 5 and times == sorted(set(times))
    for when in times:  # 06:30 New York time, on weekdays, whatever the season
        assert (when.hour, when.minute) == (6, 30) and when.weekday() < 5
        assert when.utcoffset() == when.astimezone(ZoneInfo("America/New_York")).utcoffset()
    for query, words in (
        ("cron=0+25+*+*+*", "Invalid cron schedule"),
        ("cron=0+6+*+*+*&timezone=Mars/Base", "Unknown time zone"),
        ("cron=", "Give a cron schedule"),
    ):
        refused = embedded.get(f"/workbench/api/schedule?{query}")
        assert refused.status_code == 400 and words in refused.json()["message"]


def test_a_job_saved_from_a_form_reads_its_typed_text(embedded: Lab) -> None:
    saved = _post(
        embedded,
        "jobs",
        {"name": "typed", "notebook": SLEEPS, "parameters_text": {"seconds": "0.5"}},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["parameters"] == {"seconds": 0.5}
    refused = _post(
        embedded,
        "jobs",
        {"name": "typed2", "notebook": SLEEPS, "parameters_text": {"seconds": "x"}},
    )
    assert refused.status_code == 400 and refused.json()["parameters"] == ["seconds"]
    assert embedded.get("/workbench/api/jobs/typed2").status_code == 404
    gone = httpx.delete(
        f"{embedded.base}/workbench/api/jobs/typed",
        headers={"Authorization": f"token {embedded.token}"},
        timeout=30,
    )
    assert gone.status_code == 204


def test_a_jobs_life_through_the_api(embedded: Lab) -> None:
    job = {
        "name": "nightly",
        "notebook": SLEEPS,
        "schedule": "0 6 * * *",
        "timezone": "America/New_York",
        "parameters": {"seconds": 0.1},
        "retries": 1,
    }
    saved = _post(embedded, "jobs", job)
    assert saved.status_code == 200, saved.text
    runs_at = [datetime.fromisoformat(t) for t in saved.json()["next_runs"]]
    assert len(runs_at) == 5 and runs_at == sorted(set(runs_at))
    assert {t.astimezone(ZoneInfo("America/New_York")).hour for t in runs_at} == {6}
    listed = json.loads(run_cli("jobs", "list", "--json", env=embedded.env).stdout)
    assert [j["name"] for j in listed] == ["nightly"]
    # Updating keeps what is not given (but the schedule, whose absence means on demand).
    updated = _post(embedded, "jobs", {"name": "nightly", "notebook": SLEEPS, "retries": 3})
    assert updated.json()["retries"] == 3 and updated.json()["parameters"] == {"seconds": 0.1}
    assert updated.json()["schedule"] is None and updated.json()["next_runs"] == []
    _post(embedded, "jobs", job)
    paused = _post(embedded, "jobs/nightly/pause", {})
    assert paused.json()["paused"] is True and paused.json()["next_runs"] == []
    assert _post(embedded, "jobs/nightly/resume", {}).json()["paused"] is False
    listed = embedded.get("/workbench/api/jobs").json()["jobs"]
    assert next(j for j in listed if j["name"] == "nightly")["last_run"] is None
    triggered = _post(embedded, "jobs/nightly/trigger", {})
    assert triggered.status_code == 201
    listed = embedded.get("/workbench/api/jobs")
    _check_reply(_openapi(), "/jobs", listed)
    last = next(j for j in listed.json()["jobs"] if j["name"] == "nightly")["last_run"]
    assert last["id"] == triggered.json()["id"] and last["status"] == "queued"
    record = embedded.get(f"/workbench/api/runs/{triggered.json()['id']}").json()
    assert record["job_id"] == saved.json()["id"] and record["triggered_by"] == "lab"
    _check_reply(_openapi(), "/jobs/{name}", embedded.get("/workbench/api/jobs/nightly"))
    gone = httpx.delete(
        f"{embedded.base}/workbench/api/jobs/nightly",
        headers={"Authorization": f"token {embedded.token}"},
        timeout=30,
    )
    assert gone.status_code == 204
    assert embedded.get("/workbench/api/jobs/nightly").status_code == 404
    assert _post(embedded, "jobs/nightly/trigger", {}).status_code == 404


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"schedule": "every morning"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"parameters": {"seconds": "slow"}}, "seconds"),
        ({"retries": "three"}, "Wrong type for retries"),
        ({"max_concurrency": True}, "Wrong type for max_concurrency"),
        ({"catchup": "sometimes"}, "catch"),
        ({"owner": "someone"}, "Unknown job field"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_job_is_refused_and_nothing_is_saved(
    embedded: Lab, change: dict[str, object], words: str
) -> None:
    body = {"name": "refused", "notebook": SLEEPS, "schedule": "0 6 * * *", **change}
    refused = _post(embedded, "jobs", body)
    assert refused.status_code == 400, refused.text
    assert words.lower() in refused.json()["message"].lower()
    assert embedded.get("/workbench/api/jobs").json() == {"jobs": []}


def test_a_plain_jupyter_server_of_the_environment_has_the_api(tmp_path: Path) -> None:
    """Installed, Workbench enables its extension in every Jupyter server of the environment
    (etc/jupyter/jupyter_server_config.d/workbench.json, from the wheel or scripts/_venv.sh)."""
    env = lab_env(tmp_path / "home", tmp_path / "jupyter")
    assert run_cli("init", env=env).code == 0
    lab = start_lab(env, tmp_path, plain=True)
    try:
        assert lab.get("/workbench/api/whoami").json()["mode"] == "embedded"
    finally:
        assert lab.stop() == 0


def test_the_api_answers_under_the_servers_base_url(tmp_path: Path) -> None:
    """A hub's server runs under /user/<name>/: the routes sit under that prefix, once."""
    env = lab_env(tmp_path / "home", tmp_path / "jupyter")
    assert run_cli("init", env=env).code == 0
    lab = start_lab(env, tmp_path, plain=True, base_url="/user/ann/")
    try:
        assert lab.base.endswith("/user/ann")
        whoami = lab.get("/workbench/api/whoami")
        assert whoami.status_code == 200 and whoami.json()["mode"] == "embedded"
        assert lab.get("/workbench/api/dashboards").status_code == 200
        doubled = httpx.get(
            lab.base + "/user/ann/workbench/api/whoami",
            headers={"Authorization": f"token {lab.token}"},
            timeout=30,
        )
        assert doubled.status_code == 404
    finally:
        lab.stop()


def test_without_a_database_the_api_says_why_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    lab = start_lab(lab_env(home, tmp_path / "jupyter"), tmp_path, plain=True)
    try:
        off = lab.get("/workbench/api/tables")
        assert off.status_code == 503 and "workbench init" in off.json()["message"]
        assert lab.get("/workbench/api/tables", token=False).status_code == 403
        assert not (home / "workbench.db").exists()
    finally:
        assert lab.stop() == 0


def test_a_plain_server_holding_the_master_key_serves_no_api(tmp_path: Path, pg_url: str) -> None:
    env = {**_team_env(tmp_path, pg_url), "WORKBENCH_SECRET_KEY": "k" * 64}
    lab = start_lab(env, tmp_path, plain=True)
    try:
        off = lab.get("/workbench/api/tables")
        assert off.status_code == 503 and "master secret key" in off.json()["message"]
        assert "k" * 64 not in off.text
        assert lab.get("/workbench/api/whoami", token=False).status_code == 403
    finally:
        assert lab.stop() == 0

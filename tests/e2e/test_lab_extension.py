"""The JupyterLab extension in Chromium, on `workbench lab` and the embedded database with a few
days of flights: "Run with Workbench" on flights_kpis.ipynb's toolbar opens a form built from
its typed parameters; a wrong value is refused at its field in the server's words; fixed, the
run is queued, executed by a real scheduler, followed to its end, and its output opens in a
tab; the Runs panel lists it. A failed run's notification opens its notebook at the failing
cell; the launcher has a tile per dashboard. Each step leaves a screenshot in tests/artifacts/.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.cli import run_cli
from tests.e2e.conftest import ARTIFACTS
from tests.lab_helpers import ROOT, Lab, lab_env, start_lab

pytestmark = pytest.mark.e2e

#: The toolbar button of the notebook in front.
RUN_BUTTON = ".jp-NotebookPanel:visible .wb-RunButton"
#: Where the launcher's tiles send a browser (no server needs to answer for the test).
DASHBOARDS_URL = "http://127.0.0.1:8866/"
FAILING = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "cells": [
        {"cell_type": "markdown", "id": "a", "metadata": {}, "source": "# Fails in cell 3"},
        {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": None,
         "outputs": [], "source": "flights = 0"},
        {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": None,
         "outputs": [], "source": "raise ValueError('no flights on that day')"},
        {"cell_type": "code", "id": "d", "metadata": {}, "execution_count": None,
         "outputs": [], "source": "print('never reached')"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("labx")
    env = lab_env(workdir / "home", workdir / "jupyter")
    assert run_cli("init", env=env).code == 0
    seeded = run_cli(
        "run", str(ROOT / "notebooks" / "ingest_flights.ipynb"),
        "-p", "start", "2013-01-01", "-p", "end", "2013-01-03", env=env, timeout=300,
    )  # fmt: skip
    assert seeded.code == 0, seeded.output
    value = workdir / "token"
    value.write_text("not-a-real-token")
    stored = run_cli("secrets", "set", "carrier_code", "--value-file", str(value), env=env)
    assert stored.code == 0, stored.output
    scheduler_log = (workdir / "scheduler.log").open("wb")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "workbench", "scheduler", "--workers", "1"], env=env,
        stdout=scheduler_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    # A copy of the project's notebooks: JupyterLab saves what a test opens and changes.
    project = workdir / "project"
    shutil.copytree(ROOT / "notebooks", project / "notebooks")
    shutil.copytree(ROOT / "dashboards", project / "dashboards")
    (project / "notebooks" / "fails_in_cell_3.ipynb").write_text(json.dumps(FAILING))
    running = start_lab({**env, "WORKBENCH_DASHBOARDS_URL": DASHBOARDS_URL}, workdir, project)
    yield running
    running.stop()
    scheduler.send_signal(signal.SIGTERM)
    try:
        scheduler.wait(timeout=60)
    except subprocess.TimeoutExpired:
        scheduler.kill()
        scheduler.wait()
    scheduler_log.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"lab_extension_{name}.png"))


def _open_notebook(page: Any, lab: Lab, path: str) -> None:
    """Open ``path`` and bring its tab to the front: the workspace also brings back the tabs
    of earlier tests, and the last of them to be restored may take the front."""
    page.goto(f"{lab.base}/lab/tree/{path}?token={lab.token}")
    tab = page.locator(".lm-TabBar-tab", has_text=path.rsplit("/", 1)[-1]).first
    tab.wait_for(timeout=60_000)
    tab.click()
    page.locator(RUN_BUTTON).wait_for(timeout=60_000)


def test_the_extension_is_installed_and_enabled(lab: Lab) -> None:
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter")), "labextension", "list"],
        capture_output=True, text=True, env=lab.env, check=False,
    )  # fmt: skip
    assert "workbench-lab" in listed.stdout + listed.stderr
    line = next(x for x in (listed.stdout + listed.stderr).splitlines() if "workbench-lab" in x)
    assert "enabled" in line and "OK" in line


def test_run_a_notebook_from_its_form_and_follow_it_to_its_output(lab: Lab, page: Any) -> None:
    _open_notebook(page, lab, "notebooks/flights_kpis.ipynb")
    page.locator(RUN_BUTTON).click()
    dialog = page.locator(".wb-RunDialog")
    dialog.wait_for()
    # The form: one field per typed parameter, dates as date pickers, help from descriptions.
    for name in ("start", "end", "carrier", "on_time_minutes"):
        dialog.locator(f"#wb-param-{name}").wait_for()
    assert dialog.locator("#wb-param-start").get_attribute("type") == "date"
    assert dialog.locator("#wb-param-start").input_value() == "2013-01-01"
    assert "first day of the period" in dialog.inner_text()
    dialog.locator("#wb-param-end").fill("2013-01-03")
    # A wrong value: refused by the server, shown at its field, nothing queued.
    dialog.locator("#wb-param-on_time_minutes").fill("fifteen")
    dialog.get_by_role("button", name="Run now").click()
    error = dialog.locator(".wb-Form-field", has=page.locator("#wb-param-on_time_minutes"))
    error.locator(".wb-Form-error").get_by_text("'fifteen' is not").wait_for()
    assert "wb-mod-invalid" in (
        dialog.locator("#wb-param-on_time_minutes").get_attribute("class") or ""
    )
    _shot(page, "1_inline_error")
    listed = json.loads(run_cli("runs", "list", "--json", env=lab.env).stdout)
    assert not [r for r in listed if r["notebook"].endswith("flights_kpis.ipynb")]
    # Fixed: queued, executed by the scheduler, followed to its end; its output opens.
    dialog.locator("#wb-param-on_time_minutes").fill("20")
    dialog.get_by_role("button", name="Run now").click()
    dialog.locator(".wb-Form-status[data-status='succeeded']").wait_for(timeout=120_000)
    page.locator(".wb-Output").first.wait_for()
    # A notification says so too (it would, were the dialog closed), with the output to open.
    page.get_by_text("Run of flights_kpis.ipynb succeeded").wait_for()
    _shot(page, "2_succeeded")
    (run,) = [
        r
        for r in json.loads(run_cli("runs", "list", "--json", env=lab.env).stdout)
        if r["notebook"].endswith("flights_kpis.ipynb")
    ]
    assert run["status"] == "succeeded" and run["triggered_by"] == "lab"
    shown = json.loads(run_cli("runs", "show", run["id"], "--json", env=lab.env).stdout)
    assert shown["parameters"]["on_time_minutes"] == 20  # typed by the notebook's declaration
    assert shown["parameters"]["end"] == "2013-01-03"
    frame = page.frame_locator(".wb-Output iframe")
    frame.locator("body").get_by_text("on_time_minutes").first.wait_for()
    dialog.get_by_role("button", name="Close").click()
    # The Runs panel lists it, newest first, with an Output button.
    page.locator(".jp-SideBar [title='Workbench runs']").first.click()
    row = page.locator(f".wb-Runs-list [data-run='{run['id']}']")
    row.wait_for()
    assert row.get_attribute("data-status") == "succeeded"
    assert row.locator("button", has_text="Output").count() == 1
    _shot(page, "3_runs_panel")
    # Re-run: the same notebook and parameters, queued again and followed to its end.
    row.get_by_role("button", name="Re-run").click()
    page.get_by_text("Run of flights_kpis.ipynb succeeded").nth(1).wait_for(timeout=120_000)
    kpis = [
        r
        for r in json.loads(run_cli("runs", "list", "--json", env=lab.env).stdout)
        if r["notebook"].endswith("flights_kpis.ipynb")
    ]
    assert len(kpis) == 2 and {r["status"] for r in kpis} == {"succeeded"}
    again = next(r for r in kpis if r["id"] != run["id"])
    shown_again = json.loads(run_cli("runs", "show", again["id"], "--json", env=lab.env).stdout)
    assert shown_again["parameters"] == shown["parameters"]
    # The notebook filter leaves the other notebook's runs out.
    items = page.locator("#workbench-runs .wb-Runs-item")
    page.wait_for_function("document.querySelectorAll('#workbench-runs .wb-Runs-item').length == 3")
    filters = page.locator(".wb-Runs-filters select").first
    filters.select_option(label="flights_kpis.ipynb")
    page.wait_for_function("document.querySelectorAll('#workbench-runs .wb-Runs-item').length == 2")
    assert all("flights_kpis" in t for t in items.locator(".wb-Runs-notebook").all_inner_texts())
    filters.select_option(value="")


def test_a_text_parameter_offers_the_stored_secrets_by_name(lab: Lab, page: Any) -> None:
    _open_notebook(page, lab, "notebooks/flights_kpis.ipynb")
    page.locator(RUN_BUTTON).click()
    dialog = page.locator(".wb-RunDialog")
    picker = dialog.locator("#wb-secret-carrier")  # carrier: str | None
    picker.wait_for()
    assert dialog.locator("#wb-secret-on_time_minutes").count() == 0  # an int takes none
    picker.select_option("secret:carrier_code")
    assert dialog.locator("#wb-param-carrier").input_value() == "secret:carrier_code"
    assert "not-a-real-token" not in page.content()  # names only, never a value
    dialog.get_by_role("button", name="Close").click()


def test_schedule_a_notebook_with_a_preview_and_manage_it_in_the_jobs_panel(
    lab: Lab, page: Any
) -> None:
    _open_notebook(page, lab, "notebooks/flights_kpis.ipynb")
    page.locator(RUN_BUTTON).click()
    dialog = page.locator(".wb-RunDialog")
    dialog.locator("#wb-param-on_time_minutes").wait_for()
    dialog.get_by_role("button", name="Schedule…").click()
    assert dialog.locator("#wb-job-name").input_value() == "flights_kpis"
    dialog.locator("#wb-job-timezone").fill("America/New_York")
    # A wrong schedule: the server's words under the field, as it is typed.
    dialog.locator("#wb-job-schedule").fill("0 25 * * *")
    dialog.locator(".wb-Schedule-error").get_by_text("Invalid cron schedule").wait_for()
    # A right one: the next five times, in the chosen zone.
    dialog.locator("#wb-job-schedule").fill("30 6 * * 1-5")
    preview = dialog.locator(".wb-Schedule-preview li[data-time]")
    preview.nth(4).wait_for()
    times = [preview.nth(n).get_attribute("data-time") for n in range(preview.count())]
    assert len(times) == 5 and all("T06:30:00" in t for t in times), times
    assert all(t.endswith(("-05:00", "-04:00")) for t in times), times  # New York time
    dialog.locator("#wb-param-on_time_minutes").fill("fifteen")
    dialog.get_by_role("button", name="Save schedule").click()
    dialog.locator(".wb-Form-error").get_by_text("'fifteen' is not").wait_for()
    assert "flights_kpis" not in run_cli("jobs", "list", "--json", env=lab.env).stdout
    dialog.locator("#wb-param-on_time_minutes").fill("20")
    dialog.locator("#wb-job-retries").fill("1")
    dialog.get_by_role("button", name="Save schedule").click()
    dialog.locator(".wb-Form-status[data-status='saved']").wait_for()
    assert "Saved as job flights_kpis: next run" in dialog.inner_text()
    _shot(page, "7_schedule_saved")
    (job,) = [
        j
        for j in json.loads(run_cli("jobs", "list", "--json", env=lab.env).stdout)
        if j["name"] == "flights_kpis"
    ]
    assert job["schedule"] == "30 6 * * 1-5" and job["timezone"] == "America/New_York"
    shown = json.loads(run_cli("jobs", "show", "flights_kpis", "--json", env=lab.env).stdout)
    assert shown["parameters"] == {"on_time_minutes": 20} and shown["retries"] == 1
    dialog.get_by_role("button", name="Close").click()
    # The Jobs panel: the job with its next run; pause and resume reach the scheduler's table.
    page.locator(".jp-SideBar [title='Workbench jobs']").first.click()
    item = page.locator(".wb-Jobs [data-job='flights_kpis']")
    item.locator(".wb-Jobs-next").get_by_text("next").wait_for()
    item.get_by_role("button", name="Pause").click()
    page.locator(".wb-Jobs [data-job='flights_kpis'][data-paused='true']").wait_for()
    paused = json.loads(run_cli("jobs", "show", "flights_kpis", "--json", env=lab.env).stdout)
    assert paused["state"] == "paused"
    _shot(page, "8_jobs_panel_paused")
    item.get_by_role("button", name="Resume").click()
    page.locator(".wb-Jobs [data-job='flights_kpis'][data-paused='false']").wait_for()
    # Run now: queued for the scheduler, and the job's last status follows it.
    item.get_by_role("button", name="Run now").click()
    item.locator(".wb-Jobs-last.wb-mod-succeeded").wait_for(timeout=120_000)
    item.get_by_role("button", name="Delete").click()
    page.locator(".jp-Dialog .jp-mod-warn").click()
    page.locator(".wb-Jobs [data-job='flights_kpis']").wait_for(state="detached")
    assert "flights_kpis" not in run_cli("jobs", "list", "--json", env=lab.env).stdout


def test_the_data_panel_lists_tables_and_inserts_snippets_that_run(lab: Lab, page: Any) -> None:
    _open_notebook(page, lab, "notebooks/flights_kpis.ipynb")
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    page.locator(".jp-SideBar [title='Workbench data']").first.click()
    item = page.locator(".wb-Data [data-table='flights']")
    item.locator(".wb-Data-name").click()
    columns = item.locator(".wb-Data-column")
    columns.first.wait_for()
    names = columns.all_inner_texts()
    assert {"carrier", "origin", "dep_delay"} <= set(names), names
    assert "rows" in item.inner_text()
    _shot(page, "9_data_panel")
    cells = page.locator(".jp-NotebookPanel .jp-Cell")
    before = cells.count()
    item.get_by_role("button", name="Insert %%sql").click()
    page.wait_for_function(
        f"document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length == {before + 2}"
    )
    sources = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").all_inner_texts()
    sql_at = next(n for n, text in enumerate(sources) if text.startswith("%%sql"))
    assert sources[sql_at - 1] == "%load_ext workbench"
    assert "FROM flights" in sources[sql_at] and "LIMIT 10" in sources[sql_at]
    # Run the two inserted cells: the query answers in the notebook, with the table's rows.
    page.locator(".jp-NotebookPanel .jp-Cell").nth(sql_at - 1).click()
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-NotebookPanel .jp-Cell").nth(sql_at).locator(".jp-OutputArea")
    output.locator("table").first.wait_for(timeout=60_000)
    shown = output.inner_text()
    assert "dep_delay" in shown and "2013" in shown  # the first columns, the rows of 2013
    _shot(page, "10_sql_snippet_ran")


def test_a_failed_run_notifies_and_opens_its_notebook_at_the_failing_cell(
    lab: Lab, page: Any
) -> None:
    _open_notebook(page, lab, "notebooks/fails_in_cell_3.ipynb")
    page.locator(RUN_BUTTON).click()
    dialog = page.locator(".wb-RunDialog")
    dialog.get_by_role("button", name="Run now").click()
    dialog.locator(".wb-Form-status[data-status='failed']").wait_for(timeout=120_000)
    dialog.get_by_role("button", name="Close").click()
    toast = page.locator(".Toastify__toast", has_text="Run of fails_in_cell_3.ipynb failed")
    toast.get_by_text("in cell 3: ValueError: no flights on that day").wait_for()
    _shot(page, "11_failed_notification")
    # The output opened in front; the notification's link brings the notebook back with cell 3
    # active.
    toast.get_by_role("button", name="Go to cell 3").click()
    active = page.locator(".jp-NotebookPanel:visible .jp-Cell.jp-mod-active")
    active.get_by_text("raise ValueError").wait_for()
    # The Runs panel offers the same cell.
    page.locator(".jp-SideBar [title='Workbench runs']").first.click()
    row = page.locator(".wb-Runs-item[data-status='failed']").first
    row.get_by_role("button", name="Cell 3").wait_for()
    assert "ValueError in cell 3" in (row.locator(".wb-Runs-status").get_attribute("title") or "")
    _shot(page, "12_failing_cell")


def test_the_launcher_has_a_tile_for_each_dashboard(lab: Lab, page: Any) -> None:
    page.goto(f"{lab.base}/lab?token={lab.token}")
    page.locator(".jp-SideBar").first.wait_for(timeout=60_000)
    page.keyboard.press("Control+Shift+L")  # a new launcher
    # The launcher in front (the workspace may bring back others, hidden behind it).
    section = page.locator(
        ".jp-Launcher:visible .jp-Launcher-section", has_text="Workbench dashboards"
    )
    tiles = section.locator(".jp-LauncherCard")
    expect(tiles).to_have_count(len(list((ROOT / "dashboards").glob("*.ipynb"))), timeout=30_000)
    _shot(page, "13_launcher_dashboards")
    # A tile opens the dashboard on the dashboards server, in a tab of its own (what the tab
    # asks for is the test: no dashboards server answers it here).
    navigation = page.context.expect_event("request", lambda r: r.is_navigation_request())
    with navigation as asked, page.expect_popup() as opened:
        tiles.first.click()
    url = asked.value.url
    assert url.startswith(DASHBOARDS_URL + "voila/render/") and url.endswith(".ipynb"), url
    opened.value.close()


def test_the_run_command_is_in_the_palette_and_the_file_browsers_menu(lab: Lab, page: Any) -> None:
    page.goto(f"{lab.base}/lab/tree/notebooks?token={lab.token}")  # the folder, in the browser
    tab = page.locator(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']")
    tab.wait_for(timeout=60_000)
    if tab.get_attribute("aria-selected") != "true":  # another panel was left open
        tab.click()
    browser = page.locator(".jp-DirListing-content")
    browser.get_by_text("flights_kpis.ipynb", exact=True).click(button="right", timeout=60_000)
    page.locator(".lm-Menu-item", has_text="Run with Workbench").first.wait_for()
    _shot(page, "4_context_menu")
    page.locator(".lm-Menu-item", has_text="Run with Workbench").first.click()
    page.locator(".wb-RunDialog #wb-param-on_time_minutes").wait_for()
    page.keyboard.press("Escape")
    assert page.locator(".wb-RunDialog").count() == 0
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("Show Workbench Runs")
    page.locator(".lm-CommandPalette-item", has_text="Show Workbench Runs").first.wait_for()


def test_the_form_and_the_runs_panel_follow_the_dark_theme(lab: Lab, page: Any) -> None:
    """Last in the module: the theme is a user setting and stays chosen."""
    _open_notebook(page, lab, "notebooks/flights_kpis.ipynb")
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Dark").first.click()
    page.locator("body[data-jp-theme-light='false']").wait_for(state="attached")
    page.locator(RUN_BUTTON).click()
    page.locator(".wb-RunDialog #wb-param-on_time_minutes").wait_for()

    def luminance(selector: str) -> float:
        rgb = page.evaluate(
            "s => getComputedStyle(document.querySelector(s)).backgroundColor", selector
        )
        red, green, blue = (int(x) for x in rgb[rgb.index("(") + 1 : -1].split(",")[:3])
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    assert luminance(".wb-RunDialog .jp-Dialog-content") < 80  # dark, as JupyterLab's own
    _shot(page, "5_dark_form")
    page.locator(".wb-RunDialog").get_by_role("button", name="Schedule…").click()
    page.locator(".wb-RunDialog #wb-job-schedule").fill("30 6 * * 1-5")
    page.locator(".wb-Schedule-preview li[data-time]").nth(4).wait_for()
    assert luminance(".wb-RunDialog #wb-job-schedule") < 80
    _shot(page, "5b_dark_schedule")
    page.keyboard.press("Escape")
    page.locator(".jp-SideBar [title='Workbench runs']").first.click()
    page.locator("#workbench-runs .wb-Runs-item").first.wait_for()
    assert luminance("#workbench-runs") < 80
    _shot(page, "6_dark_runs")
    page.locator(".jp-SideBar [title='Workbench jobs']").first.click()
    page.locator(".wb-Jobs .wb-Runs-message, .wb-Jobs .wb-Runs-item").first.wait_for()
    assert luminance(".wb-Jobs") < 80
    _shot(page, "6b_dark_jobs")
    page.locator(".jp-SideBar [title='Workbench data']").first.click()
    page.locator(".wb-Data [data-table='flights'] .wb-Data-name").click()
    page.locator(".wb-Data .wb-Data-column").first.wait_for()
    assert luminance(".wb-Data") < 80
    _shot(page, "6c_dark_data")

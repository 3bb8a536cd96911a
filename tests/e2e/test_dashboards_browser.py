"""The dashboards in real Chromium: sign-in, filters, per-team rows, lock-down, shutdown.

Expected numbers come from pandas on the very rows the world wrote, not from the server.
"""

from __future__ import annotations

import http.client
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pandas as pd
import psutil
import pytest
from playwright.sync_api import expect

from tests.e2e.world import Server, World

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DASHBOARD = "voila/render/flights_operations.ipynb"


def on_time(rows: pd.DataFrame) -> str:
    """The on-time KPI as the dashboard shows it, computed independently."""
    arrived = rows["arr_delay"].dropna()
    return f"{100 * float((arrived < 15).mean()):.1f}%"


def flights(rows: pd.DataFrame) -> str:
    return f"{len(rows):,}"


def sign_in(
    page: Any, server: Server, world: World, team: str, *, password: str | None = None
) -> None:
    name, real = world.viewers[team]
    page.goto(server.base)
    page.wait_for_url(re.compile(r"/login"))
    page.fill("#username", name)
    page.fill("#password", password if password is not None else real)
    page.click("button[type=submit]")


def kpi(page: Any, title: str) -> Any:
    return page.locator(f".wb-kpi[data-title='{title}'] .wb-kpi-value")


def open_dashboard(page: Any, server: Server, *, go: bool = True) -> None:
    """Open the flights dashboard (``go=False``: a link to it was just followed) and wait
    until its numbers are shown."""
    if go:
        page.goto(server.base + DASHBOARD)
    else:
        page.wait_for_url(server.base + DASHBOARD)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wb-kpi-value')].some(e => /\\d/.test(e.textContent))"
    )


def test_unauthenticated_request_goes_to_login(page: Any, server: Server) -> None:
    page.goto(server.base + DASHBOARD)
    page.wait_for_url(re.compile(r"/login\?next="))
    assert page.locator("#password").is_visible()


def test_wrong_password_shows_an_error(page: Any, server: Server, world: World) -> None:
    sign_in(page, server, world, "a", password="not-the-password")
    alert = page.locator("[role=alert]")
    alert.wait_for()
    assert alert.text_content() == "Wrong user name or password."
    assert "/login" in page.url


def test_viewer_filters_by_carrier_and_sees_the_pandas_value(
    page: Any, server: Server, world: World
) -> None:
    sign_in(page, server, world, "a")
    page.get_by_role("link", name="Flight operations").click()
    open_dashboard(page, server, go=False)  # one page view: one pre-heated kernel
    mine = world.rows_of("a")
    # At the default filters: the results team a's scheduled KPI run recorded.
    expect(page.locator(".wb-freshness")).to_have_text(
        re.compile(r"^Data as of .* \(scheduled run flights_kpis_\w+_a\)")
    )
    expect(kpi(page, "On-time arrivals")).to_have_text(on_time(mine))
    expect(kpi(page, "Flights")).to_have_text(flights(mine))

    carrier = mine["carrier"].value_counts().index[1]  # a busy carrier, not the busiest
    page.locator(".widget-dropdown", has_text="Carrier").locator("select").select_option(
        label=carrier
    )
    expected = on_time(mine[mine["carrier"] == carrier])
    assert expected != on_time(mine)
    expect(kpi(page, "On-time arrivals")).to_have_text(expected)
    expect(kpi(page, "Flights")).to_have_text(flights(mine[mine["carrier"] == carrier]))
    # Another carrier: live (cached) queries, with the time they ran.
    expect(page.locator(".wb-freshness")).to_have_text(re.compile(r"^Data as of [^(]*· queried"))
    expect(page.locator(".bqplot")).to_have_count(2)  # both charts drawn


def test_a_pool_kernel_warms_after_the_page_not_during_it(
    page: Any, server: Server, world: World
) -> None:
    # Taking a pre-heated kernel starts its replacement at once; it waits for the page.
    before = server.log.read_text(errors="replace").count("waited")
    sign_in(page, server, world, "a")
    page.wait_for_url(server.base)
    open_dashboard(page, server)
    expect(kpi(page, "Flights")).to_have_text(flights(world.rows_of("a")))
    log = server.log.read_text(errors="replace")
    waits = re.findall(r"A pool kernel waited ([0-9.]+) s for the pages being rendered", log)
    assert len(waits) > before
    assert all(0 < float(s) <= 2.5 for s in waits)


def test_team_b_sees_team_b_numbers_not_a(page: Any, server: Server, world: World) -> None:
    sign_in(page, server, world, "b")
    page.wait_for_url(server.base)
    open_dashboard(page, server)
    theirs, others = world.rows_of("b"), world.rows_of("a")
    expect(kpi(page, "Flights")).to_have_text(flights(theirs))
    expect(kpi(page, "On-time arrivals")).to_have_text(on_time(theirs))
    # Team a's recorded results are not team b's: b's page queried live.
    expect(page.locator(".wb-freshness")).to_have_text(re.compile(r"^Data as of [^(]*· queried"))
    assert flights(theirs) != flights(others)
    options = page.locator(".widget-dropdown", has_text="Origin").locator("option")
    assert set(options.all_text_contents()) == {"All", *theirs["origin"].unique()}


def test_analyst_sees_workbench_operations(page: Any, server: Server, world: World) -> None:
    sign_in(page, server, world, "analyst")
    page.get_by_role("link", name="Workbench operations").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wb-kpi-value')].some(e => /\\d/.test(e.textContent))"
    )
    seeded = [(day + job) % 5 == 0 for job in range(3) for day in range(7)]
    seeded.append(False)  # the flights KPI job's run (recorded results), succeeded
    expect(kpi(page, "Runs")).to_have_text(str(len(seeded)))
    expect(kpi(page, "Failure rate")).to_have_text(f"{100 * sum(seeded) / len(seeded):.1f}%")
    page.get_by_text("Next scheduled runs").wait_for()
    assert page.locator("a", has_text="output notebook").count() == sum(seeded)
    # A failure as every other place says it: the notebook's own cell number, the name once.
    expect(page.get_by_text("KeyError in cell 3: 'carrier' is not a column").first).to_be_visible()
    assert page.get_by_text("KeyError: KeyError").count() == 0
    expect(page.locator("text=Service health").locator("..")).to_contain_text("database")


def test_output_notebook_links_open_only_for_those_who_may_see_the_run(
    page: Any, server: Server, world: World
) -> None:
    sign_in(page, server, world, "analyst")
    page.wait_for_url(server.base)
    page.goto(server.base + "voila/render/workbench_operations.ipynb")
    link = page.locator("a", has_text="output notebook").first
    expect(link).to_be_visible()
    address = urljoin(page.url, link.get_attribute("href"))
    assert re.search(r"/runs/[0-9a-f-]{36}/output$", address)
    reply = page.goto(address)
    assert reply.status == 200
    assert reply.headers["content-security-policy"].startswith("sandbox")
    expect(page.get_by_role("heading", name=re.compile(r"^Output of daily_kpis_"))).to_be_visible()
    # Team b's run is not team a's analyst's to see; neither is a run that does not exist.
    for run_id in (world.failed_runs["b"][0], uuid.uuid4()):
        reply = page.goto(f"{server.base}runs/{run_id}/output")
        assert reply.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_viewers_may_not_open_run_outputs(page: Any, server: Server, world: World) -> None:
    sign_in(page, server, world, "a")
    page.wait_for_url(server.base)
    reply = page.goto(f"{server.base}runs/{world.failed_runs['a'][0]}/output")
    assert reply.status == 404  # the same answer as for a run that does not exist
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_viewer_may_not_open_workbench_operations(page: Any, server: Server, world: World) -> None:
    sign_in(page, server, world, "a")
    page.wait_for_url(server.base)
    assert page.get_by_role("link", name="Flight operations").is_visible()
    assert page.get_by_role("link", name="Workbench operations").count() == 0
    reply = page.goto(server.base + "voila/render/workbench_operations.ipynb")
    assert reply.status == 403
    assert page.get_by_role("heading", name="Not allowed").is_visible()


def _kernel_id(page: Any) -> str:
    found = re.search(r'"kernelId":\s*"([0-9a-f-]+)"', page.content())
    assert found, "the dashboard page names its kernel"
    return found.group(1)


def test_browser_cannot_execute_code_in_the_kernel(
    page: Any, server: Server, world: World, tmp_path: Path
) -> None:
    sign_in(page, server, world, "a")
    page.wait_for_url(server.base)
    open_dashboard(page, server)
    marker = tmp_path / "executed"
    message = {
        "header": {"msg_id": "x1", "msg_type": "execute_request", "session": "s", "username": "",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": f"open({str(marker)!r}, 'w').write('ran')", "silent": False,
                    "store_history": False, "user_expressions": {}, "allow_stdin": False},
    }  # fmt: skip
    probe = dict(
        message, header=dict(message["header"], msg_id="x2", msg_type="kernel_info_request")
    )
    probe["content"] = {}
    replies = page.evaluate(
        """async ([url, execute, probe]) => {
            const ws = new WebSocket(url);
            const seen = [];
            ws.onmessage = (e) => { try { seen.push(JSON.parse(e.data).msg_type); } catch (_) {} };
            await new Promise((ok) => { ws.onopen = ok; });
            ws.send(JSON.stringify(execute));
            ws.send(JSON.stringify(probe));
            await new Promise((ok) => setTimeout(ok, 2500));
            ws.close();
            return seen;
        }""",
        [
            server.base.replace("http", "ws") + f"api/kernels/{_kernel_id(page)}/channels",
            message,
            probe,
        ],
    )
    assert "kernel_info_reply" in replies  # the channel works ...
    assert "execute_reply" not in replies  # ... but code is refused
    assert not marker.exists()


@pytest.mark.parametrize(
    "path",
    [
        "voila/files/..%2f..%2f..%2fetc%2fpasswd",
        "voila/files/../../../../etc/passwd",
        "voila/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "voila/templates/lab/static/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "voila/render/..%2fpyproject.toml",
        "no/such/page",
    ],
)
def test_path_traversal_is_404_with_a_friendly_page(
    page: Any, server: Server, world: World, path: str
) -> None:
    sign_in(page, server, world, "a")
    page.wait_for_url(server.base)
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    host, port = server.base.split("//")[1].strip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/" + path, headers={"Cookie": cookie})  # as is, not normalised
        reply = connection.getresponse()
        body = reply.read().decode()
    finally:
        connection.close()
    assert reply.status == 404
    assert "root:" not in body and "Traceback" not in body
    assert "Not found" in body
    page.set_content(body)


def test_session_cookie_is_httponly_and_samesite(page: Any, server: Server, world: World) -> None:
    sign_in(page, server, world, "a")
    page.wait_for_url(server.base)
    session = [c for c in page.context.cookies() if c["name"] == "workbench_session"]
    assert len(session) == 1
    assert session[0]["httpOnly"] is True
    assert session[0]["sameSite"] == "Lax"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login"))
    assert not [c for c in page.context.cookies() if c["name"] == "workbench_session"]


def test_signing_out_needs_a_posted_form_with_its_xsrf_token(
    page: Any, server: Server, world: World
) -> None:
    sign_in(page, server, world, "a")
    page.wait_for_url(server.base)
    # A link (or another site's <img>) to the logout address only asks.
    page.goto(server.base + "logout")
    expect(page.get_by_role("heading", name="Sign out")).to_be_visible()
    page.goto(server.base)
    expect(page.get_by_role("link", name="Flight operations")).to_be_visible()
    # A post without the XSRF token (a forged form) is refused and signs nobody out.
    reply = page.request.post(server.base + "logout", form={"x": "1"}, max_redirects=0)
    assert reply.status == 403
    page.goto(server.base)
    expect(page.get_by_role("link", name="Flight operations")).to_be_visible()
    # The page's own button posts the token and signs out.
    page.goto(server.base + "logout")
    page.locator("main").get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login"))
    page.goto(server.base)
    page.wait_for_url(re.compile(r"/login\?next="))


def _ipc_kernels(server: Server) -> list[psutil.Process]:
    """Kernel processes with their channels bound (a spare becomes one when handed a kernel)."""
    return [
        k
        for k in server.kernels()
        if any("-ipc-" in str(c.laddr) for c in k.net_connections(kind="unix"))
    ]


def test_kernels_listen_on_ipc_sockets_not_tcp_ports(server: Server) -> None:
    deadline = time.monotonic() + 60
    while not (kernels := _ipc_kernels(server)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kernels, "no pool kernel has its channels on IPC sockets"
    for kernel in kernels:
        channels = {
            str(c.laddr) for c in kernel.net_connections(kind="unix") if "-ipc-" in str(c.laddr)
        }
        assert len(channels) == 5  # shell, iopub, stdin, control, heartbeat
        tcp = [c for c in kernel.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
        # Only ipykernel's own pipe for output of forked subprocesses (key-checked) is TCP;
        # on the TCP transport each of the five channels would listen here too.
        assert len(tcp) <= 1, tcp


def test_stopping_the_server_stops_every_kernel(server: Server) -> None:
    """Runs last in this module: SIGTERM the shared server, pooled kernels included."""
    assert server.kernels(), "the pool holds pre-heated kernels"
    started = time.monotonic()
    assert server.stop() == []
    assert time.monotonic() - started < 30
    assert server.process.returncode == 0

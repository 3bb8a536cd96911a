"""The dashboards in real Chromium under the server's security headers, and sign-in's ``next=``.

A dashboard renders its widgets and charts and answers a filter under the Content-Security-
Policy with no violation reported (the browser's own ``securitypolicyviolation`` events and
its console); another site cannot frame a page; and a hostile ``next=`` keeps the browser on
the server, after signing in and when already signed in.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.world import Server, World

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

#: Records every CSP violation the page reports, from before its first script runs.
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""
ELSEWHERE = re.compile(r"^https?://evil\.example")


def watch(page: Any) -> list[str]:
    """The console messages about the security policy, as the page runs."""
    said: list[str] = []
    page.add_init_script(WATCH_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            said.append(message.text)
            if re.search(r"Content Security Policy|Refused to", message.text)
            else None
        ),
    )
    return said


def sign_in(page: Any, server: Server, world: World, who: str, path: str = "login") -> None:
    name, password = world.viewers[who]
    page.goto(server.base + path)
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("button[type=submit]")


@pytest.mark.parametrize(
    ("who", "dashboard", "widgets"),
    [
        ("a", "flights_operations.ipynb", ".bqplot"),
        ("analyst", "workbench_operations.ipynb", ".wb-kpi-value"),
    ],
)
def test_a_dashboard_renders_under_the_policy_without_a_violation(
    page: Any, server: Server, world: World, who: str, dashboard: str, widgets: str
) -> None:
    said = watch(page)
    elsewhere: list[str] = []
    page.on(  # answers only: a request the policy refused gets none
        "response",
        lambda r: None if r.url.startswith(server.base) else elsewhere.append(r.url),
    )
    sign_in(page, server, world, who)
    page.wait_for_url(server.base)
    reply = page.goto(server.base + "voila/render/" + dashboard)
    policy = reply.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert reply.headers["x-content-type-options"] == "nosniff"
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wb-kpi-value')].some(e => /\\d/.test(e.textContent))"
    )
    expect(page.locator(widgets).first).to_be_visible()
    if who == "a":  # a filter's answer comes back over the kernel's websocket
        expect(page.locator(".bqplot")).to_have_count(2)
        before = page.locator(".wb-kpi[data-title='Flights'] .wb-kpi-value").text_content()
        carrier = world.rows_of("a")["carrier"].value_counts().index[1]
        page.locator(".widget-dropdown", has_text="Carrier").locator("select").select_option(
            label=carrier
        )
        expect(page.locator(".wb-kpi[data-title='Flights'] .wb-kpi-value")).not_to_have_text(
            before or ""
        )
    page.wait_for_timeout(500)  # late reports (fonts, images) arrive after the widgets
    refused = page.evaluate("window.__violations")
    assert refused == []  # Workbench's page template links nothing of another site
    assert said == []
    assert elsewhere == []  # nothing came from another site


def test_another_site_cannot_frame_a_dashboards_page(page: Any, server: Server) -> None:
    outer = (
        f'<iframe name="workbench" src="{server.base}login"></iframe>'
        '<iframe name="control" src="http://framing.example/inner"></iframe>'
    )
    pages = {"/": outer, "/inner": '<p id="inner">framed</p>'}
    page.route(
        re.compile(r"^http://framing\.example/"),
        lambda route: route.fulfill(
            status=200, content_type="text/html", body=pages[urlsplit(route.request.url).path]
        ),
    )
    page.goto("http://framing.example/")
    control = page.frame(name="control")
    assert control is not None
    control.wait_for_selector("#inner")  # this browser frames pages that allow it
    framed = page.frame(name="workbench")
    assert framed is not None
    page.wait_for_timeout(500)
    assert framed.url == "chrome-error://chromewebdata/"  # refused: frame-ancestors 'none'
    assert framed.query_selector("#password") is None


@pytest.mark.parametrize("hostile", ["/%09/evil.example", "/%0D/evil.example", "/%5Cevil.example"])
def test_a_hostile_next_keeps_the_browser_on_the_server(
    page: Any, server: Server, world: World, hostile: str
) -> None:
    left: list[str] = []

    def elsewhere(route: Any) -> None:
        left.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Another site</h1>")

    page.context.route(ELSEWHERE, elsewhere)
    sign_in(page, server, world, "a", path=f"login?next={hostile}")
    page.wait_for_url(server.base)
    expect(page.get_by_role("heading", name="Your dashboards")).to_be_visible()
    page.goto(f"{server.base}login?next={hostile}")  # already signed in: sent straight on
    page.wait_for_load_state()
    assert page.url == server.base
    expect(page.get_by_role("heading", name="Your dashboards")).to_be_visible()
    assert left == []

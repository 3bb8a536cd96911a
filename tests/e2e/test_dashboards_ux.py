"""The dashboards as a stakeholder meets them, in real Chromium at desktop and phone width.

Every page has the server's header (the dashboard's title, the viewer, a way back to the
index, sign-out); nothing is wider than a phone's screen; charts and tables with nothing to
show say so in a sentence; service health says "not running" in amber when jobs are scheduled
and no scheduler beats; no request leaves the server; the server logs no trust warnings.
Screenshots of each page at both widths are saved in the test's tmp folder.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.world import Server, World
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.dashboards import widgets
from workbench.db.models import ServiceKind
from workbench.ops.heartbeats import ServiceBeat

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DESKTOP, PHONE = 1280, 390
FLIGHTS = ("a", "flights_operations.ipynb", "Flight operations")
OPERATIONS = ("analyst", "workbench_operations.ipynb", "Workbench operations")
NUMBERS = (
    "() => [...document.querySelectorAll('.wb-kpi-value')].some(e => /\\d/.test(e.textContent))"
)
#: Records what the security policy refuses, from before the page's first script.
WATCH_REFUSALS = """window.__refused = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__refused.push(e.violatedDirective + ' ' + e.blockedURI));"""
#: Elements past the right edge of the viewport that are not in a scrolling box.
CUT = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getClientRects().length && !e.closest('.wb-scroll')
            && e.getBoundingClientRect().right > innerWidth + 1)
  .map(e => e.tagName + '.' + String(e.className).slice(0, 40))"""
#: The widest scrolling width of the document and of Voila's cell panel, and the viewport's.
WIDE = """() => [Math.max(document.documentElement.scrollWidth,
  document.getElementById('rendered_cells')?.scrollWidth ?? 0), innerWidth]"""
#: How tall the viewport must be to show the whole page at once.
TALL = """() => { const cells = document.getElementById('rendered_cells');
  return Math.ceil(cells ? cells.getBoundingClientRect().top + cells.scrollHeight + 8
                         : document.documentElement.scrollHeight); }"""
AMBER = "rgb(181, 71, 8)"
GREEN = "rgb(26, 127, 55)"


class Tab:
    """A browser tab of a fresh context at ``width``, recording every request it makes."""

    def __init__(self, browser: Any, width: int) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.add_init_script(WATCH_REFUSALS)

    def sign_in(self, server: Server, world: World, who: str) -> None:
        name, password = world.viewers[who]
        self.page.goto(server.base + "login")
        self.page.fill("#username", name)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(server.base)

    def open(self, server: Server, dashboard: str) -> None:
        self.page.goto(server.base + "voila/render/" + dashboard)
        self.page.wait_for_function(NUMBERS)
        self.page.wait_for_timeout(800)  # the charts draw after the numbers arrive

    def shoot(self, folder: Path, name: str) -> Path:
        """A screenshot of the whole page: a dashboard scrolls inside Voila's cell panel,
        so the viewport is made as tall as that panel's content for the shot."""
        path = folder / f"{name}.png"
        size = self.page.viewport_size
        tall = self.page.evaluate(TALL)
        self.page.set_viewport_size({"width": size["width"], "height": max(size["height"], tall)})
        self.page.wait_for_timeout(500)  # the charts redraw at the new size
        self.page.screenshot(path=str(path), full_page=True)
        self.page.set_viewport_size(size)
        return path

    def refused(self) -> list[str]:
        """What the page's security policy refused (a fetch from another site would be)."""
        found: list[str] = self.page.evaluate("window.__refused")
        return found

    def elsewhere(self, server: Server) -> list[str]:
        """Requests to anything but the server (``data:`` and ``blob:`` are the page's own)."""
        return [
            u for u in self.requests if not u.startswith((server.base, "data:", "blob:", "about:"))
        ]

    def page_scroll(self) -> tuple[int, int]:
        """How wide the page and Voila's cell panel (which scrolls itself) are inside, and
        the viewport's width."""
        got = self.page.evaluate(WIDE)
        return int(got[0]), int(got[1])

    def cut(self) -> list[str]:
        """Shown elements reaching past the viewport's right edge, other than inside a box
        that scrolls (a wide table): what an overflow hidden by a container would cut."""
        found: list[str] = self.page.evaluate(CUT)
        return found


@pytest.fixture
def tabs(browser: Any) -> Iterator[Any]:
    opened: list[Tab] = []

    def new(width: int) -> Tab:
        opened.append(Tab(browser, width))
        return opened[-1]

    yield new
    for tab in opened:
        tab.context.close()


def header_of(tab: Tab) -> Any:
    return tab.page.locator("header.wb-header")


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
@pytest.mark.parametrize("shown", [FLIGHTS, OPERATIONS], ids=["flights", "operations"])
def test_a_dashboard_has_the_header_fits_the_width_and_fetches_nothing_elsewhere(
    tabs: Any, server: Server, world: World, tmp_path: Path, shown: tuple[str, str, str], width: int
) -> None:
    who, dashboard, title = shown
    tab = tabs(width)
    tab.sign_in(server, world, who)
    tab.shoot(tmp_path, f"index-{width}")
    expect(header_of(tab).locator(".wb-viewer")).to_have_text(world.viewers[who][0])
    tab.open(server, dashboard)
    tab.shoot(tmp_path, f"{dashboard.removesuffix('.ipynb')}-{width}")
    assert tab.elsewhere(server) == []
    assert tab.refused() == []
    header = header_of(tab)
    expect(header).to_have_count(1)
    expect(header.get_by_role("heading", level=1)).to_have_text(title)
    expect(header.locator(".wb-viewer")).to_have_text(world.viewers[who][0])
    expect(header.get_by_role("button", name="Sign out")).to_be_visible()
    scroll_width, inner = tab.page_scroll()
    assert scroll_width <= inner, f"the page scrolls sideways at {width} px"
    assert tab.cut() == []
    # Each chart and its title lie within the viewport (nothing cut at the right).
    titles = tab.page.locator(".bqplot .mainheading")
    expect(titles.first).to_be_visible()
    assert titles.count() == 2
    for index in range(titles.count()):
        box = titles.nth(index).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= inner
    for figure in tab.page.locator(".bqplot").all():
        box = figure.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= inner + 0.5
    # The KPI tiles wrap: none reaches past the viewport.
    for tile in tab.page.locator(".wb-kpi").all():
        box = tile.bounding_box()
        assert box is not None and box["x"] + box["width"] <= inner + 0.5
    assert tab.elsewhere(server) == []
    # The way back: the header's link is the index.
    header.get_by_role("link", name="Workbench dashboards").click()
    tab.page.wait_for_url(server.base)
    expect(tab.page.get_by_role("link", name=title)).to_be_visible()
    assert tab.elsewhere(server) == []


def test_signing_out_from_a_dashboard_header_ends_the_session(
    tabs: Any, server: Server, world: World
) -> None:
    tab = tabs(PHONE)
    tab.sign_in(server, world, "a")
    tab.open(server, "flights_operations.ipynb")
    header_of(tab).get_by_role("button", name="Sign out").click()
    tab.page.wait_for_url(re.compile(r"/login"))
    tab.page.goto(server.base + "voila/render/flights_operations.ipynb")
    tab.page.wait_for_url(re.compile(r"/login\?next="))
    assert not [c for c in tab.context.cookies() if c["name"] == "workbench_session"]


def _no_such_pair(world: World) -> tuple[str, str]:
    """A carrier and an origin of team a's flights that never fly together."""
    rows = world.rows_of("a")
    flown = set(zip(rows["carrier"], rows["origin"], strict=True))
    for carrier in sorted(rows["carrier"].unique()):
        for origin in sorted(rows["origin"].unique()):
            if (carrier, origin) not in flown:
                return carrier, origin
    raise AssertionError("every carrier of team a flies from every origin of team a")


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_filters_that_match_nothing_say_so_instead_of_blank_charts(
    tabs: Any, server: Server, world: World, tmp_path: Path, width: int
) -> None:
    carrier, origin = _no_such_pair(world)
    tab = tabs(width)
    tab.sign_in(server, world, "a")
    tab.open(server, "flights_operations.ipynb")
    expect(tab.page.locator(".wb-empty-text")).to_have_count(0)
    page = tab.page
    page.locator(".widget-dropdown", has_text="Carrier").locator("select").select_option(
        label=carrier
    )
    page.locator(".widget-dropdown", has_text="Origin").locator("select").select_option(
        label=origin
    )
    sentences = page.locator(".wb-empty-text:visible", has_text="No flights match these filters.")
    expect(sentences).to_have_count(3)  # both charts and the routes table
    expect(page.locator(".bqplot").first).to_be_hidden()
    for title in ("Average departure delay by hour", "Average departure delay by month"):
        expect(page.locator(f".wb-empty[data-chart='{title}']")).to_be_visible()
    tab.shoot(tmp_path, f"flights-empty-{width}")
    assert tab.page_scroll()[0] <= tab.page_scroll()[1]
    assert tab.cut() == []
    # Back to filters with flights: the charts come back.
    page.locator(".widget-dropdown", has_text="Origin").locator("select").select_option(label="All")
    expect(page.locator(".bqplot").first).to_be_visible()
    expect(page.locator(".wb-empty-text:visible", has_text="No flights match")).to_have_count(0)


def _service(tab: Tab, name: str) -> Any:
    return tab.page.locator(f"tr.wb-service[data-service='{name}']")


def test_service_health_is_amber_while_jobs_wait_for_a_scheduler_and_green_once_one_beats(
    tabs: Any, server: Server, world: World, tmp_path: Path
) -> None:
    """The world's jobs are scheduled (team a's analyst sees them) and no scheduler runs."""
    tab = tabs(DESKTOP)
    tab.sign_in(server, world, "analyst")
    tab.open(server, "workbench_operations.ipynb")
    scheduler = _service(tab, "scheduler")
    expect(scheduler).to_have_attribute("data-state", "not running", timeout=60_000)
    state = scheduler.locator(".wb-service-state")
    expect(state).to_have_text("not running")
    assert state.evaluate("e => getComputedStyle(e).color") == AMBER
    expect(_service(tab, "database").locator(".wb-service-state")).to_have_text("ok")
    tab.shoot(tmp_path, "operations-no-scheduler")
    settings = load_settings(
        secret_key=world.env["WORKBENCH_SECRET_KEY"], home=Path(world.env["WORKBENCH_HOME"])
    )
    bench = Workbench(settings, world.url)
    beat = ServiceBeat(bench, ServiceKind.SCHEDULER, "ux-test-scheduler")
    try:
        tab.page.wait_for_timeout(2_100)  # the server reads the heartbeats every 2 s at most
        tab.open(server, "workbench_operations.ipynb")
        expect(_service(tab, "scheduler")).to_have_attribute(
            "data-state", "running", timeout=60_000
        )  # a kernel of its own per page (pool size 0), on a loaded machine
        running = _service(tab, "scheduler").locator(".wb-service-state")
        assert running.evaluate("e => getComputedStyle(e).color") == GREEN
    finally:
        beat.close()
        bench.close()


def test_the_services_answer_says_a_word_and_nothing_about_hosts(server: Server) -> None:
    """Anyone may ask (the page's kernel does, without a session), as for /readyz: the
    answer is whether a scheduler runs, not where, which process or since when."""
    with urllib.request.urlopen(server.base + "services", timeout=10) as reply:  # noqa: S310
        body = json.loads(reply.read())
        assert reply.headers["Cache-Control"] == "no-store"
    assert set(body) == {"scheduler"}
    assert body["scheduler"] in {"running", "not running"}


def test_service_state_names_a_scheduler_without_jobs_no_jobs_scheduled() -> None:
    assert widgets.service_state("scheduler", "not running", scheduled_jobs=0) == (
        "no jobs scheduled"
    )
    assert widgets.service_state("scheduler", "not running", scheduled_jobs=3) == "not running"
    assert widgets.service_state("scheduler", "running", scheduled_jobs=3) == "running"
    assert widgets.service_state("database", "ok", scheduled_jobs=0) == "ok"
    card = widgets.health_html({"scheduler": "not running"}, scheduled_jobs=0)
    assert 'data-state="no jobs scheduled"' in card and "#6b7785" in card  # grey


def test_the_server_logs_no_trust_warnings(server: Server) -> None:
    """Runs after the pages above: the server rendered dashboards, and said nothing of trust."""
    log = server.log.read_text()
    assert re.search(r"Using pre-heated kernel: \S+ for flights_operations\.ipynb", log)
    assert "is not trusted" not in log

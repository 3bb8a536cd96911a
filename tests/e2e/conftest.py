"""Fixtures for browser tests: one dashboard world and server per module, real Chromium.

Chromium is Debian's (/usr/bin/chromium), driven by Playwright; screenshots go to
tests/artifacts/. Without Chromium or PostgreSQL the tests skip (and fail in CI).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.e2e.world import Server, World, build_world, drop_roles, start_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="module")
def world(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with services.temporary_database(template=pg_template) as name:
        built = build_world(services.sqlalchemy_url(name), tmp_path_factory.mktemp("home"))
        yield built
    drop_roles(built)


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(world, tmp_path_factory.mktemp("serve"), pool_size=2)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        services.unavailable("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    playwright_sync = pytest.importorskip("playwright.sync_api")
    playwright_sync.expect.set_options(timeout=20_000)  # as patient as the pages (CI is loaded)
    with playwright_sync.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context (no cookies); saves a screenshot named after the test."""
    context = browser.new_context(viewport={"width": 1360, "height": 1000})  # type: ignore[attr-defined]
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()


@pytest.fixture(scope="session", autouse=True)
def _clean_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)

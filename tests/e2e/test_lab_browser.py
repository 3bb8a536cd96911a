"""`workbench lab` in Chromium: JupyterLab opens with its launcher, on the embedded database,
and a notebook of the project's opens from the file browser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import run_cli
from tests.lab_helpers import Lab, lab_env, start_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("lab")
    env = lab_env(workdir / "home", workdir / "jupyter")
    assert run_cli("init", env=env).code == 0
    running = start_lab(env, workdir)
    yield running
    running.stop()


def test_jupyterlab_opens_with_the_projects_notebooks(lab: Lab, page: Any) -> None:
    page.goto(f"{lab.base}/lab?token={lab.token}")
    page.locator(".jp-Launcher").first.wait_for(timeout=60_000)
    browser = page.locator(".jp-DirListing-content")
    browser.get_by_text("notebooks", exact=True).dblclick()
    browser.get_by_text("flights_kpis.ipynb", exact=True).wait_for()
    assert Path("notebooks/flights_kpis.ipynb").name in browser.inner_text()
    # The seat fetches nothing from outside: the news feed is off (JupyterLab's page config).
    assert '"news": {"disabled": true}' in lab.get(f"/lab?token={lab.token}").text
    # ... and asks nobody whether it may (the announcements plugin is off).
    config = json.loads(page.locator("#jupyter-config-data").text_content())
    assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"]
    assert page.get_by_text("official Jupyter news").count() == 0

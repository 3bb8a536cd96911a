"""Dashboard discovery, access rules, filters from the parameters cell, and the CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import ipywidgets as w

from tests.cli import run_cli
from tests.e2e.world import DASHBOARDS
from workbench.dashboards import catalog
from workbench.dashboards import widgets as ui
from workbench.db.models import Role


def test_shipped_dashboards_are_listed_with_their_access() -> None:
    found = {d.name: d for d in catalog.list_dashboards(DASHBOARDS)}
    assert set(found) >= {"flights_operations.ipynb", "workbench_operations.ipynb"}
    assert found["flights_operations.ipynb"].allows(Role.VIEWER)
    ops = found["workbench_operations.ipynb"]
    assert not ops.allows(Role.VIEWER) and ops.allows(Role.ANALYST) and ops.allows(Role.ADMIN)


def test_find_refuses_paths_outside_the_folder() -> None:
    assert catalog.find(DASHBOARDS, "flights_operations.ipynb") is not None
    for name in ("../pyproject.toml", "/etc/passwd", ".hidden.ipynb", "missing.ipynb"):
        assert catalog.find(DASHBOARDS, name) is None


def test_several_folders_are_served_as_one(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir(), second.mkdir()
    for folder, title in ((first, "First"), (second, "Second")):
        nb = {"cells": [], "metadata": {"workbench": {"title": title}}, "nbformat": 4,
              "nbformat_minor": 5}  # fmt: skip
        (folder / "same.ipynb").write_text(json.dumps(nb))
    (second / "only_two.ipynb").write_text(json.dumps(nb))
    root = catalog.serving_root([first, second])
    titles = {d.name: d.title for d in catalog.list_dashboards(root)}
    assert titles == {"same.ipynb": "First", "only_two.ipynb": "Second"}


def test_filters_follow_the_parameters_cell() -> None:
    controls = ui.filters(DASHBOARDS / "flights_operations.ipynb", carrier=["AA", "UA"])
    assert list(controls) == ["carrier", "origin", "start", "end"]
    assert isinstance(controls["carrier"], w.Dropdown)
    assert [label for label, _ in controls["carrier"].options] == ["All", "AA", "UA"]
    assert isinstance(controls["start"], w.DatePicker)
    assert controls["start"].value == date(2013, 1, 1)
    assert ui.values(controls)["carrier"] is None
    controls["carrier"].value = "UA"
    assert ui.values(controls)["carrier"] == "UA"


def test_cli_lists_dashboards() -> None:
    result = run_cli("dashboards", "list", "--folder", str(DASHBOARDS))
    assert result.code == 0, result.output
    assert "Flight operations" in result.output and "everyone" in result.output
    assert "admin, analyst" in result.output


def test_cli_serve_without_a_folder_says_what_to_do(tmp_path: Path) -> None:
    result = run_cli("dashboards", "serve", "--folder", str(tmp_path / "nowhere"))
    assert result.code != 0
    assert "None of the given dashboard folders exists" in result.output
    assert "Traceback" not in result.output

"""Tests of the example plugin through Workbench's real plugin manager and database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from workbench_example import plugin

from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.plugins.events import RunEvent
from workbench.plugins.manager import Plugins


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plugins:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_PLUGINS", "")
    loaded = Plugins(load_settings())
    loaded.manager.register(plugin, name="example")
    return loaded


def test_haversine_jfk_to_lax() -> None:
    # JFK (40.6398, -73.7789) to LAX (33.9425, -118.4081): about 3,983 km.
    assert plugin.haversine_km(40.6398, -73.7789, 33.9425, -118.4081) == pytest.approx(
        3983, rel=0.01
    )


def test_notifier_writes_events(plugins: Plugins, tmp_path: Path) -> None:
    (notifier,) = plugins.collect("register_notifiers", settings=load_settings())
    run_id = uuid.uuid4()
    notifier.notify(RunEvent(run_id=run_id, notebook="kpis.ipynb", status="failed"))
    lines = (tmp_path / "run-events.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["run_id"] == str(run_id)


def test_sql_function_on_sqlite(plugins: Plugins, tmp_path: Path) -> None:
    wb = Workbench(load_settings(), f"sqlite:///{tmp_path / 'x.db'}", plugins=plugins)
    try:
        with wb.engine.connect() as conn:
            km = conn.execute(
                text("SELECT example_haversine_km(40.6398, -73.7789, 33.9425, -118.4081)")
            ).scalar()
        assert km == pytest.approx(3983, rel=0.01)
    finally:
        wb.close()

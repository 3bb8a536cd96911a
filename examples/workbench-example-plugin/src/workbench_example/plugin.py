"""The example plugin's hook implementations."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from workbench import hookimpl
from workbench.core.config import Settings
from workbench.plugins.events import RunEvent

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


class JsonLinesNotifier:
    """Appends each run event to a JSON-lines file."""

    name = "example-jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path

    def notify(self, event: RunEvent) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(event), default=str) + "\n")


@hookimpl
def register_notifiers(settings: Settings) -> list[JsonLinesNotifier]:
    return [JsonLinesNotifier(settings.home_path / "run-events.jsonl")]


@hookimpl
def prepare_connection(dbapi_connection: Any, dialect: str) -> None:
    if dialect == "sqlite":
        dbapi_connection.create_function(
            "example_haversine_km", 4, haversine_km, deterministic=True
        )


@hookimpl
def register_commands(app: typer.Typer) -> None:
    @app.command("example-distance")
    def distance(lat1: float, lon1: float, lat2: float, lon2: float) -> None:
        """Great-circle distance in km between two coordinates (from the example plugin)."""
        typer.echo(f"{haversine_km(lat1, lon1, lat2, lon2):.1f} km")

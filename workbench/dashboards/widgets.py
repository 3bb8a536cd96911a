"""Kernel side: the building blocks of a dashboard page (filters, KPI cards, charts).

Filters come from the dashboard's parameters cell through the typed parameter schema of
runs (:mod:`workbench.runs.params`), so a dashboard declares them once, as a scheduled
notebook does. Charts are bqplot figures: the kernel sends numbers and the browser draws,
which keeps a page's server-side render short.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd
from bqplot import Axis, Bars, Figure, LinearScale, OrdinalScale

from workbench.runs.notebook import notebook_schema, read_notebook
from workbench.runs.params import Parameter

__all__ = [
    "ALL",
    "BarChart",
    "Kpi",
    "filters",
    "freshness",
    "header",
    "set_choices",
    "table_html",
    "values",
]

ALL = "All"
_ACCENT = "#1f6feb"
_CARD = (
    "background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.1);"
    "padding:14px 18px;margin:6px;min-width:170px"
)


def _widget(param: Parameter, choices: Sequence[Any] | None) -> w.Widget:
    label = (param.description or param.name.replace("_", " ")).capitalize()
    style = {"description_width": "initial"}
    kind = param.type.kind
    if choices is not None or kind == "literal":
        options = list(choices if choices is not None else param.type.choices)
        if param.type.nullable:
            options = [(ALL, ALL), *[(str(o), o) for o in options]]
        value = ALL if param.default is None else param.default
        return w.Dropdown(options=options, value=value, description=label, style=style)
    if kind == "date":
        return w.DatePicker(value=param.default, description=label, style=style)
    if kind == "integer":
        return w.IntText(value=param.default, description=label, style=style)
    if kind == "number":
        return w.FloatText(value=param.default, description=label, style=style)
    if kind == "boolean":
        return w.Checkbox(value=bool(param.default), description=label, style=style)
    return w.Text(value=param.default or "", description=label, style=style)


def filters(notebook: str | Path, **choices: Sequence[Any]) -> dict[str, w.Widget]:
    """One widget per parameter of ``notebook``'s parameters cell, named like it.

    ``choices`` gives the options of a parameter (a dropdown); a parameter that may be
    ``None`` gets an extra "All" option for it.
    """
    # The JSON alone: nbformat (and the schema validation it imports) would cost a
    # pre-heated kernel seconds of warm-up.
    schema = notebook_schema(read_notebook(notebook))
    return {p.name: _widget(p, choices.get(p.name)) for p in schema.parameters}


def set_choices(widget: w.Dropdown, choices: Sequence[Any], *, nullable: bool = True) -> None:
    """Replace a dropdown's options (e.g. with what the viewer may see), keeping "All"."""
    options: list[Any] = [(ALL, ALL)] if nullable else []
    options += [(str(c), c) for c in choices]
    current = widget.value
    widget.options = options
    widget.value = current if current in [o[1] for o in options] else options[0][1]


def values(controls: dict[str, w.Widget]) -> dict[str, Any]:
    """The filters' current values, with "All" as ``None`` (the parameter's own default)."""
    return {name: None if c.value == ALL else c.value for name, c in controls.items()}


def header(title: str, subtitle: str = "") -> w.HTML:
    sub = f'<div style="color:#52606d">{html.escape(subtitle)}</div>' if subtitle else ""
    return w.HTML(
        f'<div style="padding:6px 6px 2px"><h2 style="margin:0;color:#1f3a5f">'
        f"{html.escape(title)}</h2>{sub}</div>"
    )


class Kpi(w.HTML):  # type: ignore[misc]
    """A KPI card: a title, a big number and a note."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title
        self.show("…")

    def show(self, value: str, note: str = "") -> None:
        self.value = (
            f'<div class="wb-kpi" data-title="{html.escape(self.title)}" style="{_CARD}">'
            '<div style="color:#52606d;font-size:13px">'
            f"{html.escape(self.title)}</div>"
            f'<div class="wb-kpi-value" style="font-size:28px;font-weight:600;color:#1f2933">'
            f"{html.escape(value)}</div>"
            f'<div style="color:#7b8794;font-size:12px">{html.escape(note)}</div></div>'
        )


class BarChart:
    """A titled bar chart with labelled axes; :meth:`update` swaps its data."""

    def __init__(self, title: str, x_label: str, y_label: str, *, height: str = "300px") -> None:
        self._x = OrdinalScale()
        self._y = LinearScale()
        self.bars = Bars(x=[], y=[], scales={"x": self._x, "y": self._y}, colors=[_ACCENT])
        axes = [
            Axis(scale=self._x, label=x_label, grid_lines="none"),
            Axis(scale=self._y, label=y_label, orientation="vertical", label_offset="45px"),
        ]
        self.figure = Figure(
            marks=[self.bars],
            axes=axes,
            title=title,
            layout=w.Layout(width="100%", height=height),
            fig_margin={"top": 50, "bottom": 50, "left": 65, "right": 20},
        )

    def update(self, x: Sequence[Any], y: Sequence[float]) -> None:
        with self.bars.hold_sync():
            self.bars.x = [str(v) for v in x]
            self.bars.y = [float(v) for v in y]


def table_html(frame: pd.DataFrame, *, title: str) -> str:
    """A small, styled HTML table (values escaped)."""
    head = "".join(
        f'<th style="text-align:left;padding:4px 10px">{html.escape(str(c))}</th>'
        for c in frame.columns
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td style="padding:4px 10px;border-top:1px solid #e4e7eb">{html.escape(str(v))}</td>'
            for v in row
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return (
        f'<div style="{_CARD}"><div style="font-weight:600;margin-bottom:6px">'
        f'{html.escape(title)}</div><table style="border-collapse:collapse;width:100%">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def freshness(as_of: datetime | date | str, *, job: str | None = None, note: str = "") -> str:
    """The "Data as of ..." line under a dashboard: when the data was computed, by which
    scheduled run (``job``) if it comes from recorded results, and an optional ``note``."""
    if isinstance(as_of, str):  # SQLite's CURRENT_TIMESTAMP: UTC, as text
        as_of = datetime.fromisoformat(as_of).replace(tzinfo=UTC)
    if isinstance(as_of, datetime):
        moment = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        stamp = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    else:
        stamp = str(as_of)
    line = f"Data as of {stamp}" + (f" (scheduled run {job})" if job else "")
    return (
        f'<div class="wb-freshness" style="color:#7b8794;font-size:12px;padding:4px 8px">'
        f"{html.escape(line)}{html.escape(' · ' + note) if note else ''}</div>"
    )

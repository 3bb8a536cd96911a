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
    "card",
    "empty_state",
    "filters",
    "freshness",
    "full_width",
    "grid",
    "header",
    "health_html",
    "note",
    "service_state",
    "set_choices",
    "table_html",
    "tiles",
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


def full_width() -> w.Layout:
    """The layout of a card that holds a table: its row's width (not its table's), so a wide
    table scrolls inside the card instead of widening the page."""
    return w.Layout(width="100%", min_width="0")


def grid(children: Sequence[w.Widget], *, column: str = "420px") -> w.GridBox:
    """Side-by-side boxes at least ``column`` wide each, one under the other when the page
    is narrower (a phone): nothing is cut or squeezed."""
    return w.GridBox(
        list(children),
        layout=w.Layout(
            grid_template_columns=f"repeat(auto-fit, minmax(min(100%, {column}), 1fr))",
            width="100%",
        ),
    )


def tiles(cards: Sequence[w.Widget]) -> w.HBox:
    """KPI cards side by side, wrapping onto more rows as the page narrows (two a row on a
    phone), each as wide as its row allows."""
    row = w.HBox(list(cards), layout=w.Layout(flex_flow="row wrap", width="100%"))
    row.add_class("wb-tiles")
    return row


def note(text: str) -> str:
    """A line of context under the page header (whose data, or why there is none)."""
    return f'<div class="wb-note" style="color:#52606d;padding:4px 8px">{html.escape(text)}</div>'


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
    """A titled bar chart with labelled axes; :meth:`update` swaps its data. ``sideways``
    draws the bars across, their names down the left (long names, such as jobs', that would
    overlap under upright bars on a phone); ``numeric`` puts the bars on a number line (hours
    of a day), whose labels the browser thins out to fit the chart's width.

    Put :attr:`widget` on the page: the chart, or in its place a card with the chart's title
    and a sentence when there is nothing to draw (``empty``), never blank axes.
    """

    def __init__(
        self,
        title: str,
        x_label: str,
        y_label: str,
        *,
        height: str = "300px",
        empty: str = "Nothing to show.",
        sideways: bool = False,
        numeric: bool = False,
    ) -> None:
        self.title = title
        self.empty = empty
        self.numeric = numeric
        self._x = LinearScale() if numeric else OrdinalScale()
        self._y = LinearScale()
        self.bars = Bars(
            x=[],
            y=[],
            scales={"x": self._x, "y": self._y},
            colors=[_ACCENT],
            orientation="horizontal" if sideways else "vertical",
        )
        x_axis = Axis(
            scale=self._x,
            label="" if sideways else x_label,
            grid_lines="none",
            orientation="vertical" if sideways else "horizontal",
            label_offset="38px",
            tick_format="d" if numeric else None,
        )
        y_axis = Axis(
            scale=self._y,
            label=y_label,
            orientation="horizontal" if sideways else "vertical",
            label_offset="38px" if sideways else "45px",
            num_ticks=4 if sideways else None,  # across a phone, ten labels would overlap
        )
        self.figure = Figure(
            marks=[self.bars],
            axes=[x_axis, y_axis],
            title=title,
            title_style={"font-size": "15px"},
            layout=w.Layout(width="100%", min_width="0", height=height),
            fig_margin={"top": 50, "bottom": 50, "left": 150 if sideways else 65, "right": 30},
        )
        self._note = w.HTML(layout=w.Layout(display="none", width="100%", height=height))
        self.widget = w.VBox([self.figure, self._note], layout=w.Layout(min_width="0"))

    def update(self, x: Sequence[Any], y: Sequence[float], *, empty: str | None = None) -> None:
        """Draw ``x`` against ``y``; with no bars, show ``empty`` (or the chart's own
        sentence) under the chart's title instead."""
        with self.bars.hold_sync():
            self.bars.x = [float(v) if self.numeric else str(v) for v in x]
            self.bars.y = [float(v) for v in y]
        if len(self.bars.x):
            self._note.layout.display = "none"
            self.figure.layout.display = None
            return
        self._note.value = (
            f'<div class="wb-empty" data-chart="{html.escape(self.title)}" style="{_CARD};'
            'height:calc(100% - 12px);box-sizing:border-box;display:flex;flex-direction:column">'
            f'<div style="font-weight:600;text-align:center">{html.escape(self.title)}</div>'
            '<div class="wb-empty-text" style="margin:auto;color:#52606d;text-align:center">'
            f"{html.escape(empty or self.empty)}</div></div>"
        )
        self.figure.layout.display = "none"
        self._note.layout.display = None


def empty_state(sentence: str) -> str:
    """The sentence an empty chart or table shows instead of blank axes or an empty grid."""
    return (
        f'<p class="wb-empty-text" style="color:#52606d;margin:8px 10px">'
        f"{html.escape(sentence)}</p>"
    )


def card(title: str, content: str) -> str:
    """A titled white card around ``content`` (HTML), which scrolls inside the card when it
    is wider than the page (a table at phone width)."""
    return (
        f'<div style="{_CARD};min-width:0;box-sizing:border-box">'
        f'<div style="font-weight:600;margin-bottom:6px">{html.escape(title)}</div>'
        f'<div class="wb-scroll" style="overflow-x:auto;max-width:100%">{content}</div></div>'
    )


def table_html(frame: pd.DataFrame, *, title: str, empty: str = "Nothing to show.") -> str:
    """A small, styled HTML table (values escaped) in a card; with no rows, ``empty``."""
    if frame.empty:
        return card(title, empty_state(empty))
    head = "".join(
        f'<th style="text-align:left;padding:4px 10px;white-space:nowrap">'
        f"{html.escape(str(c))}</th>"
        for c in frame.columns
    )
    rows = "".join(
        "<tr>"
        + "".join(
            '<td style="padding:4px 10px;border-top:1px solid #e4e7eb;white-space:nowrap">'
            f"{html.escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return card(
        title,
        '<table style="border-collapse:collapse;width:100%">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>",
    )


#: How each state of a service is shown: its words and colour (green, red, amber, grey).
_STATES = {
    "ok": ("ok", "#1a7f37"),
    "running": ("running", "#1a7f37"),
    "failing": ("FAILING", "#b42318"),
    "not running": ("not running", "#b54708"),
    "no jobs scheduled": ("no jobs scheduled", "#6b7785"),
    "unknown": ("unknown", "#6b7785"),
}


def service_state(name: str, state: str, *, scheduled_jobs: int) -> str:
    """What the service-health card says of a service: a scheduler matters only when jobs
    are scheduled (none: "no jobs scheduled"; some and no scheduler beats: "not running")."""
    if name == "scheduler" and scheduled_jobs == 0:
        return "no jobs scheduled"
    return state


def health_html(services: dict[str, str], *, scheduled_jobs: int) -> str:
    """The service-health card: each service's state in words and colour (see
    :func:`service_state`)."""
    rows = []
    for name, state in services.items():
        shown = service_state(name, state, scheduled_jobs=scheduled_jobs)
        words, colour = _STATES.get(shown, (shown, "#6b7785"))
        rows.append(
            f'<tr class="wb-service" data-service="{html.escape(name)}" '
            f'data-state="{html.escape(shown)}"><td style="padding:4px 10px;'
            f'border-top:1px solid #e4e7eb">{html.escape(name)}</td>'
            f'<td style="padding:4px 10px;border-top:1px solid #e4e7eb">'
            f'<span style="display:inline-block;width:9px;height:9px;border-radius:50%;'
            f'background:{colour};margin-right:6px"></span>'
            f'<span class="wb-service-state" style="color:{colour};font-weight:600">'
            f"{html.escape(words)}</span></td></tr>"
        )
    return card(
        "Service health",
        '<table style="border-collapse:collapse;width:100%"><thead><tr>'
        '<th style="text-align:left;padding:4px 10px">Service</th>'
        '<th style="text-align:left;padding:4px 10px">Status</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>",
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

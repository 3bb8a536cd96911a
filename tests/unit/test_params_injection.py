"""Injected parameters are literals only: hostile names and values cannot run code."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime

import pytest

from workbench.runs.errors import NotebookError, ParameterError
from workbench.runs.notebook import (
    INJECTED_TAG,
    check_injection,
    inject_parameters,
    render_injection,
)
from workbench.runs.params import parse_parameters_source

HOSTILE = [
    "'; __import__('os').system('touch pwned'); '",
    '"""\nimport os\nos.system("touch pwned")\n"""',
    "\\",
    "line one\nline two\r\n\x00\x1b[31m",
    "__import__('os').system('touch pwned')",
    "{0.__class__}",
    "Zürich — 東京 — 🚀 — \u202e",
    "x" * 200_000,
]


def _run_injected(source: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(source, "<injected>", "exec"), namespace)  # noqa: S102 - the point of the test
    namespace.pop("__builtins__", None)
    return namespace


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_round_trip_as_data(value: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    schema = parse_parameters_source('carrier: str = "UA"\n')
    source = render_injection(schema.validate({"carrier": value}))
    assert _run_injected(source) == {"carrier": value}
    assert not (tmp_path / "pwned").exists()


def test_every_type_renders_as_a_checked_literal() -> None:
    values = {
        "a": -3, "b": 1.5e-300, "c": True, "d": None, "e": date(2013, 1, 2),
        "f": datetime(2013, 1, 2, 3, 4, 5, tzinfo=UTC), "g": ["x", "y'"],
    }  # fmt: skip
    source = render_injection(values)
    assert _run_injected(source) == values


def test_secrets_are_injected_as_a_reference_by_name_only() -> None:
    source = render_injection({"token": "secret:API_TOKEN"})
    assert "resolve as _wb_secret" in source
    assert "token = _wb_secret('API_TOKEN')" in source


@pytest.mark.parametrize(
    "source",
    [
        "x = __import__('os')\n",
        "x = open('f')\n",
        "x = _wb_secret(name)\n",
        "y = 1\n",  # a name nobody asked for
        "x = 1; print(x)\n",
        "x = [f()]\n",
    ],
)
def test_the_final_check_refuses_anything_but_literals(source: str) -> None:
    with pytest.raises(NotebookError):
        check_injection(source, {"x"})


def test_names_that_are_not_identifiers_never_reach_rendering() -> None:
    schema = parse_parameters_source("x: int = 1\n")
    for name in ["x=1;import os;x", "x\ny", "1x", "", "def"]:
        with pytest.raises(ParameterError):
            schema.validate({name: 1})


def test_injected_cell_follows_the_parameters_cell() -> None:
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# title"},
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x: int = 1"},
            {"cell_type": "code", "metadata": {}, "source": "print(x)"},
        ],
    }
    out = inject_parameters(nb, {"x": 2})
    assert [c["metadata"].get("tags") for c in out["cells"]] == [
        None, ["parameters"], [INJECTED_TAG], None,
    ]  # fmt: skip
    assert ast.parse(out["cells"][2]["source"])
    assert len(nb["cells"]) == 3  # the input is not modified

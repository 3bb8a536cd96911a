"""The typed parameter schema: reading the parameters cell, validating and coercing values."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from workbench.runs.errors import NotebookError, ParameterError
from workbench.runs.params import parse_parameters_source

CELL = """
import datetime
from typing import Literal, Optional

carrier: str = "UA"  # airline code
start: datetime.date = datetime.date(2013, 1, 1)  # first day
until: datetime.datetime = datetime.datetime(2013, 2, 1, 12, 30)
min_delay: int = 15  # minutes
ratio: float = 0.5
verbose: bool = False
mode: Literal["arrivals", "departures"] = "arrivals"  # which side
label: Optional[str] = None
limit: int | None = None
tags: list[str] = []
legacy = 3  # inferred from the default
"""


@pytest.fixture
def schema():
    return parse_parameters_source(CELL)


def test_schema_reads_types_defaults_and_descriptions(schema) -> None:
    assert schema.names == [
        "carrier", "start", "until", "min_delay", "ratio", "verbose", "mode", "label",
        "limit", "tags", "legacy",
    ]  # fmt: skip
    assert schema["carrier"].description == "airline code"
    assert schema["start"].default == date(2013, 1, 1)
    assert schema["until"].default == datetime(2013, 2, 1, 12, 30)
    assert schema["mode"].type.choices == ("arrivals", "departures")
    assert schema["label"].type.nullable and schema["limit"].type.nullable
    assert schema["tags"].type.kind == "list"
    assert schema["legacy"].type.kind == "integer"


def test_schema_is_serialisable_json(schema) -> None:
    doc = json.loads(json.dumps(schema.to_dict()))
    props = doc["properties"]
    assert props["start"] == {
        "type": "string", "format": "date", "default": "2013-01-01", "description": "first day",
    }  # fmt: skip
    assert props["mode"]["enum"] == ["arrivals", "departures"]
    assert props["min_delay"]["type"] == "integer"
    assert doc["additionalProperties"] is False


def test_cli_strings_are_coerced_by_type(schema) -> None:
    values = schema.parse_text(
        {
            "carrier": "AA", "start": "2013-03-04", "until": "2013-03-04T05:06:07",
            "min_delay": "-5", "ratio": "1e-3", "verbose": "yes", "mode": "departures",
            "label": "none", "tags": "a,b",
        },
    )  # fmt: skip
    assert values == {
        "carrier": "AA", "start": date(2013, 3, 4), "until": datetime(2013, 3, 4, 5, 6, 7),
        "min_delay": -5, "ratio": 0.001, "verbose": True, "mode": "departures",
        "label": None, "tags": ["a", "b"],
    }  # fmt: skip
    # The converted values are what a Python caller passes: validating them changes nothing.
    assert schema.validate(values) == values


def test_cli_lists_take_commas_or_json_and_optional_values_take_none(schema) -> None:
    typed = schema.parse_text({"tags": '["a,b", "c"]', "limit": "null", "label": "None"})
    assert typed == {"tags": ["a,b", "c"], "limit": None, "label": None}
    assert schema.parse_text({"carrier": "none"}) == {"carrier": "none"}  # not optional
    assert schema.parse_text({"carrier": "secret:API_TOKEN"}) == {"carrier": "secret:API_TOKEN"}
    assert schema.parse_text({}) == {}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ({"nope": "1"}, ["Unknown parameter 'nope'", "carrier"]),
        ({"min_delay": "soon"}, ["min_delay: 'soon' is not a whole number (such as 15)."]),
        ({"ratio": "nan"}, ["ratio: 'nan' is not a number"]),
        ({"verbose": "maybe"}, ["verbose: 'maybe' is not true or false."]),
        ({"mode": "sideways"}, ["mode: 'sideways' is not one of arrivals, departures."]),
        ({"start": "2013-13-01"}, ["start: '2013-13-01' is not a date (YYYY-MM-DD)."]),
        ({"tags": "[1"}, ["tags: '[1' is not a list (a,b or a JSON list) of text."]),
        ({"tags": "[1]"}, ["'tags'", "str", "int"]),  # a JSON item is a Python value
        ({"limit": "many"}, ["limit: 'many' is not a whole number (such as 15), or none."]),
        ({"min_delay": "x" * 60}, ["min_delay: '" + "x" * 37 + "...' is not a whole number"]),
        ({"min_delay": "secret:TOKEN"}, ["'min_delay'", "secret reference"]),
        ({"carrier": "secret:bad name!"}, ["secret reference"]),
        ({"class": "1"}, ["not a valid parameter name"]),
    ],
)
def test_bad_cli_text_is_refused_in_the_users_terms(schema, text, words) -> None:
    """What a person typed is named back with the type in words, never in Python's terms; a
    ``secret:`` reference is never echoed."""
    with pytest.raises(ParameterError) as info:
        schema.parse_text(text)
    for word in words:
        assert word in str(info.value)
    assert "TOKEN" not in str(info.value) and "bad name" not in str(info.value)
    assert "datetime.date" not in str(info.value) and "type str" not in str(info.value)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"nope": 1}, ["Unknown parameter 'nope'", "carrier"]),
        ({"min_delay": "15"}, ["'min_delay'", "int", "str"]),
        ({"min_delay": True}, ["'min_delay'", "int", "bool"]),
        ({"min_delay": 1.5}, ["'min_delay'", "float"]),
        ({"ratio": float("nan")}, ["'ratio'", "float"]),
        ({"mode": "sideways"}, ["'mode'", "one of 'arrivals', 'departures'"]),
        ({"carrier": None}, ["'carrier'", "NoneType"]),
        ({"start": "yesterday"}, ["'start'", "date"]),
        ({"tags": [1]}, ["'tags'", "str", "int"]),
        ({"min_delay": "secret:TOKEN"}, ["'min_delay'", "secret reference"]),
        ({"carrier": "secret:bad name!"}, ["secret reference"]),
        ({"__import__('os')": 1}, ["not a valid parameter name"]),
        ({"class": 1}, ["not a valid parameter name"]),
        ({"a b": 1}, ["not a valid parameter name"]),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(schema, values, words) -> None:
    with pytest.raises(ParameterError) as info:
        schema.validate(values)
    for word in words:
        assert word in str(info.value)


def test_refusal_never_echoes_the_value(schema) -> None:
    with pytest.raises(ParameterError) as info:
        schema.validate({"min_delay": "hunter2-credential"})
    assert "hunter2" not in str(info.value)


def test_required_parameter_without_default() -> None:
    schema = parse_parameters_source("day: str  # required\n")
    assert schema.to_dict()["required"] == ["day"]
    with pytest.raises(ParameterError, match="Missing required parameter"):
        schema.validate({})


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("x: dict = {}\n", ["'x'", "cannot check"]),
        ("x: int = compute()\n", ["'x'", "not a literal"]),
        ("x: int = \n", ["not valid Python"]),
    ],
)
def test_unreadable_parameters_cells(source, words) -> None:
    with pytest.raises(NotebookError) as info:
        parse_parameters_source(source)
    for word in words:
        assert word in str(info.value)

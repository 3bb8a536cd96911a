"""Names are validated before SQL is built; parameters become placeholders, never text."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from workbench.data.backends.base import placeholders, to_positional
from workbench.data.errors import DataError
from workbench.db.errors import IdentifierError
from workbench.db.identifiers import check_column, check_columns, check_table, check_writable, quote


@pytest.mark.parametrize("name", ["sales", "daily_sales_2024", "_scratch", "a" * 63])
def test_valid_table_names(name: str) -> None:
    assert check_table(name) == name
    assert check_writable(name) == name


@pytest.mark.parametrize(
    "name",
    ["x; drop table users", "Sales", "2024_sales", "a-b", "a b", "", "a" * 64, "naïve", None, 3],
)
def test_invalid_table_names(name: object) -> None:
    with pytest.raises(IdentifierError, match="not a valid table name"):
        check_table(name)


@pytest.mark.parametrize("name", ["users", "runs", "datasets", "alembic_version", "_wb_stage_x"])
def test_workbench_tables_are_not_writable(name: str) -> None:
    with pytest.raises(IdentifierError, match="Workbench's own tables"):
        check_writable(name)


def test_column_names() -> None:
    assert check_column("DepDelay", "t") == "DepDelay"
    with pytest.raises(IdentifierError, match="Table 't': column 'a;b'"):
        check_column("a;b", "t")
    with pytest.raises(IdentifierError, match="column 'A' appears twice"):
        check_columns(["a", "A"], "t")
    with pytest.raises(IdentifierError, match="column 0"):
        check_column(0, "t")


def test_quote_always_quotes() -> None:
    assert quote(postgresql.dialect(), "select") == '"select"'  # type: ignore[no-untyped-call]
    assert quote(sqlite.dialect(), "Mixed") == '"Mixed"'


def test_to_positional_dollar_reuses_numbers() -> None:
    text, values = to_positional(
        "select :a, cast(:b as text), :a, y::date where x = '\\:lit'",
        {"a": 1, "b": "x'; drop table users; --"},
        "dollar",
    )
    assert text == "select $1, cast($2 as text), $1, y::date where x = ':lit'"
    assert values == [1, "x'; drop table users; --"]


def test_to_positional_qmark_repeats_values() -> None:
    text, values = to_positional("select :a, :b, :a", {"a": 1, "b": 2}, "qmark")
    assert text == "select ?, ?, ?"
    assert values == [1, 2, 1]


def test_to_positional_reports_missing_and_unused() -> None:
    with pytest.raises(DataError, match=":a but no value"):
        to_positional("select :a", {}, "qmark")
    with pytest.raises(DataError, match=r"Parameter\(s\) z are not used"):
        to_positional("select 1", {"z": 1}, "qmark")


def test_placeholders_skip_casts() -> None:
    assert placeholders("select :c::int, :b, :a, :b, x::date") == ["b", "a"]

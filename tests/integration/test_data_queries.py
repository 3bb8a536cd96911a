"""wb.sql, wb.read_table, wb.tables and wb.describe on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pandas as pd
import pytest

from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.core.errors import DatabaseError
from workbench.data.backends.postgres import libpq_uri
from workbench.data.errors import DataError, TableNotFoundError

SALES = pd.DataFrame(
    {
        "region": ["north", "south", "north", "east"],
        "amount": [10.0, 20.5, 30.0, 5.25],
        "day": [dt.date(2024, 1, d) for d in (1, 2, 3, 4)],
    }
)


@pytest.fixture
def sales(workbench: Workbench) -> Workbench:
    workbench.write(SALES, "sales")
    return workbench


def test_sql_binds_parameters(sales: Workbench) -> None:
    result = sales.sql(
        "select region, amount from sales where region = :region and amount > :least "
        "order by amount",
        region="north",
        least=15,
    )
    assert result.to_dict("list") == {"region": ["north"], "amount": [30.0]}


def test_sql_values_are_never_interpolated(sales: Workbench) -> None:
    hostile = "north' or '1'='1"
    result = sales.sql("select * from sales where region = :region", region=hostile)
    assert result.empty
    assert len(sales.read_table("sales")) == 4


def test_sql_reports_missing_and_unused_parameters(sales: Workbench) -> None:
    with pytest.raises(DataError, match=r":region but no value"):
        sales.sql("select * from sales where region = :region")
    with pytest.raises(DataError, match=r"Parameter\(s\) other are not used"):
        sales.sql("select * from sales", other=1)


def test_sql_returns_python_values_for_database_types(sales: Workbench) -> None:
    result = sales.sql("select cast(:d as numeric) as d, cast('1.50' as numeric) as n", d="2.25")
    if sales.engine.dialect.name == "sqlite":  # SQLite's NUMERIC is a number, not a decimal
        assert result["n"].tolist() == [1.5]
        return
    assert [str(v) for v in result["d"]] == ["2.25"]
    assert isinstance(result["n"].iloc[0], Decimal)
    assert str(result["n"].iloc[0]) == "1.50"
    ids = sales.sql("select id from datasets")["id"]
    assert isinstance(ids.iloc[0], uuid.UUID)


def test_sql_errors_are_workbench_errors(sales: Workbench) -> None:
    with pytest.raises(DataError, match="The query failed"):
        sales.sql("select no_such_column from sales")


def test_sql_statement_without_result(sales: Workbench) -> None:
    assert sales.sql("create table scratch (a integer)").empty
    assert sales.sql("insert into scratch values (:a)", a=7).empty
    assert sales.sql("select a from scratch")["a"].tolist() == [7]


def test_read_table_columns_where_limit(sales: Workbench) -> None:
    result = sales.read_table(
        "sales", columns=["amount", "day"], where="region = :r", params={"r": "north"}, limit=1
    )
    assert list(result.columns) == ["amount", "day"]
    assert result["day"].tolist() == [dt.date(2024, 1, 1)]
    with pytest.raises(DataError, match="limit"):
        sales.read_table("sales", limit=-1)
    with pytest.raises(DataError, match="without ';'"):
        sales.read_table("sales", where="1=1; drop table sales")


def test_read_table_refuses_columns_it_does_not_have_and_arguments_of_the_wrong_kind(
    sales: Workbench,
) -> None:
    # SQLite reads an unknown double-quoted name as text: "nope" in every row, not an error.
    with pytest.raises(DataError, match=r"has no column 'nope'; its columns: .*amount"):
        sales.read_table("sales", columns=["amount", "nope"])
    assert list(sales.read_table("sales", columns="amount").columns) == ["amount"]
    with pytest.raises(DataError, match="must be a list of column names"):
        sales.read_table("sales", columns=5)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="must be a list of column names"):
        sales.read_table("sales", columns=[1, 2])  # type: ignore[list-item]
    with pytest.raises(DataError, match="must be an SQL condition"):
        sales.read_table("sales", where=5)  # type: ignore[arg-type]
    with pytest.raises(TableNotFoundError):
        sales.read_table("nowhere", columns=["amount"])


def test_tables_lists_analyst_tables_only(sales: Workbench) -> None:
    listed = sales.tables()
    assert listed["name"].tolist() == ["sales"]
    assert listed["last_write_mode"].tolist() == ["create"]
    assert listed["last_write_rows"].tolist() == [4]


def test_describe_shows_columns_rows_owner_and_last_write(sales: Workbench) -> None:
    sales.write(SALES.head(1), "sales", mode="append")
    description = sales.describe("sales")
    assert description.rows == 5
    assert [c.name for c in description.columns] == ["region", "amount", "day"]
    assert [c.dtype for c in description.columns] == ["str", "float64", "object (date)"]
    assert description.last_write_mode == "append"
    assert description.last_write_rows == 1
    assert description.last_write_at is not None
    if sales.engine.dialect.name == "postgresql":
        assert description.owner == "postgres"
    html = description._repr_html_()
    assert "<table>" in html and "region" in html and "append" in html
    assert "rows: 5" in str(description)
    assert description.to_frame()["column"].tolist() == ["region", "amount", "day"]


def test_owner_is_the_account_whose_login_wrote_the_table(pg_url: str) -> None:
    from workbench.db.models import User

    wb = Workbench(load_settings(), pg_url)
    try:
        with wb.session() as session, session.begin():
            session.add(User(username="ana", db_role="postgres"))
        wb.write(SALES, "sales")
        wb.write(SALES, "sales", mode="replace")
        assert wb.describe("sales").owner == "ana"
    finally:
        wb.close()


def test_statement_timeout_applies_to_data_connections(pg_url: str) -> None:
    wb = Workbench(load_settings(statement_timeout_ms=200), pg_url)
    try:
        with pytest.raises(DataError, match="statement timeout"):
            wb.sql("select pg_sleep(2)")
    finally:
        wb.close()


def test_connection_failure_does_not_show_the_password(settings: object) -> None:
    url = "postgresql+psycopg://someone:s3cret-word@127.0.0.1:1/nothing"
    wb = Workbench(load_settings(connect_timeout=2), url)
    with pytest.raises(DatabaseError, match="Could not connect") as caught:
        wb.sql("select 1")
    assert "s3cret-word" not in str(caught.value)
    assert "***" in str(caught.value)


def test_libpq_uri_carries_the_connection_options() -> None:
    settings = load_settings(statement_timeout_ms=1234)
    uri = libpq_uri("postgresql+psycopg://u:p%40ss@db.example:5433/wb?sslmode=require", settings)
    assert uri.startswith("postgresql://u:p%40ss@db.example:5433/wb?")
    assert "sslmode=require" in uri
    assert "options=-c%20statement_timeout%3D1234" in uri
    assert "application_name=workbench" in uri

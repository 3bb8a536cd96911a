"""Every pandas type analysts use survives wb.write -> wb.read_table exactly, on both databases.

One test per type; each runs on SQLite and PostgreSQL (the ``workbench`` fixture).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from workbench.app import Workbench


def roundtrip(wb: Workbench, df: pd.DataFrame) -> pd.DataFrame:
    wb.write(df, "roundtrip")
    back = wb.read_table("roundtrip")
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    wb.write(df, "roundtrip", mode="append")
    twice = wb.read_table("roundtrip")
    pd.testing.assert_frame_equal(twice, pd.concat([df, df], ignore_index=True), check_exact=True)
    return back


def test_nullable_integers(workbench: Workbench) -> None:
    df = pd.DataFrame(
        {
            "nullable64": pd.array([1, None, -(2**63)], dtype="Int64"),
            "nullable32": pd.array([None, 2**31 - 1, 0], dtype="Int32"),
            "int64": np.array([2**63 - 1, 0, -1], dtype="int64"),
            "int8": np.array([-128, 0, 127], dtype="int8"),
            "uint32": np.array([0, 1, 2**32 - 1], dtype="uint32"),
        }
    )
    roundtrip(workbench, df)


def test_floats_nan_and_null(workbench: Workbench) -> None:
    df = pd.DataFrame(
        {
            "f64": [1.5, np.nan, np.inf, -np.inf, -0.0, 1e-308, 0.1 + 0.2],
            "f32": np.array([1.5, np.nan, 3.25, 0, 1, 2, 3], dtype="float32"),
            "nullable": pd.array([1.5, None, np.inf, 2.0, None, 0.0, -1.0], dtype="Float64"),
        }
    )
    roundtrip(workbench, df)
    # pandas' missing float (NaN) is stored as SQL NULL, so SQL sees it as missing too.
    nulls = workbench.sql("select count(*) as n from roundtrip where f64 is null")
    assert int(nulls["n"].iloc[0]) == 2


def test_strings_any_unicode(workbench: Workbench) -> None:
    texts = ["plain", "é à ü ß", "日本語", "emoji 😀👩‍👩‍👧", "quote ' \" ; --", "", None, "\t\n"]
    df = pd.DataFrame(
        {
            "str": pd.Series(texts, dtype="str"),
            "string": pd.Series(texts, dtype="string"),
            "object": pd.Series(texts, dtype=object),
        }
    )
    roundtrip(workbench, df)


def test_booleans(workbench: Workbench) -> None:
    df = pd.DataFrame(
        {"bool": [True, False, True], "boolean": pd.array([True, None, False], dtype="boolean")}
    )
    roundtrip(workbench, df)


def test_dates(workbench: Workbench) -> None:
    df = pd.DataFrame(
        {"day": [dt.date(2024, 2, 29), None, dt.date(1, 1, 1), dt.date(9999, 12, 31)]}
    )
    back = roundtrip(workbench, df)
    assert isinstance(back["day"].iloc[0], dt.date)


def test_timestamps_without_time_zone(workbench: Workbench) -> None:
    values = ["2024-03-31 01:59:59.999999", None, "1900-01-01 00:00:00", "2262-01-01 00:00:00"]
    df = pd.DataFrame(
        {
            "us": pd.to_datetime(values, format="ISO8601").as_unit("us"),
            "ns": pd.to_datetime([*values[:3], None], format="ISO8601").as_unit("ns"),
            "s": pd.to_datetime(values, format="ISO8601").as_unit("s").floor("s"),
        }
    )
    roundtrip(workbench, df)


def test_timestamps_with_time_zone(workbench: Workbench) -> None:
    local = pd.to_datetime(
        ["2024-03-31 01:30:00", None, "2024-10-27 02:30:00.000001"], format="ISO8601"
    )
    df = pd.DataFrame(
        {
            "utc": local.tz_localize("UTC"),
            "paris": local.tz_localize("Europe/Paris", ambiguous=[True, True, False]),
            "tokyo_ns": local.tz_localize("Asia/Tokyo").as_unit("ns"),
        }
    )
    roundtrip(workbench, df)


def test_decimals(workbench: Workbench) -> None:
    df = pd.DataFrame(
        {
            "amount": [
                Decimal("1.10"),
                None,
                Decimal("-12345678901234567890.12"),
                Decimal("0.00"),
            ]
        }
    )
    back = roundtrip(workbench, df)
    assert [str(v) for v in back["amount"] if v is not None] == [
        "1.10",
        "-12345678901234567890.12",
        "0.00",
    ]
    # A later write with more decimal places keeps them (and the older values' worth).
    workbench.write(pd.DataFrame({"amount": [Decimal("0.125")]}), "roundtrip", mode="append")
    amounts = workbench.read_table("roundtrip")["amount"]
    assert str(amounts.iloc[-1]) == "0.125"
    assert amounts.iloc[0] == Decimal("1.1")


def test_categoricals(workbench: Workbench) -> None:
    df = pd.DataFrame(
        {
            "size": pd.Categorical(["m", None, "s", "m"], categories=["s", "m", "l"], ordered=True),
            "code": pd.Categorical([3, 1, None, 3], categories=[1, 2, 3]),
        }
    )
    roundtrip(workbench, df)
    # Appending a value the recorded categories lack widens them instead of losing it.
    more = pd.DataFrame({"size": pd.Categorical(["xl"]), "code": pd.Categorical([2])})
    workbench.write(more, "roundtrip", mode="append")
    back = workbench.read_table("roundtrip")
    assert list(back["size"].cat.categories) == ["s", "m", "l", "xl"]
    assert back["size"].iloc[-1] == "xl"
    assert back["code"].iloc[-1] == 2


@pytest.mark.parametrize("unit", ["ns"])
def test_sub_microsecond_timestamps_are_refused_on_postgresql(
    workbench: Workbench, unit: str
) -> None:
    df = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 00:00:00.000000001"]).as_unit(unit)})
    if workbench.engine.dialect.name == "sqlite":
        roundtrip(workbench, df)  # kept as text with all nine digits
        return
    from workbench.data.errors import DataError

    with pytest.raises(DataError, match=r"'roundtrip'.*column 't'.*microsecond"):
        workbench.write(df, "roundtrip")

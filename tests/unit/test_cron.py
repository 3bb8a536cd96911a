"""Cron evaluation in real time zones, across both daylight-saving transitions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from workbench.scheduler.cron import next_slot, slots_between, validate_schedule
from workbench.scheduler.errors import ScheduleError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _local(slots: list[datetime], tz: ZoneInfo) -> list[str]:
    return [s.astimezone(tz).strftime("%m-%d %H:%M %Z") for s in slots]


def test_daily_0230_when_0230_does_not_exist() -> None:
    # 2026-03-29: Berlin clocks jump from 02:00 to 03:00; the 02:30 job runs once, at 03:00.
    slots = slots_between(
        "30 2 * * *",
        "Europe/Berlin",
        datetime(2026, 3, 27, 12, tzinfo=BERLIN),
        datetime(2026, 3, 31, 12, tzinfo=BERLIN),
    )
    assert _local(slots, BERLIN) == [
        "03-28 02:30 CET",
        "03-29 03:00 CEST",
        "03-30 02:30 CEST",
        "03-31 02:30 CEST",
    ]


def test_daily_0230_when_0230_happens_twice() -> None:
    # 2026-10-25: Berlin clocks fall back from 03:00 to 02:00; the 02:30 job runs once.
    slots = slots_between(
        "30 2 * * *",
        "Europe/Berlin",
        datetime(2026, 10, 23, 12, tzinfo=BERLIN),
        datetime(2026, 10, 27, 12, tzinfo=BERLIN),
    )
    assert _local(slots, BERLIN) == [
        "10-24 02:30 CEST",
        "10-25 02:30 CEST",
        "10-26 02:30 CET",
        "10-27 02:30 CET",
    ]
    gaps = {b - a for a, b in itertools.pairwise(slots)}
    assert gaps == {timedelta(hours=24), timedelta(hours=25)}


def test_new_york_spring_forward() -> None:
    slots = slots_between(
        "30 2 * * *",
        "America/New_York",
        datetime(2026, 3, 7, 12, tzinfo=NEW_YORK),
        datetime(2026, 3, 9, 12, tzinfo=NEW_YORK),
    )
    assert _local(slots, NEW_YORK) == ["03-08 03:00 EDT", "03-09 02:30 EDT"]


def test_interval_jobs_run_every_real_half_hour_through_the_repeated_hour() -> None:
    start = datetime(2026, 11, 1, 0, 15, tzinfo=NEW_YORK)
    end = start.astimezone(UTC) + timedelta(hours=3)  # 3 real hours, not 3 wall-clock hours
    slots = slots_between("*/30 * * * *", "America/New_York", start, end)
    # 3 real hours contain 6 half-hour slots even though the local clock repeats 01:00-02:00.
    assert len(slots) == 6
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(slots))


def test_next_slot_is_strictly_after_and_utc() -> None:
    at = datetime(2026, 1, 1, 6, tzinfo=UTC)
    nxt = next_slot("0 6 * * *", "UTC", at)
    assert nxt == datetime(2026, 1, 2, 6, tzinfo=UTC)
    assert nxt.tzinfo is UTC


@pytest.mark.parametrize("schedule", ["", "61 * * * *", "* * *", "every day", "0 6 * * mon-xyz"])
def test_invalid_schedules(schedule: str) -> None:
    with pytest.raises(ScheduleError, match="five fields"):
        validate_schedule(schedule)


def test_invalid_time_zone() -> None:
    with pytest.raises(ScheduleError, match="IANA"):
        validate_schedule("0 6 * * *", "Mars/Olympus_Mons")

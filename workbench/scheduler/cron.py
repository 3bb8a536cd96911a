"""Cron expressions evaluated in a job's own time zone, correct across daylight saving.

Semantics follow classic cron (via ``cronsim``): a fixed-time job whose local time does not
exist on the spring-forward day runs once, right after the gap; one whose local time happens
twice on the fall-back day runs once, at the first occurrence. Interval jobs (``*/30 * ...``)
run at every real interval, in both folds. All returned times are aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from workbench.scheduler.errors import ScheduleError

__all__ = ["next_slot", "slots_between", "validate_schedule", "zone"]

_EPSILON = timedelta(microseconds=1)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or a ScheduleError saying how to write one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"Unknown time zone {name!r}: use an IANA name such as 'America/New_York' or 'UTC'."
        ) from None


def validate_schedule(schedule: str, timezone: str = "UTC") -> None:
    """Raise ScheduleError unless ``schedule`` is a valid 5-field cron expression."""
    tz = zone(timezone)
    try:
        CronSim(schedule, datetime(2000, 1, 1, tzinfo=tz))
    except CronSimError as exc:
        raise ScheduleError(
            f"Invalid cron schedule {schedule!r} ({exc}); use five fields: "
            "minute hour day-of-month month day-of-week, e.g. '0 6 * * *'."
        ) from None


def _iterate(schedule: str, timezone: str, after: datetime) -> Iterator[datetime]:
    if after.tzinfo is None:
        raise ValueError("`after` must be an aware datetime")
    tz = zone(timezone)
    local = after.astimezone(tz)
    for slot in CronSim(schedule, local):
        yield slot.astimezone(UTC)


def next_slot(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first scheduled time strictly after ``after``."""
    return next(_iterate(schedule, timezone, after))


def next_slots(schedule: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` scheduled times strictly after ``after``."""
    return list(islice(_iterate(schedule, timezone, after), count))


def slots_between(
    schedule: str, timezone: str, start: datetime, end: datetime, limit: int = 100_000
) -> list[datetime]:
    """Scheduled times ``t`` with ``start <= t <= end`` (at most ``limit``, earliest first)."""
    slots: list[datetime] = []
    for slot in _iterate(schedule, timezone, start - _EPSILON):
        if slot > end or len(slots) >= limit:
            break
        slots.append(slot)
    return slots

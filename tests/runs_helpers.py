"""Helpers for tests that watch runs executed by other processes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import psutil

from workbench.app import Workbench
from workbench.db.models import Run


def run_row(wb: Workbench, run_id: uuid.UUID) -> Run:
    """The run's current row, read fresh from the database."""
    with wb.session() as s:
        row = s.get(Run, run_id)
        assert row is not None
        return row


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def family(pid: int) -> list[tuple[int, float]]:
    """(pid, start time) of every live descendant of ``pid``."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            found.append((child.pid, child.create_time()))
        except psutil.Error:
            continue
    return found


def still_alive(recorded: list[tuple[int, float]]) -> list[int]:
    """The processes of ``recorded`` still running (the same PID and start time, no zombie)."""
    alive = []
    for pid, started in recorded:
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE and process.create_time() == started:
                alive.append(pid)
        except psutil.Error:
            continue
    return alive

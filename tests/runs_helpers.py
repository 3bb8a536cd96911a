"""Helpers for tests that watch runs executed by other processes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

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

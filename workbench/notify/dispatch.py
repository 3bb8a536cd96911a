"""Deliver a run's lifecycle event to the plugins' hooks and, when due, to the notifiers.

Delivery never fails the run: a notifier that raises is logged by name and the others still
hear about it. Notifiers hear about failed, timed-out and cancelled runs, and about every
finished run when ``WORKBENCH_NOTIFY_ON=always``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from workbench.plugins.events import RunEvent

if TYPE_CHECKING:
    from workbench.core.config import Settings
    from workbench.plugins.manager import Plugins

__all__ = ["FAILED_STATUSES", "HOOK_FOR_STATUS", "notify_run"]

log = logging.getLogger(__name__)

FAILED_STATUSES = frozenset({"failed", "timed_out", "cancelled", "refused"})
HOOK_FOR_STATUS = {
    "queued": "run_queued",
    "running": "run_started",
    "succeeded": "run_finished",
    "failed": "run_failed",
    "timed_out": "run_failed",
    "cancelled": "run_failed",
    "refused": "run_failed",
}


def notify_run(plugins: Plugins, settings: Settings, event: RunEvent) -> list[str]:
    """Call the lifecycle hook for ``event.status`` and notify; returns notifiers that failed."""
    hook = HOOK_FOR_STATUS.get(event.status)
    if hook is not None:
        plugins.call(hook, event=event)
    finished = event.status in FAILED_STATUSES or event.status == "succeeded"
    if not finished or (event.status == "succeeded" and settings.notify_on != "always"):
        return []
    from workbench.ops import metrics  # the metrics' database queries, not paid by the CLI

    failed: list[str] = []
    for notifier in plugins.collect("register_notifiers", settings=settings):
        name = getattr(notifier, "name", type(notifier).__name__)
        try:
            notifier.notify(event)
        except Exception as exc:  # one notifier must not silence the others
            log.warning("notifier %s failed for run %s: %s", name, event.run_id, exc)
            failed.append(name)
            metrics.notification(sent=False)
        else:
            metrics.notification(sent=True)
    return failed

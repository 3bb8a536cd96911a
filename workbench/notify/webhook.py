"""The built-in webhook notifier: POSTs a run event as JSON, with retries and a timeout.

It is registered through the ``register_notifiers`` hook, like any plugin's notifier, when
``WORKBENCH_WEBHOOK_URL`` is configured.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from workbench.plugins.events import RunEvent
from workbench.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from workbench.core.config import Settings

__all__ = ["WebhookNotifier", "event_payload", "register_notifiers"]

log = logging.getLogger(__name__)


def event_payload(event: RunEvent) -> dict[str, Any]:
    """The JSON document a webhook receives for ``event``."""
    run = json.loads(json.dumps(dataclasses.asdict(event), default=str))
    return {"event": f"run.{event.status}", "run": run}


class WebhookNotifier:
    """Posts each event to one URL; retries connection errors and 5xx with backoff."""

    name = "webhook"

    def __init__(
        self, url: str, *, timeout: float = 5.0, attempts: int = 3, backoff: float = 0.5
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        parts = urlsplit(url)
        # For logs: never the path or query, which often carry a token.
        self.safe_target = f"{parts.scheme}://{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )

    def notify(self, event: RunEvent) -> None:
        import httpx

        body = event_payload(event)
        last_error = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            try:
                response = httpx.post(self.url, json=body, timeout=self.timeout)
            except httpx.HTTPError as exc:
                last_error = type(exc).__name__
            else:
                if response.status_code < 500:
                    if response.status_code >= 400:
                        log.warning(
                            "webhook %s refused run %s: HTTP %s",
                            self.safe_target, event.run_id, response.status_code,
                        )  # fmt: skip
                    return
                last_error = f"HTTP {response.status_code}"
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        raise ConnectionError(
            f"webhook {self.safe_target} did not accept run {event.run_id} after "
            f"{self.attempts} attempts ({last_error})"
        )


@hookimpl
def register_notifiers(settings: Settings) -> list[WebhookNotifier]:
    """The webhook at ``WORKBENCH_WEBHOOK_URL``, when one is configured."""
    url = settings.effective_webhook_url()
    return [WebhookNotifier(url, timeout=settings.webhook_timeout)] if url else []

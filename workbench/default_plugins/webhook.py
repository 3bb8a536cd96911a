"""Built-in notifier: the webhook at WORKBENCH_WEBHOOK_URL, when one is configured."""

from __future__ import annotations

from workbench.core.config import Settings
from workbench.notify.webhook import WebhookNotifier
from workbench.plugins.hookspecs import hookimpl


@hookimpl
def register_notifiers(settings: Settings) -> list[WebhookNotifier]:
    url = settings.effective_webhook_url()
    return [WebhookNotifier(url, timeout=settings.webhook_timeout)] if url else []

"""Run notifications: lifecycle hooks and the webhook, against a real local HTTP server."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from tests.httpserver import Received, Reply, local_server
from workbench.core.config import load_settings
from workbench.notify import notify_run
from workbench.notify.webhook import WebhookNotifier
from workbench.plugins.events import RunEvent
from workbench.plugins.hookspecs import hookimpl
from workbench.plugins.manager import Plugins


def _event(status: str) -> RunEvent:
    return RunEvent(
        run_id=uuid.uuid4(), notebook="flights_kpis.ipynb", status=status, attempt=1,
        job_name="daily-kpis", error_name="ValueError" if status != "succeeded" else None,
        error_message="no flights" if status != "succeeded" else None,
    )  # fmt: skip


def test_failed_run_is_posted_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    with local_server() as server:
        monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", server.url + "/hooks/workbench?token=abc123")
        settings = load_settings()
        event = _event("failed")
        assert notify_run(Plugins(settings), settings, event) == []
    (request,) = server.received
    assert request.method == "POST"
    assert request.path == "/hooks/workbench?token=abc123"
    assert request.headers["Content-Type"] == "application/json"
    body = request.json()
    assert body["event"] == "run.failed"
    assert body["run"]["run_id"] == str(event.run_id)
    assert body["run"]["job_name"] == "daily-kpis"
    assert body["run"]["error_message"] == "no flights"


def test_success_is_posted_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    with local_server() as server:
        monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", server.url)
        settings = load_settings()
        notify_run(Plugins(settings), settings, _event("succeeded"))
        assert server.received == []
        monkeypatch.setenv("WORKBENCH_NOTIFY_ON", "always")
        settings = load_settings()
        notify_run(Plugins(settings), settings, _event("succeeded"))
        assert [r.json()["event"] for r in server.received] == ["run.succeeded"]


def test_server_errors_are_retried_with_backoff() -> None:
    def flaky(request: Received) -> Reply:
        return Reply(status=503) if len(server.received) < 3 else Reply(status=204, body=b"")

    with local_server(flaky) as server:
        started = time.monotonic()
        WebhookNotifier(server.url, attempts=3, backoff=0.1).notify(_event("timed_out"))
        elapsed = time.monotonic() - started
    assert len(server.received) == 3
    assert elapsed >= 0.1 + 0.2


def test_an_unreachable_webhook_does_not_fail_the_run_and_hides_its_token(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with local_server(lambda r: Reply(delay=2.0)) as server:
        monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", server.url + "/x?token=s3cr3t-token")
        monkeypatch.setenv("WORKBENCH_WEBHOOK_TIMEOUT", "0.2")
        settings = load_settings()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="workbench"):
            failed = notify_run(Plugins(settings), settings, _event("failed"))
        elapsed = time.monotonic() - started
    assert failed == ["webhook"]
    assert len(server.received) == 3
    assert elapsed < 3 * 0.2 + 0.5 + 1.0 + 1.0
    assert "s3cr3t-token" not in caplog.text
    assert "did not accept run" in caplog.text


def test_lifecycle_hooks_are_called_and_a_broken_notifier_spares_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, str]] = []

    class Broken:
        name = "broken"

        def notify(self, event: RunEvent) -> None:
            raise RuntimeError("smtp down")

    class Recorder:
        name = "recorder"

        def notify(self, event: RunEvent) -> None:
            seen.append(("notified", event.status))

    class Plugin:
        @hookimpl
        def run_failed(self, event: RunEvent) -> None:
            seen.append(("run_failed", event.status))

        @hookimpl
        def run_started(self, event: RunEvent) -> None:
            seen.append(("run_started", event.status))

        @hookimpl
        def register_notifiers(self) -> list[object]:
            return [Broken(), Recorder()]

    settings = load_settings()
    plugins = Plugins(settings)
    plugins._register(Plugin(), "recorder-plugin", "1", builtin=False)
    assert notify_run(plugins, settings, _event("running")) == []
    assert notify_run(plugins, settings, _event("timed_out")) == ["broken"]
    assert seen == [
        ("run_started", "running"),
        ("run_failed", "timed_out"),
        ("notified", "timed_out"),
    ]

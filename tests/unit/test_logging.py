from __future__ import annotations

import json
import logging

import pytest

from workbench.core.config import load_settings
from workbench.ops.logging import configure_logging


def test_json_logs_redact_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "a-private-signing-key-0123456789-abcdef"
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", key)
    monkeypatch.setenv("WORKBENCH_LOG_FORMAT", "json")
    configure_logging(load_settings())
    log = logging.getLogger("workbench.test")
    log.warning("key is %s", key)
    log.warning("connecting to postgresql://app:pw-in-url@db/wb")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [entry["message"] for entry in lines] == [
        "key is ***",
        "connecting to postgresql://app:***@db/wb",
    ]
    assert lines[0]["level"] == "WARNING"
    assert lines[0]["logger"] == "workbench.test"


def test_reconfiguring_does_not_duplicate_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings()
    configure_logging(settings)
    configure_logging(settings)
    logging.getLogger("workbench").info("once")
    assert capsys.readouterr().err.count("once") == 1

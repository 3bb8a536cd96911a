"""Logging set-up: text or JSON lines, with known secrets redacted from every record."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from workbench.core.config import Settings

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging"]

# user:password@ in any URL
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I)


class RedactingFilter(logging.Filter):
    """Replace known secret values and URL passwords in log messages with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _URL_PASSWORD.sub(r"\g<scheme>***@", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """Configure the ``workbench`` logger from the settings; safe to call repeatedly."""
    logger = logging.getLogger("workbench")
    logger.setLevel(settings.log_level)
    for handler in list(logger.handlers):
        if getattr(handler, "_workbench", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._workbench = True  # type: ignore[attr-defined]
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    secrets = [
        value.get_secret_value()
        for value in (settings.secret_key, settings.database_url, settings.redis_url)
        if value is not None
    ]
    key, _ = settings.effective_secret_key()
    if key:
        secrets.append(key)
    handler.addFilter(RedactingFilter(secrets))
    logger.addHandler(handler)
    logger.propagate = False

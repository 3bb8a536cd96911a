"""Logging set-up: text or JSON lines, with known secrets redacted from every record."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from workbench.core.config import SECRET_FIELDS, Settings

__all__ = ["JsonFormatter", "RedactingFilter", "Redactor", "configure_logging", "secret_values"]

# user:password@ in any URL
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I)


class Redactor:
    """Replaces known secret values and URL passwords in text with ``***``.

    The one redaction of Workbench: log records pass through it, and so do error-tracking
    events (workbench.ops.tracking). Values shorter than 6 characters are not searched for.
    """

    def __init__(self, secrets: list[str], *, url_passwords: bool = True) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        self._url_passwords = url_passwords

    def redact(self, text: str) -> str:
        """``text`` with the secrets (and, unless turned off, any URL's password) hidden.

        ``url_passwords=False`` replaces the known values only: linear in the text's length,
        for texts as large as a run's outputs, where the URL pattern can take quadratic time.
        """
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        if not self._url_passwords:
            return text
        return _URL_PASSWORD.sub(r"\g<scheme>***@", text)


class RedactingFilter(logging.Filter):
    """Replace known secret values and URL passwords in log messages with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._redactor = Redactor(secrets)

    def redact(self, text: str) -> str:
        return self._redactor.redact(text)

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


def secret_values(settings: Settings, *, fragments: bool = True) -> list[str]:
    """Every configured secret value, for :class:`Redactor`.

    Each secret setting (set directly or by ``*_FILE``), the key file's key, the database URL
    as used, the passwords inside the secret URLs and the token parts of the webhook URL, as
    written and decoded. ``fragments=False`` leaves out those webhook parts (its path, last
    segment and query values), which are secret inside a text but may be as short as ``1``.
    """
    values: list[str] = []
    for name in SECRET_FIELDS:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr) and value.get_secret_value():
            values.append(value.get_secret_value())
    key, _ = settings.effective_secret_key()
    if key:
        values.append(key)
    if settings.database_url is not None and settings.database_url.get_secret_value():
        values.append(settings.effective_database_url())
    for url in list(values):
        values.extend(_url_secrets(url))
    webhook = settings.effective_webhook_url()
    if webhook and fragments:
        values.extend(_webhook_tokens(webhook))
    return list(dict.fromkeys(v for v in values if v))


def _webhook_tokens(url: str) -> list[str]:
    """The parts of a webhook URL that carry its token: path and query, last segment, values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    found = [tail, parts.path.rstrip("/").rsplit("/", 1)[-1]]
    found += [pair.partition("=")[2] for pair in parts.query.split("&")]
    return [text for item in found if item.strip("/") for text in (item, unquote(item))]


def _url_secrets(value: str) -> list[str]:
    """The password inside ``value`` if it is a URL with one, as written and decoded."""
    try:
        password = urlsplit(value).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


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
    handler.addFilter(RedactingFilter(secret_values(settings)))
    logger.addHandler(handler)
    logger.propagate = False

"""Every user-facing failure in Workbench is a :class:`WorkbenchError` subclass.

Each subclass's docstring is its default message, so ``raise ConfigError()`` still says
something useful; callers pass a specific message naming what was wrong and what to do.
The CLI prints ``str(error)`` without a traceback and exits with ``exit_code``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseError",
    "InsecureConfigurationError",
    "MigrationError",
    "NotInitializedError",
    "WorkbenchError",
]


class WorkbenchError(Exception):
    """Workbench could not do what was asked."""

    exit_code: int = 1

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (type(self).__doc__ or "").strip()
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ConfigError(WorkbenchError):
    """The configuration is invalid; check the WORKBENCH_* settings."""

    exit_code = 2


class InsecureConfigurationError(ConfigError):
    """The configuration is unsafe for production; fix the settings named above."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            "Refusing to start with WORKBENCH_ENV=production:\n"
            f"{lines}\n"
            "Fix these settings (see README, 'Settings'), then start again."
        )


class NotInitializedError(WorkbenchError):
    """This workbench home is not initialised; run `workbench init` first."""


class DatabaseError(WorkbenchError):
    """The database could not be reached or answered with an error."""


class MigrationError(DatabaseError):
    """The database schema is not at the version this Workbench expects."""


class DecryptionError(WorkbenchError):
    """A stored secret could not be decrypted: was the workbench secret key changed?"""

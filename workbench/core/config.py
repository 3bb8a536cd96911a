"""Settings from the environment, a ``.env`` file and ``*_FILE`` secret files.

Every setting is a ``WORKBENCH_*`` variable. Secrets (the secret key, database and Redis URLs)
may instead be given as ``WORKBENCH_<NAME>_FILE`` pointing at a file, the convention of Docker
and Kubernetes secrets. Secrets are held as :class:`pydantic.SecretStr` so they never print.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from workbench.core.errors import ConfigError

__all__ = ["ENV_PREFIX", "SECRET_FIELDS", "Settings", "load_settings", "mask_url"]

ENV_PREFIX = "WORKBENCH_"
#: Settings that may be read from a file named by ``WORKBENCH_<NAME>_FILE``.
SECRET_FIELDS = (
    "secret_key",
    "database_url",
    "redis_url",
    "webhook_url",
    "celery_broker_url",
    "sentry_dsn",
)
SECRET_KEY_FILENAME = "secret_key"  # noqa: S105 (a file name, not a secret)
DATABASE_FILENAME = "workbench.db"


class _FileSecretsSource(PydanticBaseSettingsSource):
    """Reads ``WORKBENCH_<NAME>_FILE`` for the secret settings (Docker/Kubernetes secrets)."""

    def __init__(self, settings_cls: type[BaseSettings], env_file: str | None) -> None:
        super().__init__(settings_cls)
        self._dotenv = _read_dotenv(env_file)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_FIELDS:
            direct = f"{ENV_PREFIX}{name.upper()}"
            file_var = f"{direct}_FILE"
            path = os.environ.get(file_var) or self._dotenv.get(file_var)
            if not path:
                continue
            if os.environ.get(direct) or self._dotenv.get(direct):
                raise ConfigError(f"Both {direct} and {file_var} are set; keep only one of them.")
            try:
                values[name] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"{file_var} points at {path!r}, which cannot be read "
                    f"({exc.strerror or exc}). Check the path and its permissions."
                ) from None
        return values


def _read_dotenv(env_file: str | None) -> dict[str, str]:
    if not env_file or not Path(env_file).is_file():
        return {}
    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


class Settings(BaseSettings):
    """The effective Workbench configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    env: Literal["development", "production"] = Field(
        "development", description="`production` refuses weak secrets and the embedded database."
    )
    home: Path = Field(
        Path("~/.workbench"),
        description="Folder for the embedded database, generated secrets and run outputs.",
    )
    secret_key: SecretStr | None = Field(
        None, description="Signs sessions and encrypts stored credentials (>= 32 bytes)."
    )
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL; empty means SQLite at $WORKBENCH_HOME/workbench.db."
    )
    redis_url: SecretStr | None = Field(
        None, description="Redis for the query cache and as a Celery broker; optional."
    )
    pool_size: int = Field(5, ge=1, le=100, description="Connections kept open per process.")
    max_overflow: int = Field(5, ge=0, le=100, description="Extra connections under load.")
    pool_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a free connection.")
    pool_recycle: int = Field(1800, ge=-1, description="Seconds before a connection is renewed.")
    statement_timeout_ms: int = Field(
        60_000, ge=0, description="PostgreSQL statement timeout in ms; 0 disables it."
    )
    connect_timeout: int = Field(10, ge=1, description="Seconds to wait when connecting.")
    sqlite_busy_timeout_ms: int = Field(
        5_000, ge=0, description="How long SQLite waits on a locked database, in ms."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging level."
    )
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")
    plugins: str | None = Field(
        None,
        description="Comma-separated allow-list of installed plugins; empty loads none.",
    )
    trace_plugins: bool = Field(False, description="Log every plugin hook call (debugging).")
    dashboards_url: str | None = Field(
        None,
        description="Address of the dashboards server as a browser reaches it (e.g. "
        "https://dash.example.org/); JupyterLab's launcher tiles open dashboards there.",
    )
    webhook_url: SecretStr | None = Field(
        None, description="URL the built-in notifier posts run events to (JSON); optional."
    )
    webhook_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds the webhook may take to answer, per attempt."
    )
    executor: Literal["local", "celery"] = Field(
        "local", description="Where runs execute: a local process pool, or Celery workers."
    )
    celery_broker_url: SecretStr | None = Field(
        None, description="Celery broker (redis:// or amqp://); defaults to WORKBENCH_REDIS_URL."
    )
    celery_queue: str = Field("workbench", description="Celery queue runs are sent to.")
    celery_visibility_timeout: int = Field(
        43_200, ge=60, description="Seconds Redis waits before redelivering an unacked run."
    )
    max_concurrent_runs: int = Field(4, ge=1, description="Runs executing at once, in all.")
    run_lease_seconds: float = Field(
        60.0, ge=1, description="A run whose worker is silent this long is retried or failed."
    )
    scheduler_poll_seconds: float = Field(
        1.0, gt=0, description="How often the scheduler queues, dispatches and reaps."
    )
    warm_worker_idle_seconds: float = Field(
        600.0,
        ge=0,
        description="`workbench run` starts a warm worker in the background (your own, on a "
        "socket only you can open) that runs later runs on started kernels and exits after "
        "this long without a run; 0 starts none.",
    )
    fork_kernels: bool = Field(
        True,
        description="Executor workers fork warm kernels from a pre-imported template process "
        "(Linux; about twice the throughput); false starts each kernel from scratch.",
    )
    kernel_user: str | None = Field(
        None,
        description="OS user notebook kernels run as (an unprivileged one, not the service's "
        "own, not root); needs a service running as root or with CAP_SETUID, CAP_SETGID, "
        "CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER and CAP_KILL. Empty: kernels run as the "
        "service's user.",
    )
    kernel_boundary: Literal["host", "container"] = Field(
        "host",
        description="`container`: the deployment runs each kernel in its own container, "
        "which is its boundary (Kubernetes); `host`: kernels are processes of this machine, "
        "separated by WORKBENCH_KERNEL_USER.",
    )
    notify_on: Literal["failure", "always"] = Field(
        "failure", description="Notify on failed runs only, or on every finished run."
    )
    sentry_dsn: SecretStr | None = Field(
        None,
        description="Sentry DSN: report service errors and finally failed runs (needs "
        "workbench[sentry]); optional.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env_file = settings_cls.model_config.get("env_file")
        files = _FileSecretsSource(settings_cls, env_file if isinstance(env_file, str) else None)
        return (init_settings, env_settings, files, dotenv_settings)

    # -- derived values -------------------------------------------------------------------

    @property
    def home_path(self) -> Path:
        """The home folder with ``~`` expanded, made absolute."""
        return self.home.expanduser().resolve()

    @property
    def secret_key_path(self) -> Path:
        """Where ``workbench init`` keeps the generated secret key."""
        return self.home_path / SECRET_KEY_FILENAME

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def effective_database_url(self) -> str:
        """The SQLAlchemy URL in use: the configured one, or the embedded SQLite file."""
        url = _revealed(self.database_url)
        if url is None:
            return f"sqlite+pysqlite:///{self.home_path / DATABASE_FILENAME}"
        return normalize_database_url(url)

    def effective_secret_key(self) -> tuple[str | None, str]:
        """The secret key and where it came from; ``(None, ...)`` when there is none."""
        key = _revealed(self.secret_key)
        if key is not None:
            return key, "WORKBENCH_SECRET_KEY"
        path = self.secret_key_path
        if path.is_file():
            return path.read_text(encoding="utf-8").strip(), str(path)
        return None, "not set"

    def effective_webhook_url(self) -> str | None:
        return _revealed(self.webhook_url)

    def effective_celery_broker_url(self) -> str | None:
        return _revealed(self.celery_broker_url) or self.effective_redis_url()

    def effective_redis_url(self) -> str | None:
        return _revealed(self.redis_url)


def _revealed(value: SecretStr | None) -> str | None:
    """The secret's value, or ``None`` when it is unset or empty."""
    if value is None or not value.get_secret_value():
        return None
    return value.get_secret_value()


def normalize_database_url(url: str) -> str:
    """Pin the drivers Workbench supports: psycopg 3 for PostgreSQL, pysqlite for SQLite."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite://"):
        return "sqlite+pysqlite://" + url[len("sqlite://") :]
    return url


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning validation failures into a :class:`ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(p).upper() for p in err["loc"])
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("Invalid settings:\n  - " + "\n  - ".join(problems)) from None


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe to print and log."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"

"""Refuse to run in production with weak secrets or a development database.

With ``WORKBENCH_ENV=production`` every entry point calls :func:`ensure_production_safe`.
Messages name the setting and the fix; they never contain the offending value.
"""

from __future__ import annotations

from workbench.core.config import Settings
from workbench.core.errors import InsecureConfigurationError

__all__ = [
    "MIN_SECRET_KEY_BYTES",
    "ensure_production_safe",
    "kernel_boundary_problem",
    "production_problems",
]

MIN_SECRET_KEY_BYTES = 32

#: Values seen in tutorials, templates and the system this one replaces.
KNOWN_PLACEHOLDERS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changeit",
        "secret",
        "secretkey",
        "secret-key",
        "secret_key",
        "mysecret",
        "supersecret",
        "your-secret-key",
        "your_secret_key",
        "your-secret-key-change-in-production",
        "your-secret-key-here",
        "password",
        "default",
        "insecure",
        "development",
        "test",
        "dev",
        "django-insecure",
        "xxx",
    }
)
_PLACEHOLDER_FRAGMENTS = ("change-in-production", "changeme", "change-me", "your-secret-key")
DEFAULT_DB_PASSWORDS = frozenset(
    {"postgres", "password", "admin", "root", "changeme", "secret", "workbench", "test"}
)
_GENERATE_HINT = (
    'generate one with `python -c "import secrets; print(secrets.token_urlsafe(48))"` '
    "and pass it through WORKBENCH_SECRET_KEY_FILE"
)


def secret_key_problem(key: str | None) -> str | None:
    """Why ``key`` is unfit to protect production data, or ``None`` when it is fine."""
    if not key:
        return f"WORKBENCH_SECRET_KEY is missing: {_GENERATE_HINT}."
    normalized = key.strip().lower()
    if normalized in KNOWN_PLACEHOLDERS or any(f in normalized for f in _PLACEHOLDER_FRAGMENTS):
        return f"WORKBENCH_SECRET_KEY is a known placeholder value: {_GENERATE_HINT}."
    if len(key.encode("utf-8")) < MIN_SECRET_KEY_BYTES:
        return (
            f"WORKBENCH_SECRET_KEY is too short ({len(key.encode('utf-8'))} bytes, at least "
            f"{MIN_SECRET_KEY_BYTES} needed): {_GENERATE_HINT}."
        )
    if len(set(key)) < 8:
        return f"WORKBENCH_SECRET_KEY repeats too few characters to be random: {_GENERATE_HINT}."
    return None


def database_url_problem(url: str) -> str | None:
    """Why the database URL is unfit for production, or ``None`` when it is fine."""
    from sqlalchemy.engine import make_url  # only production checks need SQLAlchemy's parser
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "WORKBENCH_DATABASE_URL is not a valid SQLAlchemy URL (dialect://user:pass@host/db)."
    if parsed.get_backend_name() == "sqlite":
        return (
            "the database is the embedded SQLite file, which is single-user: set "
            "WORKBENCH_DATABASE_URL (or WORKBENCH_DATABASE_URL_FILE) to a PostgreSQL server."
        )
    password = parsed.password
    if not password:
        return (
            "WORKBENCH_DATABASE_URL has an empty password: give the database account a "
            "generated password and pass the URL through WORKBENCH_DATABASE_URL_FILE."
        )
    if password.lower() in DEFAULT_DB_PASSWORDS or password == parsed.username:
        return (
            "WORKBENCH_DATABASE_URL carries a default credential: set a generated password "
            "on the database account and pass the URL through WORKBENCH_DATABASE_URL_FILE."
        )
    return None


def kernel_boundary_problem(settings: Settings) -> str | None:
    """Why kernels would run without an OS boundary in team mode, or ``None``.

    Team mode (PostgreSQL) runs other people's notebooks; a kernel running as the service's
    own OS user can read the service's files (its secret key file, ``.env``, other runs'
    folders). The embedded SQLite database is single-user, so it needs no boundary.
    """
    if not settings.effective_database_url().startswith("postgresql"):
        return None
    if settings.kernel_user or settings.kernel_boundary == "container":
        return None
    return (
        "kernels would run as the service's own OS user, which can read the service's files "
        "(its secret key file, .env, other runs' folders): set WORKBENCH_KERNEL_USER to an "
        "unprivileged OS user (the service then runs as root or holds CAP_SETUID, CAP_SETGID, "
        "CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER and CAP_KILL), or set "
        "WORKBENCH_KERNEL_BOUNDARY=container when every kernel runs in its own container."
    )


def production_problems(settings: Settings, *, allow_missing_key: bool = False) -> list[str]:
    """Every reason the settings are unsafe for production (empty outside production)."""
    if not settings.is_production:
        return []
    problems: list[str] = []
    key, _ = settings.effective_secret_key()
    if not (allow_missing_key and key is None):
        problem = secret_key_problem(key)
        if problem:
            problems.append(problem)
    problem = database_url_problem(settings.effective_database_url())
    if problem:
        problems.append(problem)
    return problems


def ensure_production_safe(settings: Settings, *, allow_missing_key: bool = False) -> None:
    """Raise :class:`InsecureConfigurationError` listing every problem found."""
    problems = production_problems(settings, allow_missing_key=allow_missing_key)
    if problems:
        raise InsecureConfigurationError(problems)

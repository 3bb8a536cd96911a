"""Shared fixtures: an isolated home per test and migrated databases of both kinds.

PostgreSQL tests get their own database cloned from a template migrated once per session
(``CREATE DATABASE ... TEMPLATE``) and dropped after the test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from workbench.app import Workbench
from workbench.core.config import Settings, load_settings
from workbench.db import migrate
from workbench.db.engine import create_workbench_engine
from workbench.plugins.manager import reset_plugins

BOTH_DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No WORKBENCH_* from the developer's shell or .env leaks into a test."""
    for name in list(os.environ):
        if name.startswith("WORKBENCH_") and not name.startswith("WORKBENCH_TEST_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    # Installed third-party plugins stay out of the tests unless a test asks for them.
    monkeypatch.setenv("WORKBENCH_PLUGINS", "")
    # No warm worker left behind by a test's `workbench run` (test_runs_cli tests the one).
    monkeypatch.setenv("WORKBENCH_WARM_WORKER_IDLE_SECONDS", "0")
    monkeypatch.chdir(tmp_path)
    reset_plugins()
    return home


@pytest.fixture
def settings(isolated_env: Path) -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def postgres_available() -> None:
    problem = services.check_postgres()
    if problem:
        services.unavailable("PostgreSQL", problem)


@pytest.fixture(scope="session")
def pg_template(postgres_available: None) -> Iterator[str]:
    """A database migrated to head once per session, cloned by every PostgreSQL test."""
    name = services.new_database_name("wbtest_template")
    services.create_database(name)
    engine = create_workbench_engine(Settings(_env_file=None), services.sqlalchemy_url(name))
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    yield name
    services.drop_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "workbench.db"
    engine = create_workbench_engine(Settings(_env_file=None), f"sqlite:///{path}")
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return path


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own."""
    with services.temporary_database(template=pg_template) as name:
        yield services.sqlalchemy_url(name)


@pytest.fixture
def pg_empty_url(postgres_available: None) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own."""
    with services.temporary_database() as name:
        yield services.sqlalchemy_url(name)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database of this test's own."""
    path = tmp_path / "test.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+pysqlite:///{path}"


@pytest.fixture(params=BOTH_DATABASES)
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(params=BOTH_DATABASES)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+pysqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("pg_empty_url"))


@pytest.fixture
def workbench(settings: Settings, db_url: str) -> Iterator[Workbench]:
    wb = Workbench(settings, db_url)
    yield wb
    wb.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = services.check_redis()
    if problem:
        services.unavailable("Redis", problem)
    return services.REDIS_URL


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (each in its own session); any still alive is killed after."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def celery_env(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str, isolated_env: Path
) -> dict[str, str]:
    """The environment of a Celery deployment on this test's database and a queue of its own."""
    env = {
        "WORKBENCH_DATABASE_URL": pg_url,
        "WORKBENCH_CELERY_BROKER_URL": redis_url,
        "WORKBENCH_CELERY_QUEUE": f"wbtest-{uuid.uuid4().hex[:8]}",
        "WORKBENCH_EXECUTOR": "celery",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def make_owner(settings: Settings, url: str) -> str:
    """An analyst with a database login, the only member of a team of their own; the name.

    The login's password is encrypted with ``settings``' secret key (the executor decrypts
    it with the service's); the login role is dropped with the test's database.
    """
    from workbench.accounts import api as accounts

    name = f"owner_{uuid.uuid4().hex[:8]}"
    bench = Workbench(settings, url)
    try:
        accounts.add_team(f"team-{name}", workbench=bench)
        accounts.add_user(name, role="analyst", teams_=(f"team-{name}",), workbench=bench)
    finally:
        bench.close()
    return name


@pytest.fixture
def pg_owner(request: pytest.FixtureRequest, settings: Settings) -> str | None:
    """The owner the service names for runs and jobs in team mode; None on SQLite.

    On the test's PostgreSQL database (``db_url`` or ``pg_url``), :func:`make_owner`'s
    analyst. A secret key is written to the home folder first if there is none.
    """
    names = request.fixturenames
    fixture = "db_url" if "db_url" in names else "pg_url" if "pg_url" in names else None
    url = str(request.getfixturevalue(fixture)) if fixture else None
    if url is None or not url.startswith("postgresql"):
        return None
    from workbench.core.home import ensure_home, ensure_secret_key

    ensure_home(settings)
    ensure_secret_key(settings)
    return make_owner(settings, url)

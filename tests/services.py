"""Real services the tests use, and how a missing one is reported.

Outside CI a missing service skips with the reason; with CI=true it fails the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

POSTGRES_URL = os.environ.get(
    "WORKBENCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("WORKBENCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(service: str, reason: str) -> None:
    """Fail in CI, skip elsewhere: a missing service is never silently passed over."""
    message = f"{service} is not reachable ({reason}); start it (see README, 'Tests')"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def admin_connect(dbname: str | None = None) -> psycopg.Connection:
    conninfo = POSTGRES_URL if dbname is None else _with_db(POSTGRES_URL, dbname)
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)


def _with_db(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


def sqlalchemy_url(dbname: str) -> str:
    url = _with_db(POSTGRES_URL, dbname)
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def check_postgres() -> str | None:
    try:
        with admin_connect() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def check_redis() -> str | None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()
    return None


def new_database_name(prefix: str = "wbtest") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(name: str, template: str | None = None) -> None:
    with admin_connect() as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    with admin_connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def temporary_database(template: str | None = None) -> Iterator[str]:
    """A fresh PostgreSQL database (cloned from ``template``), dropped afterwards."""
    name = new_database_name()
    create_database(name, template)
    try:
        yield name
    finally:
        drop_login_roles(name)
        drop_database(name)


def drop_login_roles(dbname: str) -> None:
    """Drop the per-user login roles of the database's accounts (roles outlive databases)."""
    try:
        with admin_connect(dbname) as conn:
            found = conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone()
            if not found or not found[0]:
                return
            rows = conn.execute("SELECT db_role FROM users WHERE db_role IS NOT NULL")
            for (role,) in rows.fetchall():
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    except psycopg.Error:
        pass  # best effort: a role still in use elsewhere stays; the database still goes


@contextmanager
def owner_database() -> Iterator[str]:
    """A fresh database owned by a new login role that is no superuser and does not bypass
    row-level security (``CREATEROLE``, as a production service runs); yields its SQLAlchemy
    URL as that role. The database (with its accounts' login roles) and the role are dropped
    afterwards."""
    owner = f"wbt_owner_{uuid.uuid4().hex[:8]}"
    with admin_connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE").format(
                sql.Identifier(owner)
            )
        )
    try:
        with temporary_database() as dbname:
            with admin_connect() as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(dbname), sql.Identifier(owner)
                    )
                )
            yield sqlalchemy_url(dbname).replace("://postgres@", f"://{owner}@")
    finally:
        with admin_connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))


def stop(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM to ``process``'s group (started with ``start_new_session``), SIGKILL after
    ``grace`` seconds: a service test's clean stop that cannot hang the run."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

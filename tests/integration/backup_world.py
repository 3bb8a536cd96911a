"""What the backup tests share: a production-like owner role, and a workbench worth backing up.

:func:`owner_cluster` makes a login role that is no superuser and does not bypass row-level
security (``CREATEROLE CREATEDB``, as a production service that verifies backups runs) and
hands out databases it owns; at the end it drops every database it made (with the login roles
their accounts name, restored ones included), any scratch database left over, and the role.
:func:`fill` gives a workbench users, teams, a share, the flights data (one day), a stored
secret and a real run with recorded results and outputs.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests import services
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.db import rls
from workbench.ops.backup import database as backup_db
from workbench.ops.backup.bundle import TableStats
from workbench.runs.api import run as run_notebook
from workbench.runs.secrets import set_secret
from workbench.sources.ingest import ingest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SECRET_VALUE = "tok-" + "7" * 20
DAY = "2013-01-01"


@dataclass
class Cluster:
    owner: str
    password: str
    databases: list[str] = field(default_factory=list)

    def url(self, dbname: str) -> str:
        base = make_url(services.POSTGRES_URL)
        return (
            base.set(
                drivername="postgresql+psycopg",
                username=self.owner,
                password=self.password,
                database=dbname,
            )
        ).render_as_string(hide_password=False)

    def new_database(self) -> str:
        """A fresh empty database owned by the owner role; its SQLAlchemy URL."""
        name = services.new_database_name("wbbackup")
        with services.admin_connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(self.owner)
                )
            )
        self.databases.append(name)
        return self.url(name)


def login_roles(dbname: str) -> list[str]:
    try:
        with services.admin_connect(dbname) as conn:
            if not conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
                return []
            rows = conn.execute("SELECT db_role FROM users WHERE db_role IS NOT NULL")
            return [str(r[0]) for r in rows]
    except psycopg.Error:
        return []


def drop_roles(roles: list[str]) -> None:
    with services.admin_connect() as conn:
        for role in dict.fromkeys(roles):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def scratch_databases() -> list[str]:
    with services.admin_connect() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'wbverify%'")
        return [str(r[0]) for r in rows]


@contextmanager
def owner_cluster() -> Iterator[Cluster]:
    owner = f"wbt_owner_{uuid.uuid4().hex[:8]}"
    cluster = Cluster(owner, "pw-" + secrets.token_hex(12))
    with services.admin_connect() as conn:
        conn.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE CREATEDB PASSWORD {}"
            ).format(sql.Identifier(owner), sql.Literal(cluster.password))
        )
    try:
        yield cluster
    finally:
        roles = [role for db in cluster.databases for role in login_roles(db)]
        for db in cluster.databases:
            services.drop_database(db)
        drop_roles(roles)
        with services.admin_connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))


@dataclass
class Filled:
    passwords: dict[str, str]
    red_flights: int
    run_id: uuid.UUID


def fill(bench: Workbench, *, teams: bool) -> Filled:
    """Users (and in team mode teams, a share and rows of two teams), flights, a secret, a run."""
    passwords: dict[str, str] = {}
    if teams:
        accounts.add_team("red", workbench=bench)
        accounts.add_team("blue", workbench=bench)
        for name, team in (("ann", "red"), ("ben", "blue")):
            account = accounts.add_user(name, teams_=(team,), workbench=bench)
            assert account.password is not None
            passwords[name] = account.password
        result = ingest(
            "flights",
            workbench=bench,
            tables=["flights", "airlines"],
            start=DAY,
            end=DAY,
            team="red",
        )
        accounts.share("airlines", workbench=bench)
        with bench.engine.begin() as conn:
            team_ids = dict(conn.execute(text("SELECT name, id FROM teams")).all())
            conn.execute(text("CREATE TABLE kpis (id serial PRIMARY KEY, label text)"))
            rls.protect_table(conn, "kpis", team_id=team_ids["red"])
            for team, label in (("red", "r1"), ("red", "r2"), ("blue", "b1")):
                conn.execute(
                    text("INSERT INTO kpis (label, team_id) VALUES (:l, :t)"),
                    {"l": label, "t": team_ids[team]},
                )
    else:
        account = accounts.add_user("ann", workbench=bench)
        assert account.password is not None
        passwords["ann"] = account.password
        result = ingest(
            "flights", workbench=bench, tables=["flights", "airlines"], start=DAY, end=DAY
        )
    set_secret(bench, "api_token", SECRET_VALUE)
    owner = "ann" if teams else None  # in team mode a run belongs to a user
    run = run_notebook(
        NOTEBOOKS / "records_results.ipynb", workbench=bench, owner=owner, carrier="B6"
    )
    assert run.status == "succeeded", run.error_message
    return Filled(passwords, result.tables["flights"], run.id)


def stats(bench: Workbench) -> dict[str, TableStats]:
    """Every table's rows and checksum, as the backups compute them."""
    if bench.engine.dialect.name == "postgresql":
        with bench.engine.begin() as conn:
            return backup_db.postgresql_stats(conn)
    import sqlite3

    conn = sqlite3.connect(str(bench.engine.url.database))
    try:
        return backup_db.sqlite_stats(conn)
    finally:
        conn.close()

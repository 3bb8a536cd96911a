"""deploy/compose.yaml's services, run as local processes in its order, as its files say.

There is no container runtime here, so this is what can be proven without one: the secrets
`workbench deploy secrets` writes, the PostgreSQL init script run as the image runs it, then
each Workbench service's own command and environment from the compose file (the container
paths of its secret files mapped to the files written here): the migrations, the first admin,
two schedulers, a Celery worker and the dashboards server answering their health ports and the
image's health check, a job run end to end through Celery, a backup, and a SIGTERM after which
no process or kernel is left. What stays unproven: the image itself, its users and Compose's
own start order.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from psycopg import sql

from tests import services
from tests.cli import run_cli
from tests.deploy_rules import DEPLOY, ROOT, SECRET_KEYS
from tests.e2e.world import free_port
from tests.runs_helpers import family, still_alive, wait_for

COMPOSE = DEPLOY / "compose.yaml"
SLEEPS = ROOT / "tests" / "notebooks" / "sleeps.ipynb"
#: What the compose file's network names become on this machine.
HOSTS = {"0.0.0.0": "127.0.0.1"}  # noqa: S104 (the compose file's listen address, replaced)


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(yaml.safe_load(COMPOSE.read_text())))
    return data


def _healthcheck_command() -> list[str]:
    parser = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    (value,) = [i["value"] for i in parser.structure if i["instruction"] == "HEALTHCHECK"]
    command: list[str] = json.loads(value[value.index("CMD") + 3 :])
    return [sys.executable, *command[1:]]


class Deployment:
    """The compose file's Workbench services on this machine: their environments with the
    container paths of secret and config files mapped to files in ``root``."""

    def __init__(self, root: Path, database: str, owner: str) -> None:
        self.compose = _compose()
        self.root = root
        self.secrets = root / "secrets"
        self.volume = root / "volume"
        self.volume.mkdir(mode=0o700)
        self.queue = f"wbsmoke-{uuid.uuid4().hex[:8]}"
        configs = root / "configs"
        configs.mkdir()
        redis = self.compose["configs"]["redis_url"]["content"]
        assert redis == "redis://redis:6379/0"  # the compose network's Redis; this machine's:
        (configs / "redis_url").write_text(services.REDIS_URL)
        self.files = {f"/run/secrets/{name}": self.secrets / name for name in SECRET_KEYS}
        self.files["/run/configs/redis_url"] = configs / "redis_url"
        self.database, self.owner = database, owner
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def env(self, service: str, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
        declared = self.compose["services"][service].get("environment", {})
        for name, value in declared.items():
            value = str(value)
            if name.endswith("_FILE"):
                value = str(self.files[value])
            elif name == "WORKBENCH_HOME":
                assert value == "/var/lib/workbench/home"
                value = str(self.volume / "home")
            base[name] = value
        base["WORKBENCH_CELERY_QUEUE"] = self.queue  # this test's own queue on a shared Redis
        base.update(extra)
        return base

    def command(self, service: str) -> tuple[list[str], int | None]:
        """The service's arguments, its listen address and health port made this machine's."""
        args = [HOSTS.get(str(a), str(a)) for a in self.compose["services"][service]["command"]]
        port = None
        for flag in ("--metrics-port", "--port"):
            if flag in args:
                port = free_port()
                args[args.index(flag) + 1] = str(port)
        return args, port

    def run(self, service: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args) or self.command(service)[0]
        return subprocess.run(
            [sys.executable, "-m", "workbench", *command],
            env=self.env(service),
            cwd=ROOT,  # the image's WORKDIR holds notebooks/ and dashboards/ as the repository
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def start(self, service: str, processes: list[subprocess.Popen[bytes]]) -> int:
        args, port = self.command(service)
        assert port is not None, f"{service} has no health port"
        log = self.root / f"{service}-{len(self.started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "workbench", *args],
                env=self.env(service, HEALTH_PORT=str(port)),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.append(process)
        self.started.append((service, process, log))
        return port

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{log.read_text()[-3000:]}" for name, _, log in self.started)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@pytest.fixture
def database(postgres_available: None) -> Iterator[tuple[str, str, str]]:
    """Names for the owner role, its database and a superuser standing in for the image's; all
    dropped afterwards, with the login roles the deployment's accounts made."""
    suffix = uuid.uuid4().hex[:8]
    owner, name, superuser = f"wbsmoke_{suffix}", f"wbsmoke_{suffix}", f"wbsmoke_su_{suffix}"
    with services.admin_connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(superuser), sql.Literal(secrets.token_urlsafe(16))
            )
        )
    try:
        yield owner, name, superuser
    finally:
        services.drop_login_roles(name)
        services.drop_database(name)
        with services.admin_connect() as conn:
            for role in (owner, superuser):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_compose_services_run_as_local_processes(
    tmp_path: Path,
    database: tuple[str, str, str],
    redis_url: str,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    owner, name, superuser = database
    deployment = Deployment(tmp_path, name, owner)
    made = run_cli(
        "deploy", "secrets", str(deployment.secrets),
        "--database-host", "127.0.0.1", "--database-user", owner, "--database-name", name,
    )  # fmt: skip
    assert made.code == 0, made.output

    # The postgres service: its init script, run once by the image as its superuser.
    postgres = deployment.compose["services"]["postgres"]["environment"]
    (script,) = [
        deployment.compose["configs"][c["source"]]["file"]
        for c in deployment.compose["services"]["postgres"]["configs"]
        if c["target"].startswith("/docker-entrypoint-initdb.d/")
    ]
    init_env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "POSTGRES_USER": superuser,
        "WORKBENCH_DB_USER": owner,
        "WORKBENCH_DB_NAME": name,
        "WORKBENCH_DB_PASSWORD_FILE": str(deployment.secrets / "postgres_password"),
    }
    assert postgres["WORKBENCH_DB_PASSWORD_FILE"] == postgres["POSTGRES_PASSWORD_FILE"]
    done = subprocess.run(
        ["sh", str(COMPOSE.parent / script)], env=init_env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    password = (deployment.secrets / "postgres_password").read_text()
    assert password not in done.stdout + done.stderr
    with services.admin_connect() as conn:
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb,"
            " rolpassword IS NULL FROM pg_authid WHERE rolname IN (%s, %s)",
            [owner, superuser],
        ).fetchall()
        dba = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
    assert sorted(rows) == sorted(
        [(owner, False, False, True, True, False), (superuser, True, False, False, False, True)]
    )
    assert dba == (owner,)

    # migrate, then the first admin (docs/deployment.md: `compose run --rm migrate init`).
    migrated = deployment.run("migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    home = deployment.volume / "home"
    assert home.stat().st_mode & 0o777 == 0o700
    first = deployment.run("migrate", "init")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "admin" in first.stdout

    ports = {
        "scheduler": deployment.start("scheduler", processes),
        "scheduler-2": deployment.start("scheduler", processes),
        "worker": deployment.start("worker", processes),
        "dashboards": deployment.start("dashboards", processes),
    }
    try:
        for service, port in ports.items():
            wait_for(lambda port=port: _ready(port), 120, f"{service}'s /readyz")
            health = subprocess.run(
                _healthcheck_command(), env={**os.environ, "HEALTH_PORT": str(port)},
                capture_output=True, timeout=30, check=False,
            )  # fmt: skip
            assert health.returncode == 0, f"{service}: the image's health check failed"

        # A job run end to end: scheduler -> Redis -> worker, executed as its owner.
        for args in (("teams", "add", "ops"), ("teams", "add-member", "ops", "admin")):
            done = deployment.run("migrate", *args)
            assert done.returncode == 0, done.stdout + done.stderr
        added = deployment.run(
            "migrate", "jobs", "add", "smoke", str(SLEEPS), "-p", "seconds", "0.1",
            "--owner", "admin",
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
        assert deployment.run("migrate", "jobs", "trigger", "smoke").returncode == 0

        def finished() -> bool:
            listed = deployment.run("migrate", "runs", "list", "--json")
            runs = json.loads(listed.stdout)
            return bool(runs) and runs[0]["status"] in {"succeeded", "failed", "cancelled"}

        wait_for(finished, 180, "the job's run")
        (run,) = json.loads(deployment.run("migrate", "runs", "list", "--json").stdout)
        assert run["status"] == "succeeded", deployment.logs()
        assert (home / "runs" / run["id"] / "output.ipynb").is_file()

        # The backup service, as the host's cron runs it.
        backup = deployment.run("backup")
        assert backup.returncode == 0, backup.stdout + backup.stderr
        assert any((home / "backups").iterdir())
    except BaseException:
        print(deployment.logs())
        raise

    # SIGTERM, as `docker compose stop` sends it: each exits in time and leaves nothing.
    recorded = [p for _, process, _ in deployment.started for p in family(process.pid)]
    for _, process, _ in deployment.started:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    for service, process, _ in deployment.started:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
        assert process.returncode == 0, f"{service} exited {process.returncode}"
    wait_for(lambda: not still_alive(recorded), 10, "the services' processes and kernels to end")
    logs = deployment.logs()
    for file in SECRET_KEYS:
        assert (deployment.secrets / file).read_text().strip() not in logs

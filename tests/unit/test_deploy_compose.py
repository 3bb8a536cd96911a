"""The compose files (deploy/compose.yaml, compose.dev.yaml): valid and held to their rules.

No container runtime runs here, so the files are validated against the Compose
Specification's schema (check-jsonschema's vendored copy) and checked by a policy: the same
commands as the Kubernetes base, users and capabilities, secrets only as files, health checks,
limits and start order. Each rule has a case that breaks a copy and sees it caught.
test_deploy_k8s.py lints every YAML file of deploy/; tests/integration/test_deploy_smoke.py
runs the production file's commands as local processes.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests import services
from tests.deploy_rules import (
    BIN,
    DEPLOY,
    KERNEL_HOST_CAPABILITIES,
    KERNEL_USER,
    KNOWN_ENV,
    SECRET_ENV,
    SECRET_KEYS,
    SECRETISH_NAME,
    SERVICE_UID,
    URL_WITH_PASSWORD,
)

COMPOSE = DEPLOY / "compose.yaml"
DEV = DEPLOY / "compose.dev.yaml"
#: The services that start kernels, as WORKBENCH_KERNEL_USER (the Kubernetes base's too).
KERNEL_HOSTS = {"worker", "dashboards"}
OUR_IMAGE = "${WORKBENCH_IMAGE:-workbench}"
PINNED = re.compile(r"^[\w./-]+:\d+(\.\d+)*(-[\w.]+)?$")


def load(path: Path = COMPOSE) -> dict[str, Any]:
    """A compose file as plain data, its anchors' merges copied (a change to one service
    must not reach the others through a shared mapping)."""
    data: dict[str, Any] = json.loads(json.dumps(yaml.safe_load(path.read_text())))
    return data


def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == OUR_IMAGE}


def k8s_commands() -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """The argument lists of the Kubernetes base's main containers and of its init containers."""
    main: set[tuple[str, ...]] = set()
    init: set[tuple[str, ...]] = set()
    for path in sorted((DEPLOY / "k8s" / "base").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj or obj.get("kind") not in {"Deployment", "Job", "CronJob"}:
                continue
            spec = obj["spec"]
            if obj["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            pod = spec["template"]["spec"]
            main |= {tuple(c["args"]) for c in pod["containers"]}
            init |= {tuple(c["args"]) for c in pod.get("initContainers", [])}
    return main, init


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _mounted_files(compose: dict[str, Any], service: dict[str, Any]) -> set[str]:
    """The paths at which the service sees its secrets and configs."""
    paths = set()
    for kind, default in (("secrets", "/run/secrets/{}"), ("configs", "/{}")):
        for item in service.get(kind, []):
            name = item if isinstance(item, str) else item["source"]
            target = None if isinstance(item, str) else item.get("target")
            if name in compose.get(kind, {}):
                paths.add(target or default.format(name))
    return paths


def _check_ours(name: str, service: dict[str, Any], compose: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    env = _environment(service)
    kernel_host = bool(env.get("WORKBENCH_KERNEL_USER"))
    if kernel_host != (name in KERNEL_HOSTS):
        problems.append(f"{name}: kernels start only in {sorted(KERNEL_HOSTS)}")
    if kernel_host and env["WORKBENCH_KERNEL_USER"] != KERNEL_USER:
        problems.append(f"{name}: kernels run as {env['WORKBENCH_KERNEL_USER']}, not {KERNEL_USER}")
    user = str(service.get("user", "root"))
    wanted_user = "0:0" if kernel_host else f"{SERVICE_UID}:{SERVICE_UID}"
    if user != wanted_user:
        problems.append(f"{name}: runs as {user}, not {wanted_user}")
    added = set(service.get("cap_add", []))
    if service.get("cap_drop") != ["ALL"]:
        problems.append(f"{name}: capabilities must drop ALL")
    if added != (KERNEL_HOST_CAPABILITIES if kernel_host else set()):
        problems.append(f"{name}: adds the capabilities {sorted(added)}")
    if service.get("read_only") is not True:
        problems.append(f"{name}: the root filesystem is writable")
    if "no-new-privileges:true" not in service.get("security_opt", []):
        problems.append(f"{name}: no-new-privileges is not set")
    if not any(str(t).split(":")[0] == "/tmp" for t in service.get("tmpfs", [])):  # noqa: S108
        problems.append(f"{name}: /tmp is not a tmpfs")
    files = _mounted_files(compose, service)
    for var, value in env.items():
        if var.startswith("WORKBENCH_") and var not in KNOWN_ENV:
            problems.append(f"{name}: {var} is not a Workbench setting")
        if var in SECRET_ENV:
            problems.append(f"{name}: {var} is a secret; give it as {var}_FILE")
        elif var.endswith("_FILE"):
            if value not in files:
                problems.append(f"{name}: {var} names {value}, not a secret or config it mounts")
        elif SECRETISH_NAME.search(var) or URL_WITH_PASSWORD.search(value):
            problems.append(f"{name}: {var} holds a literal secret")
    if env.get("WORKBENCH_ENV") != "production":
        problems.append(f"{name}: not WORKBENCH_ENV=production")
    command = [str(word) for word in service.get("command", [])]
    long_running = service.get("restart") == "unless-stopped"
    if long_running:
        if service.get("healthcheck", {}).get("disable"):
            problems.append(f"{name}: a long-running service without its health check")
        port = command[command.index("--port") + 1] if "--port" in command else None
        port = command[command.index("--metrics-port") + 1] if "--metrics-port" in command else port
        if port != env.get("HEALTH_PORT", "9100"):
            problems.append(f"{name}: the health check asks port {env.get('HEALTH_PORT', '9100')}")
        after = service.get("depends_on", {}).get("migrate", {})
        if after.get("condition") != "service_completed_successfully":
            problems.append(f"{name}: does not wait for the migrations")
    elif service.get("restart") != "no":
        problems.append(f"{name}: restart is {service.get('restart')!r}")
    return problems


def policy_problems(compose: dict[str, Any]) -> list[str]:
    """Every way ``compose`` breaks the deployment rules (empty: none)."""
    problems: list[str] = []
    services = compose["services"]
    main, init = k8s_commands()
    commands = {}
    for name, service in services.items():
        image = str(service.get("image", ""))
        if image != OUR_IMAGE and not PINNED.match(image):
            problems.append(f"{name}: image {image!r} is not pinned to a version")
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        for what in ("cpus", "memory", "pids"):
            if what not in limits:
                problems.append(f"{name}: no {what} limit")
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source not in compose.get("volumes", {}):
                problems.append(f"{name}: mounts {source} from the host, not a named volume")
        logging = service.get("logging", {})
        if logging.get("driver") == "json-file" and "max-size" not in logging.get("options", {}):
            problems.append(f"{name}: its logs grow without bound")
        if image == OUR_IMAGE:
            problems += _check_ours(name, service, compose)
            commands[name] = tuple(str(word) for word in service.get("command", []))
        elif service.get("restart") == "unless-stopped" and "healthcheck" not in service:
            problems.append(f"{name}: no health check")
    for name, command in commands.items():
        if command not in main | init:
            problems.append(f"{name}: {' '.join(command)} is no command of the Kubernetes base")
    for command in main - set(commands.values()):
        problems.append(f"the Kubernetes base runs {' '.join(command)}; no service here does")
    for name, secret in compose.get("secrets", {}).items():
        if name not in SECRET_KEYS or secret.get("file") != f"./secrets/{name}":
            problems.append(f"secret {name}: not a file `workbench deploy secrets` writes")
    for name, config in compose.get("configs", {}).items():
        if URL_WITH_PASSWORD.search(str(config.get("content", ""))):
            problems.append(f"config {name} holds a password")
    postgres = _environment(services.get("postgres", {}))
    if "POSTGRES_PASSWORD" in postgres or "POSTGRES_PASSWORD_FILE" not in postgres:
        problems.append("postgres: the password is not read from a file")
    return problems


def test_the_compose_files_follow_the_schema() -> None:
    done = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
            str(DEV),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_policy() -> None:
    compose = load()
    assert policy_problems(compose) == []
    assert set(ours(compose)) == {"migrate", "scheduler", "worker", "dashboards", "backup"}


def test_the_files_it_mounts_exist() -> None:
    compose = load()
    for kind in ("secrets", "configs"):
        for name, item in compose.get(kind, {}).items():
            if "file" in item and kind == "configs":
                path = COMPOSE.parent / item["file"]
                assert path.is_file(), f"config {name}: {item['file']} does not exist"
                assert path.stat().st_mode & 0o111, f"config {name}: not executable"


def test_a_worker_may_finish_its_runs_as_long_as_on_kubernetes() -> None:
    worker = load()["services"]["worker"]
    grace = worker["stop_grace_period"]
    seconds = int(grace[:-1]) * {"s": 1, "m": 60, "h": 3600}[grace[-1]]
    text = (DEPLOY / "k8s" / "base" / "worker.yaml").read_text()
    k8s = re.search(r"terminationGracePeriodSeconds: (\d+)", text)
    assert k8s is not None
    assert seconds == int(k8s.group(1))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(compose: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = compose
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value

    return change


BREAKAGES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("scheduler as root", _set("services.scheduler.user", "0:0"), "scheduler: runs as 0:0"),
    ("worker without root", _set("services.worker.user", "10001:10001"), "worker: runs as"),
    (
        "worker with another capability",
        _set("services.worker.cap_add", [*KERNEL_HOST_CAPABILITIES, "SYS_ADMIN"]),
        "worker: adds the capabilities",
    ),
    ("backup with a capability", _set("services.backup.cap_add", ["CHOWN"]), "backup: adds"),
    (
        "kernels in the scheduler",
        _set("services.scheduler.environment.WORKBENCH_KERNEL_USER", KERNEL_USER),
        "scheduler: kernels start only",
    ),
    (
        "literal secret key",
        _set("services.migrate.environment.WORKBENCH_SECRET_KEY", "x" * 64),
        "WORKBENCH_SECRET_KEY is a secret",
    ),
    (
        "a secret file that is not mounted",
        _set("services.scheduler.environment.WORKBENCH_SENTRY_DSN_FILE", "/run/secrets/dsn"),
        "not a secret or config it mounts",
    ),
    ("unknown setting", _set("services.worker.environment.WORKBENCH_SHINY", "1"), "not a Work"),
    ("writable root", _set("services.dashboards.read_only", False), "root filesystem"),
    ("no tmpfs", _set("services.worker.tmpfs", None), "is not a tmpfs"),
    ("privileges", _set("services.worker.security_opt", []), "no-new-privileges"),
    ("latest postgres", _set("services.postgres.image", "postgres:latest"), "not pinned"),
    ("no limit", _set("services.redis.deploy", None), "redis: no memory limit"),
    ("no pids limit", _set("services.worker.deploy.resources.limits.pids", None), "no pids"),
    (
        "the source mounted",
        _set("services.worker.volumes", ["home:/var/lib/workbench", "../workbench:/opt/src"]),
        "worker: mounts ../workbench from the host",
    ),
    ("no redis check", _set("services.redis.healthcheck", None), "redis: no health check"),
    (
        "health check on the wrong port",
        _set("services.dashboards.environment.HEALTH_PORT", "9100"),
        "dashboards: the health check asks port 9100",
    ),
    (
        "starts before the migrations",
        _set("services.scheduler.depends_on", {"redis": {"condition": "service_healthy"}}),
        "scheduler: does not wait",
    ),
    (
        "a command of its own",
        _set("services.worker.command", ["worker", "--concurrency", "9"]),
        "no command of the Kubernetes base",
    ),
    (
        "postgres password in the environment",
        _set("services.postgres.environment.POSTGRES_PASSWORD", "hunter2"),
        "postgres: the password",
    ),
    ("a secret of its own", _set("secrets.extra", {"file": "./extra"}), "secret extra"),
    (
        "a broker password in a config",
        _set("configs.redis_url.content", "redis://u:p@redis:6379/0"),
        "holds a password",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [(c, e) for _, c, e in BREAKAGES], ids=[n for n, _, _ in BREAKAGES]
)
def test_policy_catches_a_broken_copy(
    change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    compose = load()
    change(compose)
    problems = policy_problems(compose)
    assert any(expected in p for p in problems), problems


def test_no_service_merges_several_anchors() -> None:
    """`<<: [*a, *b]` is read differently by PyYAML and by Compose's Go parser (which of the
    two wins a key), so the file merges one anchor at a time and sets the rest by hand."""
    assert not re.search(r"<<:\s*\[", COMPOSE.read_text())


def test_every_command_of_the_deployment_files_exists_with_its_options() -> None:
    """`workbench <verb> --help` succeeds for each command compose and Kubernetes run, and
    lists every option they pass."""
    main, init = k8s_commands()
    commands = main | init | {tuple(s["command"]) for s in ours(load()).values()}
    for command in sorted(commands):
        verb = list(itertools.takewhile(lambda word: not word.startswith("-"), command))
        done = subprocess.run(
            [sys.executable, "-m", "workbench", *verb, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env={"COLUMNS": "200", "PATH": str(BIN)},
            check=False,
        )
        assert done.returncode == 0, f"workbench {' '.join(verb)} --help: {done.stderr}"
        for option in (w for w in command if w.startswith("--")):
            assert option in done.stdout, f"workbench {' '.join(verb)} has no {option}"


def dev_problems(dev: dict[str, Any], production: dict[str, Any]) -> list[str]:
    """How the development file strays: other images than production's, a port open beyond
    this machine, a secret, a service of Workbench's own (those are production's)."""
    problems = []
    images = {s.get("image") for s in production["services"].values()}
    for name, service in dev["services"].items():
        if service.get("image") not in images - {OUR_IMAGE}:
            problems.append(f"{name}: image {service.get('image')!r} is not production's")
        for port in service.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name}: port {port} is published beyond the loopback address")
        if "healthcheck" not in service:
            problems.append(f"{name}: no health check")
        for var, value in _environment(service).items():
            if SECRETISH_NAME.search(var) and var != "POSTGRES_HOST_AUTH_METHOD":
                problems.append(f"{name}: {var} is a credential in a development file")
            if URL_WITH_PASSWORD.search(value):
                problems.append(f"{name}: {var} holds a password")
    return problems


def test_the_development_file_matches_production_and_stays_on_this_machine() -> None:
    assert dev_problems(load(DEV), load()) == []
    assert set(load(DEV)["services"]) == {"postgres", "redis"}
    dev = load(DEV)
    dev["services"]["postgres"]["ports"] = ["5432:5432"]
    dev["services"]["redis"]["image"] = "redis:latest"
    dev["services"]["redis"]["environment"] = {"REDIS_PASSWORD": "x"}
    problems = dev_problems(dev, load())
    assert any("beyond the loopback" in p for p in problems), problems
    assert any("not production's" in p for p in problems), problems
    assert any("credential" in p for p in problems), problems


def test_the_development_services_are_where_the_tests_look() -> None:
    ports = {
        name: [str(p).split(":")[1] for p in service["ports"]]
        for name, service in load(DEV)["services"].items()
    }
    assert urlsplit(services.POSTGRES_URL).port == int(ports["postgres"][0])
    assert urlsplit(services.REDIS_URL).port == int(ports["redis"][0])

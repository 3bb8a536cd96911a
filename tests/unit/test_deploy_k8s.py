"""The Kubernetes manifests (deploy/k8s): they render, validate, and follow the deployment rules.

`kubectl kustomize` renders the base and the overlays offline; `kubernetes-validate --strict`
checks every built-in kind against its schema (the KEDA objects have no schema there, so their
fields are checked here by hand); the policy checks run on the rendered objects. `kubectl` is
skipped when it is missing, a failure with CI=true.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_rules import (
    BIN,
    KERNEL_HOST_CAPABILITIES,
    KNOWN_ENV,
    SECRET_ENV,
    SECRET_KEYS,
    SECRETISH_NAME,
    URL_WITH_PASSWORD,
)
from workbench.db.models import Run, RunStatus

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE, EXAMPLE, KEDA = "base", "overlays/example", "overlays/keda"
CRD_KINDS = {"ScaledObject", "TriggerAuthentication"}
POD_KINDS = {"Deployment", "Job", "CronJob"}
#: The Deployments that start kernels, which production refuses without a kernel boundary.
KERNEL_HOSTS = {"workbench-worker", "workbench-dashboards"}
#: Where the shared volume is mounted, and the home in a folder of it: the volume's root
#: belongs to root, so the home is made (0700) by the first command, run as the services' user.
HOME_MOUNT, HOME = "/var/lib/workbench", "/var/lib/workbench/home"


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is not installed (CI=true: the manifests must be rendered)")
        pytest.skip("kubectl is not installed")
    return path


@functools.cache
def _render_text(overlay: str) -> str:
    done = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(_render_text(overlay)) if doc]


def _by(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


# -- the policy --------------------------------------------------------------------------------


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(obj["spec"]["template"]["spec"])


def _containers(spec: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every container of a pod spec, with whether it is an init container."""
    for container in spec.get("initContainers", []):
        yield container, True
    for container in spec.get("containers", []):
        yield container, False


def _secret_mounts(spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The mount paths of the container's volumes that come from a Secret."""
    secret_volumes = {
        v["name"]
        for v in spec.get("volumes", [])
        if "secret" in v or any("secret" in s for s in v.get("projected", {}).get("sources", []))
    }
    return [
        m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in secret_volumes
    ]


def _is_kernel_host(container: dict[str, Any]) -> bool:
    """Whether the container starts kernels as another OS user (WORKBENCH_KERNEL_USER set)."""
    return any(
        var["name"] == "WORKBENCH_KERNEL_USER" and var.get("value")
        for var in container.get("env", [])
    )


def _check_security(where: str, container: dict[str, Any]) -> list[str]:
    """Non-root with no capability; a kernel host: root with exactly the kernel user's six."""
    ctx = container.get("securityContext", {})
    kernel_host = _is_kernel_host(container)
    root = kernel_host
    wanted = {
        "runAsNonRoot": not root,
        "runAsUser": 0 if root else 10001,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    }
    problems = [
        f"{where}: securityContext.{key} is {ctx.get(key)!r}, not {value!r}"
        for key, value in wanted.items()
        if ctx.get(key) != value
    ]
    added = set(ctx.get("capabilities", {}).get("add") or [])
    if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append(f"{where}: capabilities must drop ALL")
    if added != (KERNEL_HOST_CAPABILITIES if kernel_host else set()):
        problems.append(f"{where}: adds the capabilities {sorted(added)}")
    if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    return problems


def _check_resources(where: str, container: dict[str, Any]) -> list[str]:
    resources = container.get("resources", {})
    return [
        f"{where}: no {part}.{what}"
        for part in ("requests", "limits")
        for what in ("cpu", "memory")
        if what not in resources.get(part, {})
    ]


def _check_probes(where: str, container: dict[str, Any]) -> list[str]:
    ports = {p.get("name") for p in container.get("ports", [])} | {
        p["containerPort"] for p in container.get("ports", [])
    }
    problems = []
    for probe, path in (
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path:
            problems.append(f"{where}: {probe} does not GET {path}")
        elif get.get("port") not in ports:
            problems.append(f"{where}: {probe} port {get.get('port')!r} is not a container port")
    return problems


def _check_env(where: str, spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    problems = []
    if container.get("envFrom"):
        problems.append(f"{where}: envFrom hides which variables are set; list them in env")
    mounts = _secret_mounts(spec, container)
    for var in container.get("env", []):
        name, value = var["name"], var.get("value")
        if name.startswith("WORKBENCH_") and name not in KNOWN_ENV:
            problems.append(f"{where}: {name} is not a Workbench setting")
        if name in SECRET_ENV:
            problems.append(f"{where}: {name} is a secret; give it as {name}_FILE")
        if value is None:
            continue
        if name.endswith("_FILE"):
            if not any(str(value).startswith(m.rstrip("/") + "/") for m in mounts):
                problems.append(f"{where}: {name} points at {value!r}, not into a Secret mount")
        elif SECRETISH_NAME.search(name) or URL_WITH_PASSWORD.search(str(value)):
            problems.append(f"{where}: {name} holds a literal secret")
    return problems


def _check_volumes(where: str, spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    kinds = {m["mountPath"]: volumes.get(m["name"], {}) for m in container.get("volumeMounts", [])}
    problems = []
    if "emptyDir" not in kinds.get("/tmp", {}):  # noqa: S108 (a mount path)
        problems.append(f"{where}: /tmp is not an emptyDir")
    home = kinds.get(HOME_MOUNT, {})
    if "emptyDir" not in home and "persistentVolumeClaim" not in home:
        problems.append(f"{where}: {HOME_MOUNT} is neither a PVC nor an emptyDir")
    homes = [v.get("value") for v in container.get("env", []) if v["name"] == "WORKBENCH_HOME"]
    if homes != [HOME]:
        problems.append(f"{where}: WORKBENCH_HOME is {homes}, not {HOME} (in the volume)")
    return problems


def policy_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Every way the rendered objects break the deployment rules (empty: none)."""
    problems: list[str] = []
    for obj in objects:
        if obj["kind"] not in POD_KINDS:
            continue
        spec = _pod_spec(obj)
        long_running = obj["kind"] == "Deployment"
        if long_running and not spec.get("initContainers"):
            problems.append(f"{obj['metadata']['name']}: no init container waits for migrations")
        for container, is_init in _containers(spec):
            where = f"{obj['kind']}/{obj['metadata']['name']}/{container['name']}"
            problems += _check_security(where, container)
            problems += _check_resources(where, container)
            problems += _check_env(where, spec, container)
            problems += _check_volumes(where, spec, container)
            if long_running and not is_init:
                problems += _check_probes(where, container)
                if _is_kernel_host(container) != (obj["metadata"]["name"] in KERNEL_HOSTS):
                    problems.append(
                        f"{where}: kernels start here only in {sorted(KERNEL_HOSTS)}, "
                        "as WORKBENCH_KERNEL_USER"
                    )
            if "command" in container:
                problems.append(f"{where}: sets command; the image's entry point is workbench")
        for volume in spec.get("volumes", []):
            sources = [volume.get("secret")] + [
                s.get("secret") for s in volume.get("projected", {}).get("sources", [])
            ]
            for source in filter(None, sources):
                keys = {item["key"] for item in source.get("items", [])}
                if not source.get("items") or not keys <= SECRET_KEYS:
                    problems.append(f"{obj['metadata']['name']}: secret keys {sorted(keys)}")
    return problems


def invocations(objects: list[dict[str, Any]]) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each container's (CLI verb, its --flags), from its args."""
    found = set()
    for obj in objects:
        if obj["kind"] in POD_KINDS:
            for container, _ in _containers(_pod_spec(obj)):
                args = [str(a) for a in container.get("args", [])]
                first = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
                flags = tuple(a for a in args if a.startswith("--"))
                found.add((tuple(args[:first]), flags))
    return found


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", [BASE, EXAMPLE, KEDA])
def test_renders_and_validates_strictly(overlay: str, tmp_path: Path) -> None:
    objects = render(overlay)
    builtin = [o for o in objects if o["kind"] not in CRD_KINDS]
    out = tmp_path / "rendered.yaml"
    out.write_text(yaml.safe_dump_all(builtin))
    done = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARN" not in done.stdout + done.stderr  # every built-in kind had a schema
    assert len(builtin) >= 12


def test_base_applies_without_keda_and_scales_with_an_hpa() -> None:
    for overlay in (BASE, EXAMPLE):
        objects = render(overlay)
        assert not [o for o in objects if o["kind"] in CRD_KINDS]
        hpa = _by(objects, "HorizontalPodAutoscaler", "workbench-worker")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "workbench-worker"
        assert _by(objects, "Deployment", "workbench-worker")


def test_keda_scales_workers_on_queued_and_running_runs() -> None:
    objects = render(KEDA)
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    scaled = _by(objects, "ScaledObject", "workbench-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert _by(objects, "Deployment", target["name"])
    assert scaled["spec"]["minReplicaCount"] >= 1
    assert scaled["spec"]["maxReplicaCount"] > scaled["spec"]["minReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values())  # KEDA metadata is a string map
    assert "password" not in meta and "connection" not in meta
    query = re.sub(r"\s+", " ", meta["query"])
    assert f"FROM {Run.__tablename__} " in query + " "
    statuses = set(re.findall(r"'([a-z_]+)'", query))
    assert statuses == {RunStatus.QUEUED.value, RunStatus.RUNNING.value}
    assert float(meta["targetQueryValue"]) > 0
    auth = _by(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    assert auth["metadata"]["namespace"] == scaled["metadata"]["namespace"] == "workbench"
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref == {"parameter": "password", "name": "workbench-secrets", "key": "postgres_password"}


def test_yamllint() -> None:
    """Every YAML file of deploy/: manifests, compose files, alert rules and their tests."""
    done = subprocess.run(
        [str(BIN / "yamllint"), "-s", "-c", str(ROOT / "deploy" / ".yamllint.yaml"), "deploy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "deploy/compose.yaml"
        in subprocess.run(
            [
                str(BIN / "yamllint"),
                "--list-files",
                "-c",
                str(ROOT / "deploy" / ".yamllint.yaml"),
                "deploy",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )


@pytest.mark.parametrize("overlay", [BASE, EXAMPLE, KEDA])
def test_policy(overlay: str) -> None:
    objects = render(overlay)
    assert policy_problems(objects) == []
    kinds = {o["kind"] for o in objects}
    assert {"Job", "CronJob", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert names == {"workbench-scheduler", "workbench-worker", "workbench-dashboards"}


def test_scheduler_has_a_disruption_budget_and_scrape_annotations() -> None:
    objects = render(BASE)
    pdb = _by(objects, "PodDisruptionBudget", "workbench-scheduler")
    scheduler = _by(objects, "Deployment", "workbench-scheduler")
    labels = scheduler["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < scheduler["spec"]["replicas"]
    for name in ("workbench-scheduler", "workbench-worker"):
        template = _by(objects, "Deployment", name)["spec"]["template"]
        notes = template["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true"
        (container,) = template["spec"]["containers"]
        assert int(notes["prometheus.io/port"]) in {p["containerPort"] for p in container["ports"]}
        args = container["args"]
        assert args[args.index("--metrics-port") + 1] == notes["prometheus.io/port"]


def test_images_base_latest_and_overlay_pinned() -> None:
    def images(overlay: str) -> set[str]:
        return set(re.findall(r"^\s*image: (\S+)$", _render_text(overlay), re.M))

    assert images(BASE) == {"workbench:latest"}
    (pinned,) = images(EXAMPLE)
    assert not pinned.endswith(":latest") and ":" in pinned


def test_every_container_runs_a_real_cli_verb_with_real_flags() -> None:
    calls = invocations(render(KEDA))
    verbs = {verb for verb, _ in calls}
    assert ("db", "upgrade") in verbs and ("db", "check-migrations") in verbs
    assert {("scheduler",), ("worker",), ("dashboards", "serve"), ("backup", "create")} <= verbs
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    for verb in verbs:
        done = subprocess.run(
            [sys.executable, "-m", "workbench", *verb, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        assert done.returncode == 0, (verb, done.stdout + done.stderr)
        for _, flags in (c for c in calls if c[0] == verb):
            for flag in flags:
                assert re.search(rf"{re.escape(flag)}\b", done.stdout), (verb, flag)


def test_no_literal_secret_in_the_files() -> None:
    for path in K8S.rglob("*.yaml"):
        text = path.read_text()
        assert not URL_WITH_PASSWORD.search(text), path
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                pytest.fail(f"{path}: a Secret with values; create it from files instead")


# -- the policy catches what it should -----------------------------------------------------------


def _worker(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return _by(objects, "Deployment", "workbench-worker")


def _main(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(obj: dict[str, Any], name: str, value: str) -> None:
    _main(obj)["env"].append({"name": name, "value": value})


BREAKAGES: dict[str, Callable[[dict[str, Any]], object]] = {
    "no readiness probe": lambda o: _main(o).pop("readinessProbe"),
    "liveness on /readyz": lambda o: _main(o)["livenessProbe"]["httpGet"].update(path="/readyz"),
    "probe on an unknown port": lambda o: _main(o)["startupProbe"]["httpGet"].update(port="x"),
    "no memory limit": lambda o: _main(o)["resources"]["limits"].pop("memory"),
    "root without a kernel user": lambda o: _main(o).update(
        env=[v for v in _main(o)["env"] if v["name"] != "WORKBENCH_KERNEL_USER"]
    ),
    "kernel host as the service's user": lambda o: _main(o)["securityContext"].update(
        runAsUser=10001, runAsNonRoot=True
    ),
    "writable root": lambda o: _main(o)["securityContext"].update(readOnlyRootFilesystem=False),
    "adds a capability": lambda o: _main(o)["securityContext"]["capabilities"]["add"].append(
        "NET_ADMIN"
    ),
    "lacks a capability": lambda o: _main(o)["securityContext"]["capabilities"]["add"].remove(
        "KILL"
    ),
    "no seccomp": lambda o: _main(o)["securityContext"].pop("seccompProfile"),
    "escalation": lambda o: _main(o)["securityContext"].update(allowPrivilegeEscalation=True),
    "literal secret key": lambda o: _env(o, "WORKBENCH_SECRET_KEY", "x" * 40),
    "password in a URL": lambda o: _env(o, "BROKER", "redis://user:hunter2@redis:6379/0"),
    "password variable": lambda o: _env(o, "POSTGRES_PASSWORD", "postgres"),
    "unknown setting": lambda o: _env(o, "WORKBENCH_NOT_A_SETTING", "1"),
    "file outside the secrets": lambda o: _env(
        o, "WORKBENCH_WEBHOOK_URL_FILE", "/var/lib/workbench/hook"
    ),
    "envFrom": lambda o: _main(o).update(envFrom=[{"configMapRef": {"name": "x"}}]),
    "tmp not an emptyDir": lambda o: _main(o)["volumeMounts"].pop(1),
    "no init container": lambda o: o["spec"]["template"]["spec"].pop("initContainers"),
    "a command": lambda o: _main(o).update(command=["sh", "-c", "workbench worker"]),
    "an unlisted secret key": lambda o: o["spec"]["template"]["spec"]["volumes"][0]["projected"][
        "sources"
    ][0]["secret"]["items"].append({"key": "admin_password", "path": "admin_password"}),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_policy_flags_a_broken_worker(breakage: str) -> None:
    objects = copy.deepcopy(render(BASE))
    assert policy_problems([_worker(objects)]) == []
    BREAKAGES[breakage](_worker(objects))
    assert policy_problems([_worker(objects)]), breakage


def test_a_made_up_verb_or_flag_fails_the_cli_check() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    bad = subprocess.run(
        [sys.executable, "-m", "workbench", "db", "migrate-now", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert bad.returncode != 0
    good = subprocess.run(
        [sys.executable, "-m", "workbench", "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert good.returncode == 0 and "--metrics-port" in good.stdout
    assert not re.search(r"--health-port\b", good.stdout)


def test_only_the_worker_and_the_dashboards_start_kernels_as_root() -> None:
    objects = copy.deepcopy(render(BASE))
    scheduler = _by(objects, "Deployment", "workbench-scheduler")
    assert policy_problems([scheduler]) == []
    worker_ctx = _main(_worker(objects))["securityContext"]
    _main(scheduler)["securityContext"] = copy.deepcopy(worker_ctx)
    _env(scheduler, "WORKBENCH_KERNEL_USER", "wbkernel")
    assert any("kernels start here only" in p for p in policy_problems([scheduler]))


def test_a_viewer_stays_on_the_dashboards_replica_holding_their_kernel() -> None:
    objects = render(EXAMPLE)
    service = _by(objects, "Service", "workbench-dashboards")
    replicas = _by(objects, "Deployment", "workbench-dashboards")["spec"]["replicas"]
    assert replicas > 1
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    # At least a working day: the page's websocket must not move while it is open.
    assert service["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] >= 8 * 3600


def test_the_backup_runs_as_the_services_user_and_the_home_is_a_folder_of_the_volume() -> None:
    objects = copy.deepcopy(render(BASE))
    backup = _by(objects, "CronJob", "workbench-backup")
    assert policy_problems([backup]) == []
    (container,) = _pod_spec(backup)["containers"]
    assert container["securityContext"]["runAsUser"] == 10001
    container["securityContext"].update(runAsUser=0, runAsNonRoot=False)
    assert any("runAsUser is 0" in p for p in policy_problems([backup]))
    # The volume's root belongs to root: a home there could not be made private by 10001.
    scheduler = _by(objects, "Deployment", "workbench-scheduler")
    for var in _main(scheduler)["env"]:
        if var["name"] == "WORKBENCH_HOME":
            var["value"] = HOME_MOUNT
    assert any("WORKBENCH_HOME is" in p for p in policy_problems([scheduler]))

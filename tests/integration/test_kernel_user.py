"""Kernels run as WORKBENCH_KERNEL_USER (real kernels, started cold and forked): that user's
uid, a folder of their own as HOME, no way into the service's home, nothing left behind.

Needs an unprivileged OS user named by WORKBENCH_TEST_KERNEL_USER (`.ci/run` creates
``wbkernel``) and a test process allowed to start processes as it (root here).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from workbench.core.config import Settings, load_settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.runs import sandbox
from workbench.runs.forkserver import fork_supported
from workbench.runs.kernels import KernelPool, WarmKernel, kernel_env
from workbench.runs.sandbox import KernelUser

PROBE = """
import json as _j, os as _o
def _try(f):
    try:
        f()
        return "allowed"
    except PermissionError:
        return "denied"
print(_j.dumps({
    "uid": _o.getuid(), "euid": _o.geteuid(), "gid": _o.getgid(), "groups": _o.getgroups(),
    "home": _o.environ.get("HOME"), "user": _o.environ.get("USER"), "cwd": _o.getcwd(),
    "read_key": _try(lambda: open(%(key)r).read()),
    "list_home": _try(lambda: _o.listdir(%(home)r)),
    "umask": _o.umask(0o077),
}))
"""


@pytest.fixture(scope="module")
def user() -> KernelUser:
    name = os.environ.get("WORKBENCH_TEST_KERNEL_USER")
    if not name:
        message = (
            "WORKBENCH_TEST_KERNEL_USER names no kernel user: create an unprivileged user "
            "and export it (`.ci/run` creates and exports wbkernel)"
        )
        if services.in_ci():
            pytest.fail(message)
        pytest.skip(message)
    resolved = sandbox.kernel_user(load_settings(_env_file=None, kernel_user=name))
    assert resolved is not None
    return resolved


@pytest.fixture
def service_home(settings: Settings) -> Path:
    """A service home with its generated secret key file (mode 0600)."""
    ensure_home(settings)
    ensure_secret_key(settings)
    assert stat.S_IMODE(settings.secret_key_path.stat().st_mode) == 0o600
    return settings.home_path


def _printed(pool: KernelPool, kernel: WarmKernel, code: str) -> str:
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    async def run() -> None:
        reply = await kernel.client.execute_interactive(code, output_hook=hook, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]

    pool.call(run())
    return "".join(out).strip()


def _probe(pool: KernelPool, kernel: WarmKernel, home: Path) -> dict:
    code = PROBE % {"key": str(home / "secret_key"), "home": str(home)}
    report: dict = json.loads(_printed(pool, kernel, code))
    return report


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("Uid:"))
    return int(line.split()[1])


@pytest.fixture(params=["cold", "forked"])
def pool(request: pytest.FixtureRequest, user: KernelUser) -> Iterator[KernelPool]:
    fork = request.param == "forked"
    if fork and not fork_supported():
        pytest.skip("forked kernels need Linux")
    with KernelPool(1, env=kernel_env(), fork=fork, kernel_user=user) as p:
        assert p.fork is fork
        yield p


def test_kernel_runs_as_the_kernel_user_and_cannot_read_the_service_home(
    pool: KernelPool, user: KernelUser, service_home: Path
) -> None:
    kernel = pool.call(pool.acquire())
    try:
        report = _probe(pool, kernel, service_home)
        assert kernel.folder is not None
        assert report["uid"] == report["euid"] == user.uid
        assert report["gid"] == user.gid
        assert 0 not in report["groups"]  # none of the service's (root's) groups
        assert report["home"] == report["cwd"] == str(kernel.folder)
        assert report["user"] == user.name
        assert report["read_key"] == "denied"
        assert report["list_home"] == "denied"
        assert report["umask"] == 0o077
        assert _uid_of(kernel.manager.provisioner.pid) == user.uid  # type: ignore[union-attr]
        info = kernel.folder.stat()
        assert (info.st_uid, info.st_gid) == (user.uid, user.gid)
        assert stat.S_IMODE(info.st_mode) & 0o777 == 0o700
        assert not kernel.folder.is_relative_to(service_home)
        assert not (kernel.folder / "kernel.json").exists()  # read by the kernel, then gone
        sockets = [p for p in kernel.folder.iterdir() if p.is_socket()]
        assert len(sockets) == 5
        assert {p.stat().st_uid for p in sockets} == {os.geteuid()}  # the service's now
    finally:
        pool.call(kernel.discard())
    assert not kernel.folder.exists()  # removed with the kernel


def test_each_kernel_has_its_own_folder(pool: KernelPool, service_home: Path) -> None:
    first = pool.call(pool.acquire())
    second = pool.call(pool.acquire())
    try:
        homes = {_probe(pool, k, service_home)["home"] for k in (first, second)}
        assert homes == {str(first.folder), str(second.folder)}
        assert len(homes) == 2
    finally:
        pool.call(first.discard())
        pool.call(second.discard())
    assert first.folder is not None and not first.folder.exists()
    assert second.folder is not None and not second.folder.exists()


def test_a_kernel_cannot_reach_another_kernel_of_the_same_user(
    pool: KernelPool, user: KernelUser
) -> None:
    victim = pool.call(pool.acquire())
    attacker = pool.call(pool.acquire())
    try:
        assert victim.folder is not None
        pid = victim.manager.provisioner.pid  # type: ignore[union-attr]
        sockets = sorted(str(p) for p in victim.folder.iterdir() if p.is_socket())
        assert sockets and not (victim.folder / "kernel.json").exists()
        code = f"""
import json, os, socket
def attempt(f):
    try:
        f()
        return "allowed"
    except PermissionError:
        return "denied"
def connect(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
print(json.dumps({{
    "environ": attempt(lambda: open("/proc/{pid}/environ", "rb").read()),
    "mem": attempt(lambda: open("/proc/{pid}/mem", "rb").close()),
    "cwd": attempt(lambda: os.readlink("/proc/{pid}/cwd")),
    "sockets": sorted({{attempt(lambda: connect(p)) for p in {sockets!r}}}),
}}))
"""
        report = json.loads(_printed(pool, attacker, code))
        assert report == {
            "environ": "denied",
            "mem": "denied",
            "cwd": "denied",
            "sockets": ["denied"],
        }
        # ...while the service still reaches the victim
        assert _printed(pool, victim, "print(6 * 7)") == "42"
    finally:
        pool.call(victim.discard())
        pool.call(attacker.discard())


def test_template_process_runs_as_the_kernel_user_with_nothing_of_the_service(
    monkeypatch: pytest.MonkeyPatch, user: KernelUser, service_home: Path
) -> None:
    if not fork_supported():
        pytest.skip("forked kernels need Linux")
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "s3rvice-only-" + "k" * 40)
    with KernelPool(1, env=kernel_env(), fork=True, kernel_user=user) as pool:
        server = pool._forkserver
        assert server is not None and server.alive()
        assert _uid_of(server.pid) == user.uid
        with open(f"/proc/{server.pid}/environ", "rb") as f:
            environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        assert not any(name.startswith(b"WORKBENCH_") for name in environ)
        home = Path(environ[b"HOME"].decode())
        assert home != Path(os.environ["HOME"]) and home.stat().st_uid == user.uid
        assert Path(os.readlink(f"/proc/{server.pid}/cwd")) == home
    assert not home.exists()  # removed when the pool closed


def test_without_a_kernel_user_kernels_run_as_before(service_home: Path) -> None:
    with KernelPool(1, env=kernel_env(), fork=False) as pool:
        kernel = pool.call(pool.acquire())
        try:
            report = _probe(pool, kernel, service_home)
        finally:
            pool.call(kernel.discard())
    assert kernel.folder is None
    assert report["uid"] == os.getuid()
    assert report["read_key"] == "allowed"  # why team mode needs the boundary


def test_production_team_mode_starts_with_a_kernel_user(user: KernelUser) -> None:
    url = "postgresql://workbench:Zq8-generated-Pw-4hT@db:5432/workbench"
    settings = load_settings(env="production", database_url=url, kernel_user=user.name)
    sandbox.require_boundary(settings, "scheduler")  # no refusal
    assert sandbox.kernel_user(settings) == user

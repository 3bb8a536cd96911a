"""Kernels forked from the template process: fresh per run, gone when their worker dies,
still killed by timeouts (real kernels, real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runs_helpers import wait_for
from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.db.models import RunStatus
from workbench.runs.api import queue_run
from workbench.runs.execute import execute_run
from workbench.runs.forkserver import fork_supported
from workbench.runs.kernels import KernelPool, WarmKernel

pytestmark = pytest.mark.skipif(not fork_supported(), reason="forked kernels need Linux")
NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return found


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


@pytest.fixture
def pool() -> Iterator[KernelPool]:
    with KernelPool(2, fork=True) as p:
        yield p


def test_forked_kernels_share_no_state(pool: KernelPool) -> None:
    assert pool.fork and pool._forkserver is not None
    template = pool._forkserver.pid
    first = pool.call(pool.acquire())
    a = json.loads(
        _printed(
            pool,
            first,
            "import json, os, random\n"
            "json.leak = 1; os.environ['WB_LEAK'] = '1'; leaked = 42\n"
            "print(json.dumps([os.getpid(), os.getppid(), random.random()]))",
        )
    )
    pool.call(first.discard())
    second = pool.call(pool.acquire())
    b = json.loads(
        _printed(
            pool,
            second,
            "import json, os, random\n"
            "print(json.dumps([os.getpid(), os.getppid(), random.random(),\n"
            "  hasattr(json, 'leak'), os.environ.get('WB_LEAK'), 'leaked' in globals()]))",
        )
    )
    pool.call(second.discard())
    assert a[0] != b[0], "each run gets its own kernel process"
    assert a[1] == b[1] == template, "both were forked from the template"
    assert a[2] != b[2], "forked kernels do not share a random state"
    assert b[3:] == [False, None, False], "nothing the first run did reaches the second"


def test_kill_9_of_the_worker_leaves_no_kernel(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys, time
            from workbench.runs.kernels import KernelPool
            pool = KernelPool(2, fork=True)
            while pool._ready is None or pool._ready.qsize() < 2:
                time.sleep(0.1)
            print(json.dumps(pool._forkserver.pid), flush=True)
            time.sleep(600)
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, start_new_session=False
    )
    try:
        assert process.stdout is not None
        template = json.loads(process.stdout.readline())
        kernels = children(template)
        assert len(kernels) == 2
        assert all(alive(pid) for pid in [template, *kernels])
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        wait_for(
            lambda: not any(alive(pid) for pid in [template, *kernels]),
            15,
            "the template and its kernels to die with their worker",
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_timeout_still_kills_a_forked_kernel(
    pg_owner: str | None, settings: Settings, db_url: str, pool: KernelPool
) -> None:
    ensure_home(settings)
    ensure_secret_key(settings)
    wb = Workbench(settings, db_url)
    try:
        assert pool._forkserver is not None
        template = pool._forkserver.pid
        wait_for(lambda: len(children(template)) == 2, 60, "two warm kernels")
        before = set(children(template))
        run_id = queue_run(
            NOTEBOOKS / "sleeps_past_timeout.ipynb", timeout=2, owner=pg_owner, workbench=wb
        )
        started = time.monotonic()
        record = execute_run(run_id, workbench=wb, kernels=pool)
        assert record.status is RunStatus.TIMED_OUT
        assert time.monotonic() - started < 30
        # The kernel that ran it is gone; only warm kernels it never touched remain.
        wait_for(lambda: bool(before - set(children(template))), 15, "the kernel to die")
        used = before - set(children(template))
        assert len(used) == 1
        assert not any(alive(pid) for pid in used)
    finally:
        wb.close()

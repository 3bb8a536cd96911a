"""The processes a service starts die with it, carry a name, and are found again after a crash.

Every process a scheduler, a worker or the dashboards server starts (pool workers, kernel
templates, kernels, spares) asks Linux for ``SIGKILL`` when its parent dies
(``PR_SET_PDEATHSIG``): a ``kill -9`` of the service leaves nothing running. The signal fires
when the parent *thread* that started the process exits, so a service starts its children
from threads that live as long as the children should. Off Linux these calls do nothing.

A service also records its children's PIDs with their start times (in its heartbeat row's
details); the next instance on the same host ends what a dead instance recorded and nothing
else (:func:`end_leftovers`): a PID whose start time differs is somebody else's process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence

import psutil

__all__ = [
    "KERNEL_TITLE",
    "die_with_parent",
    "end_leftovers",
    "parent_death_hook",
    "record",
    "set_title",
]

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
#: The name every run and dashboard kernel carries (``ps``, ``pgrep -f workbench-kernel``).
KERNEL_TITLE = "workbench-kernel"

_LINUX = sys.platform.startswith("linux")
_prctl: Callable[..., int] | None = None
if _LINUX:
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(expected_parent: int) -> None:
    """In a new process: get ``SIGKILL`` when the parent dies; exit at once if it already has.

    ``expected_parent`` is the parent's PID as the parent saw it before starting us: if
    ``getppid()`` differs, the parent died before the signal was armed.
    """
    if _prctl is None:
        return
    if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != expected_parent:
        os._exit(1)


def parent_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child dies with this process.

    Python runs it in the child after switching to another user (``user=``), so a kernel
    started as the kernel user is armed too (a change of user would clear the signal).
    None off Linux.
    """
    if _prctl is None:
        return None
    parent, prctl = os.getpid(), _prctl

    def arm() -> None:  # in the forked child: no allocation-heavy work, no locks
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def set_title(title: str) -> None:
    """Name this process ``title`` in ``ps`` and ``/proc`` (command line and, cut to 15
    bytes, the kernel's process name)."""
    try:
        from setproctitle import setproctitle
    except ImportError:
        if _prctl is not None:
            _prctl(PR_SET_NAME, title.encode()[:15], 0, 0, 0)
        return
    # SPT_NOENV: the title uses the command line's own space and leaves the environment where
    # it is, so /proc/<pid>/environ still shows what the process holds (the checks of what a
    # kernel holds read it); read once, at setproctitle's first call, and then unset.
    given = os.environ.get("SPT_NOENV")
    os.environ["SPT_NOENV"] = "1"
    try:
        setproctitle(title)
    finally:
        if given is None:
            os.environ.pop("SPT_NOENV", None)
        else:
            os.environ["SPT_NOENV"] = given


def record(pids: Iterable[int]) -> list[list[float]]:
    """``[pid, start time]`` of each live process of ``pids``, for a heartbeat row."""
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append([pid, psutil.Process(pid).create_time()])
    return found


def _matching(pid: int, started: float) -> psutil.Process | None:
    """The process ``pid`` if it is the one recorded (same start time) and ours, else None."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started) > 0.01:
            return None  # the PID was reused: somebody else's process
        if process.uids().real != os.getuid() and os.getuid() != 0:
            return None
        return process
    except psutil.Error:
        return None


def end_leftovers(recorded: Sequence[Sequence[float]]) -> list[int]:
    """Kill the recorded processes of a dead instance that still run, with their descendants.

    Only a process whose PID *and* start time match a record is touched. Returns the PIDs
    killed.
    """
    killed: list[int] = []
    for entry in recorded:
        if len(entry) != 2:
            continue
        process = _matching(int(entry[0]), float(entry[1]))
        if process is None:
            continue
        with contextlib.suppress(psutil.Error):
            family = [*process.children(recursive=True), process]
            for member in family:
                with contextlib.suppress(psutil.Error):
                    member.kill()
                    killed.append(member.pid)
    if killed:
        log.warning(
            "ended %d process(es) a previous instance of this service left running", len(killed)
        )
    return killed

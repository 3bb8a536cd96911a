"""The OS boundary around kernels: an unprivileged user of their own (WORKBENCH_KERNEL_USER).

A clean environment is not enough: a kernel running as the service's OS user can still open
the service's files (the secret key file, ``.env``, other runs' folders). With a kernel user
set, every kernel (and the fork server's template process) starts as that user, with a
runtime folder of its own (:func:`kernel_folder`: its ``HOME``, its first working folder, its
connection file and IPC sockets), as Airflow's ``run_as_user`` and JupyterHub's spawners do.

The service needs root, or the capabilities in :data:`NEEDED_CAPABILITIES`: it starts
processes as another user (``CAP_SETUID``, ``CAP_SETGID``), hands the folder over
(``CAP_CHOWN``), writes the connection file into it, reaches the kernel's sockets and removes
the folder afterwards (``CAP_DAC_OVERRIDE``, ``CAP_FOWNER``), and signals the kernel
(``CAP_KILL``). The kernel user needs only to run the service's Python interpreter and read
its installed packages.

Kernels of one kernel user share its uid, so each is also sealed against the others: it is
made non-dumpable (no ptrace, its ``/proc`` entries become root's; :data:`SEAL_CODE`, or
:func:`seal_process` in a forked kernel), and once it is ready its connection file is
removed and its sockets are handed to the service (:func:`seal_folder`), so another kernel
can neither read its key nor connect to it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.config import Settings
from workbench.core.errors import InsecureConfigurationError
from workbench.core.production import kernel_boundary_problem
from workbench.runs.errors import KernelUserError

__all__ = [
    "NEEDED_CAPABILITIES",
    "SEAL_CODE",
    "KernelUser",
    "kernel_folder",
    "kernel_user",
    "popen_options",
    "remove_folder",
    "require_boundary",
    "seal_folder",
    "seal_process",
    "user_env",
]

log = logging.getLogger(__name__)

#: Linux capabilities (name, bit) a service that is not root needs to use a kernel user.
NEEDED_CAPABILITIES = (
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
)
_KERNEL_UMASK = 0o077  # what a kernel creates is its own
PR_SET_DUMPABLE = 4
#: Silent kernel code making a started kernel non-dumpable (see :func:`seal_process`).
SEAL_CODE = (
    "if __import__('ctypes').CDLL(None).prctl(4, 0, 0, 0, 0) != 0:\n"
    "    raise OSError('prctl(PR_SET_DUMPABLE) failed')"
)
_warned = False


@dataclass(frozen=True)
class KernelUser:
    """The unprivileged OS user kernels run as."""

    name: str
    uid: int
    gid: int


def kernel_user(settings: Settings) -> KernelUser | None:
    """The user named by WORKBENCH_KERNEL_USER, or ``None`` when it is unset.

    Raises :class:`KernelUserError` when it names no OS user, root, the service's own user,
    or when this process may not start processes as another user.
    """
    name = (settings.kernel_user or "").strip()
    if not name:
        return None
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise KernelUserError(
            f"WORKBENCH_KERNEL_USER is {name!r}, which is no user of this machine: create an "
            "unprivileged user (for example `useradd --system --user-group --shell "
            "/usr/sbin/nologin wbkernel`) and name it, or unset WORKBENCH_KERNEL_USER."
        ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise KernelUserError(
            f"WORKBENCH_KERNEL_USER is {name!r}, which is root or in root's group: name an "
            "unprivileged user created for kernels (for example wbkernel)."
        )
    if entry.pw_uid == os.geteuid():
        raise KernelUserError(
            f"WORKBENCH_KERNEL_USER is {name!r}, the service's own user, which can read the "
            "service's files: name another, unprivileged user created for kernels (for "
            "example wbkernel)."
        )
    missing = _missing_capabilities()
    if missing:
        raise KernelUserError(
            f"WORKBENCH_KERNEL_USER is {name!r}, but this process cannot start kernels as "
            f"another user: run the service as root or grant it {', '.join(missing)}; or "
            "unset WORKBENCH_KERNEL_USER and give kernels their own containers."
        )
    return KernelUser(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def _missing_capabilities() -> list[str]:
    """The capabilities of :data:`NEEDED_CAPABILITIES` this process lacks (none for root)."""
    if os.geteuid() == 0:
        return []
    effective = 0
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    effective = int(line.split()[1], 16)
    except OSError:  # no procfs: let starting the kernel tell
        return []
    return [name for name, bit in NEEDED_CAPABILITIES if not effective & (1 << bit)]


def kernel_folder(user: KernelUser | None, prefix: str = "wb-kernel-") -> Path:
    """A fresh folder (mode 0700) owned by ``user`` (by this process for ``None``).

    It lies in the system's temporary folder, outside the service's home: the kernel's
    ``HOME``, its working folder until a run names one, and its runtime folder (connection
    file, IPC sockets). Remove it with :func:`remove_folder` when the kernel is gone.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))  # mode 0700, a name nobody else holds
    if user is not None:
        try:
            os.chown(folder, user.uid, user.gid)
        except OSError:
            folder.rmdir()
            raise
    return folder


def remove_folder(folder: Path | None) -> None:
    """Remove a kernel's folder and what the kernel left in it; a failure is only logged."""
    if folder is None:
        return
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove the kernel folder %s: %s", folder, exc)


def popen_options(user: KernelUser | None) -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments that start a process as ``user`` ({} for None).

    The process gets the user's own groups (never the service's supplementary groups) and a
    umask that keeps what it creates private.
    """
    if user is None:
        return {}
    return {
        "user": user.uid,
        "group": user.gid,
        "extra_groups": os.getgrouplist(user.name, user.gid),
        "umask": _KERNEL_UMASK,
    }


def seal_process() -> None:
    """Make this process non-dumpable: processes of the same uid (other kernels) can no
    longer ptrace it or read its ``/proc`` entries (environment, memory, working folder)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def seal_folder(folder: Path, connection_file: str) -> None:
    """Once the kernel is ready: remove its connection file (the kernel has read it) and
    give its IPC sockets to the service, so other kernels of the same user cannot connect."""
    Path(connection_file).unlink(missing_ok=True)
    uid, gid = os.geteuid(), os.getegid()
    for entry in folder.iterdir():
        if entry.name.startswith("kernel-") and entry.is_socket():
            os.chown(entry, uid, gid)
            entry.chmod(0o600)


def user_env(user: KernelUser | None, folder: Path) -> dict[str, str]:
    """The variables that make ``folder`` a kernel's home: ``HOME`` and, for a kernel user,
    its name (``USER``, ``LOGNAME``) instead of the service's."""
    env = {"HOME": str(folder)}
    if user is not None:
        env["USER"] = env["LOGNAME"] = user.name
    return env


def require_boundary(settings: Settings, process: str) -> None:
    """Refuse (production) or warn once (development) when ``process`` would start kernels
    in team mode without an OS boundary: no kernel user and no container per kernel.

    A kernel user that is set is checked here too, so a wrong one stops the service at start
    rather than at its first kernel.
    """
    global _warned
    if kernel_user(settings) is not None:
        return
    problem = kernel_boundary_problem(settings)
    if problem is None:
        return
    if settings.is_production:
        raise InsecureConfigurationError([f"{process}: {problem}"])
    if not _warned:
        _warned = True
        log.warning("%s (development only; production refuses this): %s", process, problem)

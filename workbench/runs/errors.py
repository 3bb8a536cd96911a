"""Failures of notebook runs a user can fix, each a :class:`WorkbenchError`."""

from __future__ import annotations

from workbench.core.errors import ConfigError, WorkbenchError

__all__ = [
    "KernelUserError",
    "NotebookError",
    "ParameterError",
    "RunNotFoundError",
    "RunRefusedError",
    "RunStateError",
    "SecretError",
    "SecretNotFoundError",
    "WarmWorkerRunningError",
]


class ParameterError(WorkbenchError):
    """A run parameter is unknown or has the wrong type; see `workbench notebooks params NB`."""

    exit_code = 2

    def __init__(self, message: str | None = None, *, parameters: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        #: The parameters the message is about, so a form can show it at their fields.
        self.parameters = parameters


class NotebookError(WorkbenchError):
    """The notebook cannot be read or its parameters cell cannot be understood."""

    exit_code = 2


class SecretNotFoundError(WorkbenchError):
    """A `secret:NAME` parameter names no stored secret; add it with `workbench secrets set`."""


class SecretError(WorkbenchError):
    """A secret cannot be stored or handed over as asked (a bad name, no such team, no key)."""


class RunNotFoundError(WorkbenchError):
    """No run has this id; list runs with `workbench runs list`."""


class AmbiguousRunIdError(RunNotFoundError):
    """Several runs have ids starting with this prefix; give more of the id."""

    exit_code = 2


class RunStateError(WorkbenchError):
    """The run is not in a state that allows this; check it with `workbench runs show ID`."""


class RunPermissionError(WorkbenchError):
    """Refused: viewers read runs; analysts and admins queue and cancel their teams' runs."""


class AccountDisabledError(WorkbenchError):
    """Refused: your Workbench account is disabled (or this login is none); ask an admin."""


class TeamChoiceError(WorkbenchError):
    """Name the team this is for with team= (CLI: --team): one of your teams."""

    exit_code = 2


class OwnerRequiredError(WorkbenchError):
    """In team mode the service names whose run or job this is: owner=USERNAME (CLI: --as)."""

    exit_code = 2


class OwnerError(WorkbenchError):
    """The owner named is not an active analyst or admin of the team; check the user name."""

    exit_code = 2


class ResultError(WorkbenchError):
    """A result cannot be recorded or found."""


class ForkServerError(WorkbenchError):
    """The kernel template process failed; kernels are started from scratch instead."""


class KernelError(WorkbenchError):
    """A kernel could not be started; check that ipykernel is installed in this environment."""


class StorageError(WorkbenchError):
    """A run output could not be written or read at its storage location."""


class RunRefusedError(WorkbenchError):
    """The executor will not run this row: no active owner may be given its rights."""


class KernelUserError(ConfigError):
    """WORKBENCH_KERNEL_USER cannot be used: name an unprivileged OS user other than the
    service's own and not root, or unset it."""


class WarmWorkerRunningError(WorkbenchError):
    """A warm worker already serves this database; `workbench run` hands runs to it."""

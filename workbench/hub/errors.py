"""Errors of the JupyterHub seat."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class HubError(WorkbenchError):
    """JupyterHub cannot serve Workbench as configured; see docs/lab.md, "JupyterHub"."""


class HubSecretError(HubError):
    """A single-user server would be handed a secret of the service (the master key, the
    service's database URL or another login): its kernels would hold it."""

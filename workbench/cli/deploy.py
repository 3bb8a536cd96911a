"""`workbench deploy`: what a container deployment needs before it starts."""

from __future__ import annotations

from workbench.cli.common import WorkbenchTyper

app = WorkbenchTyper(
    help="Prepare a deployment: the secret files its services read.",
    no_args_is_help=True,
)

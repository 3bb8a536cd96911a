"""Telling the world about runs: lifecycle hooks and notifiers (webhook built in)."""

from workbench.notify.dispatch import notify_run

__all__ = ["notify_run"]

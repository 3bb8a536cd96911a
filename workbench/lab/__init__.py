"""The analyst's seat: Workbench inside JupyterLab (``workbench lab``, the server extension
and its REST API under ``/workbench/api/``)."""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """How jupyter_server finds the extension (``jpserver_extensions={"workbench.lab": True}``)."""
    from workbench.lab.app import WorkbenchLab

    return [{"module": "workbench.lab", "app": WorkbenchLab}]

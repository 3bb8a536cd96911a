"""Voila dashboards served by Workbench: login, per-viewer identity, lock-down, fast render.

The server side (:mod:`.server`, :mod:`.auth`, :mod:`.lockdown`) runs Voila with Workbench
accounts; the kernel side (:mod:`.viewer`, :mod:`.widgets`) gives a dashboard the viewer's
own database rights and turns its parameters cell into filters.
"""

from __future__ import annotations

__all__: list[str] = []

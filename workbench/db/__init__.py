"""The database layer: engines and pools, typed models and shipped migrations."""

from __future__ import annotations

from workbench.db.engine import create_workbench_engine, is_postgresql, is_sqlite

__all__ = ["create_workbench_engine", "is_postgresql", "is_sqlite"]

"""What the data and account layers need of a workbench: settings, a URL, an engine, sessions.

A :class:`Database` is a protocol, so those layers depend on this narrow shape and never on
the :class:`~workbench.app.Workbench` handle built above them (which satisfies it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from workbench.core.config import Settings

__all__ = ["Database"]


class Database(Protocol):
    """A configured database: its settings, URL, pooled engine and ORM sessions."""

    @property
    def settings(self) -> Settings: ...

    @property
    def database_url(self) -> str: ...

    @property
    def engine(self) -> Engine: ...

    def session(self) -> Session: ...

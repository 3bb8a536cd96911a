"""The three roles of an account, in a module of their own so the command line can offer them
without importing the database models (and SQLAlchemy) just to print its help."""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.StrEnum):
    """What an account may do: administer, analyse (write data, run notebooks) or view."""

    ADMIN = "admin"
    ANALYST = "analyst"
    VIEWER = "viewer"

"""Which run a typed id names: the full id or a unique prefix of it, as git takes commits.

A prefix is at least :data:`MIN_PREFIX` hex digits (dashes anywhere are ignored). It is
matched against the id's 32 hex digits, whatever the engine stores (SQLite: 32 hex digits;
PostgreSQL: a ``uuid``, compared on its text form without dashes), and inside the caller's
session, so row-level security decides what matches: another team's run is never a candidate,
and a prefix of it is "no such run", never "ambiguous".
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import String, cast, func, select

from workbench.db.models import Run as RunRow
from workbench.runs.errors import AmbiguousRunIdError, RunNotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["MIN_PREFIX", "run_id_in"]

MIN_PREFIX = 4
_SHOWN = 10  # candidates listed when a prefix is ambiguous
_HEX = frozenset("0123456789abcdef")


def run_id_in(session: Session, run_id: str | uuid.UUID) -> uuid.UUID:
    """The id of the one run ``run_id`` names in ``session``: a full id or a unique prefix.

    A full id is returned as it is (whether that run exists is the caller's question); a
    prefix must match exactly one run this session may see.
    """
    if isinstance(run_id, uuid.UUID):
        return run_id
    typed = run_id.strip()
    digits = typed.lower().replace("-", "")
    if not digits or not set(digits) <= _HEX or len(digits) > 32:
        raise RunNotFoundError(
            f"{typed!r} is not a run id (hex digits, as `workbench runs list` shows)."
        )
    if len(digits) == 32:
        return uuid.UUID(digits)
    if len(digits) < MIN_PREFIX:
        raise RunNotFoundError(
            f"The run id prefix {typed!r} is too short: give at least {MIN_PREFIX} characters."
        )
    text_id = func.replace(cast(RunRow.id, String), "-", "")
    query = (
        select(RunRow.id, RunRow.notebook, RunRow.queued_at)
        .where(text_id.like(f"{digits}%"))
        .order_by(RunRow.queued_at.desc())
        .limit(_SHOWN + 1)
    )
    found = session.execute(query).all()
    if not found:
        raise RunNotFoundError(
            f"No run has an id starting with {typed}; see `workbench runs list`."
        )
    if len(found) > 1:
        listed = "\n".join(
            f"  {row.id}  {row.notebook.rsplit('/', 1)[-1]}  {row.queued_at:%Y-%m-%d %H:%M:%S}"
            for row in found[:_SHOWN]
        )
        more = "\n  ..." if len(found) > _SHOWN else ""
        raise AmbiguousRunIdError(
            f"The run id prefix {typed} is ambiguous; give more of the id. "
            f"Candidates:\n{listed}{more}"
        )
    rid: uuid.UUID = found[0].id
    return rid

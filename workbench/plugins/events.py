"""Plain records handed to plugin hooks, so plugins never see ORM objects or internals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["RunEvent"]


@dataclass(frozen=True)
class RunEvent:
    """What a run-lifecycle hook learns about a run; parameters have secrets redacted."""

    run_id: uuid.UUID
    notebook: str
    status: str
    attempt: int = 0
    job_name: str | None = None
    triggered_by: str = "api"
    parameters: dict[str, Any] = field(default_factory=dict)
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error_name: str | None = None
    error_message: str | None = None
    output_uri: str | None = None

"""The source interface: a named reader that yields batches of rows for ``wb.ingest``.

A source is any object with ``name``, ``description`` and ``read(**options)``; subclassing
:class:`Source` adds typed option validation (a pydantic model per source, unknown options
refused) so an implementation only reads. ``read`` yields DataFrames or Arrow tables, a
:class:`Batch` when a source fills several tables, and :class:`Skipped` for an input it
could not use but that should not stop the rest (a corrupt PDF among good ones).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from workbench.sources.errors import SourceOptionError

__all__ = [
    "Batch",
    "Frame",
    "Item",
    "Options",
    "Skipped",
    "Source",
]

Frame: TypeAlias = pd.DataFrame | pa.Table


@dataclass(frozen=True)
class Batch:
    """Rows for a named table, for sources that fill several tables in one ingest."""

    data: Frame
    table: str


@dataclass(frozen=True)
class Skipped:
    """An input left out (with the reason) while the rest of the batch goes on."""

    item: str
    reason: str

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}"


Item: TypeAlias = Frame | Batch | Skipped


class Options(BaseModel):
    """Base of every source's options: unknown names are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=Options)


class Source(Generic[OptionsT]):
    """Base class of the built-in sources: validates options, then reads.

    Subclasses set ``name``, ``description`` and ``options_model`` and implement
    :meth:`iter_batches`; they may implement :meth:`estimate_rows` for progress bars.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    options_model: ClassVar[type[Options]]

    def validate(self, **options: Any) -> OptionsT:
        """The typed options, or a :class:`SourceOptionError` naming each bad one."""
        try:
            return self.options_model.model_validate(options)  # type: ignore[return-value]
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "options"
                message = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(f"{where}: {message}")
            allowed = ", ".join(self.options_model.model_fields)
            raise SourceOptionError(
                f"Invalid options for the {self.name!r} source: " + "; ".join(problems) + ". "
                f"Its options are: {allowed}."
            ) from None

    def read(self, **options: Any) -> Iterator[Item]:
        """Validate ``options`` and yield the batches."""
        return self.iter_batches(self.validate(**options))

    def total_rows(self, **options: Any) -> int | None:
        """How many rows :meth:`read` will yield, if known cheaply (for progress)."""
        return self.estimate_rows(self.validate(**options))

    def iter_batches(self, options: OptionsT) -> Iterator[Item]:  # pragma: no cover
        raise NotImplementedError

    def estimate_rows(self, options: OptionsT) -> int | None:
        return None

    def __repr__(self) -> str:
        return f"<source {self.name}>"


def row_count(frame: Frame) -> int:
    """Number of rows of a DataFrame or Arrow table."""
    return int(frame.num_rows) if isinstance(frame, pa.Table) else len(frame)

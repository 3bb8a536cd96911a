"""``wb.ingest``: read every batch from a source, then write each table with ONE data-API call.

All or nothing: nothing is written until the source has been read to the end, and each
table is written by a single ``write`` (one transaction), so a failure part-way leaves the
table as it was. A source that fills several tables (``flights``) writes them one after the
other; the error then says which were already written. Inputs a source skipped (a corrupt
PDF) are listed in the result (and logged); if every input was skipped nothing is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from workbench.core.errors import WorkbenchError
from workbench.sources.base import Batch, Frame, Skipped, row_count
from workbench.sources.errors import SourceError
from workbench.sources.registry import get_source
from workbench.sources.secrets import using_workbench

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["IngestResult", "ingest", "to_pandas"]

log = logging.getLogger(__name__)

#: ``progress(rows_read, total_or_None)`` after every batch.
ProgressCallback = Callable[[int, int | None], None]


@dataclass
class IngestResult:
    """What an ingest wrote: rows per table, skipped inputs and the time it took."""

    source: str
    tables: dict[str, int] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def ingest(
    source: str | Any,
    table: str | None = None,
    *,
    mode: str = "create",
    key: str | Sequence[str] | None = None,
    progress: bool | ProgressCallback = False,
    workbench: Workbench | None = None,
    team: str | None = None,
    shared: bool = False,
    **options: Any,
) -> IngestResult:
    """Read ``source`` (a name or a source object) with ``options`` and write it to ``table``.

    ``mode``, ``key``, ``team`` and ``shared`` are those of ``wb.write``. ``progress=True``
    shows a Rich progress bar; a callable is called with ``(rows_read, total)`` instead.
    """
    from workbench.app import resolve
    from workbench.db.identifiers import check_writable

    wb = resolve(workbench)
    src = get_source(source, wb.plugins) if isinstance(source, str) else source
    name = str(getattr(src, "name", source))
    if table is not None:
        check_writable(table)
    started = time.perf_counter()
    result = IngestResult(source=name)
    with using_workbench(wb):
        total = _total(src, options)  # also validates the options before anything shows
        with _progress_reporter(progress, name) as reporter:
            frames = _collect(src, name, options, table, result.skipped, reporter, total)
            for item in result.skipped:
                log.warning("%s source skipped %s", name, item)
            if not frames and result.skipped:
                reasons = "; ".join(str(s) for s in result.skipped[:10])
                raise SourceError(f"Nothing was ingested: every input was skipped ({reasons}).")
            _check_targets(wb, list(frames), mode)
            sizes = {target: sum(row_count(p) for p in parts) for target, parts in frames.items()}
            everything, written = sum(sizes.values()), 0
            for target, parts in frames.items():
                reporter.written(f"writing {target}", written, everything)
                frame = to_pandas(parts)
                result.tables[target] = _write(
                    wb, src, frame, target, mode, key, result, team=team, shared=shared
                )
                written += sizes[target]
            reporter.written("written", written, everything)
    result.seconds = time.perf_counter() - started
    log.debug("ingested %d rows from %s into %s", result.rows, name, ", ".join(result.tables))
    return result


def _check_targets(wb: Workbench, targets: list[str], mode: str) -> None:
    """Valid names, and for ``create`` none taken, before the first table is written."""
    from sqlalchemy import inspect

    from workbench.data.errors import DataError
    from workbench.db.identifiers import check_writable

    for target in targets:
        check_writable(target)
    if mode == "create" and len(targets) > 1:
        with wb.engine.connect() as conn:
            taken = [t for t in targets if inspect(conn).has_table(t)]
        if taken:
            raise DataError(
                f"Table(s) {', '.join(taken)} already exist; nothing was written. Write "
                "them with mode replace or append (`--mode` on the command line, `mode=` in "
                "Python), or choose the tables with the source's options."
            )


def _write(
    wb: Workbench,
    src: Any,
    frame: pd.DataFrame,
    target: str,
    mode: str,
    key: str | Sequence[str] | None,
    result: IngestResult,
    *,
    team: str | None = None,
    shared: bool = False,
) -> int:
    """One data-API write (one transaction), then the source's ``after_write`` if it has one."""
    try:
        rows = wb.write(frame, target, mode=mode, key=key, team=team, shared=shared)
    except WorkbenchError as exc:
        if result.tables:
            raise type(exc)(f"{exc} (already written: {', '.join(result.tables)})") from exc
        raise
    after_write = getattr(src, "after_write", None)
    if callable(after_write):
        after_write(wb, target)
    return rows


def _total(src: Any, options: dict[str, Any]) -> int | None:
    total_rows = getattr(src, "total_rows", None)
    if not callable(total_rows):
        return None
    total = total_rows(**options)
    return int(total) if total is not None else None


def _collect(
    src: Any,
    name: str,
    options: dict[str, Any],
    table: str | None,
    skipped: list[Skipped],
    reporter: Reporter,
    total: int | None,
) -> dict[str, list[Frame]]:
    """Every batch, grouped by target table, before anything is written."""
    named: dict[str, list[Frame]] = {}
    plain: list[Frame] = []
    rows = 0
    for item in _read(src, name, options):
        if isinstance(item, Skipped):
            skipped.append(item)
            continue
        frame = item.data if isinstance(item, Batch) else item
        if not isinstance(frame, pd.DataFrame | pa.Table):
            raise SourceError(
                f"The {name!r} source yielded a {type(item).__name__}; sources yield "
                "DataFrames, Arrow tables, Batch or Skipped."
            )
        (named.setdefault(item.table, []) if isinstance(item, Batch) else plain).append(frame)
        rows += row_count(frame)
        reporter.rows(rows, total)
    if plain and table is None:
        raise SourceError(f"Say which table to fill: ingest({name!r}, table='name', ...).")
    if table is not None and named:
        if plain or len(named) > 1:
            raise SourceError(
                f"The {name!r} source filled {len(named) + bool(plain)} tables "
                f"({', '.join(named)}); leave out table= to use those names, or choose one."
            )
        return {table: next(iter(named.values()))}
    return ({table: plain} if plain and table else {}) | named


def _read(src: Any, name: str, options: dict[str, Any]) -> Iterator[Any]:
    """The source's items; a failure that is not a WorkbenchError is named after the source."""
    try:
        yield from src.read(**options)
    except WorkbenchError:
        raise
    except Exception as exc:  # a plugin's source may raise anything
        raise SourceError(f"The {name!r} source failed: {type(exc).__name__}: {exc}") from exc


def to_pandas(parts: Iterable[Frame]) -> pd.DataFrame:
    """One DataFrame from DataFrames and Arrow tables, with nullable integer/string types."""
    frames = [
        part.to_pandas(types_mapper=_nullable_types) if isinstance(part, pa.Table) else part
        for part in parts
    ]
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    return pd.concat(_typed_like_the_others(frames), ignore_index=True)


def _typed_like_the_others(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Give a column that is empty in one batch the type it has where it holds values.

    A batch whose column is all NULL cannot tell its type (the sql source then says
    string); left alone, concatenating it with typed batches would make the column object.
    """
    types: dict[str, Any] = {}
    for frame in frames:
        for column in frame.columns:
            if column not in types and frame[column].notna().any():
                types[column] = frame[column].dtype
    aligned = []
    for frame in frames:
        casts = {
            column: dtype
            for column, dtype in types.items()
            if column in frame and frame[column].dtype != dtype and frame[column].isna().all()
        }
        aligned.append(frame.astype(casts) if casts else frame)
    return aligned


def _nullable_types(arrow_type: pa.DataType) -> Any:
    if pa.types.is_integer(arrow_type):
        return pd.api.types.pandas_dtype(str(arrow_type).capitalize().replace("Uint", "UInt"))
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None


class Reporter:
    """Progress of one ingest: rows read (of a total, if known) and the current stage."""

    def __init__(self, callback: ProgressCallback | None = None) -> None:
        self._callback = callback

    def rows(self, done: int, total: int | None) -> None:
        if self._callback is not None:
            self._callback(done, total)

    def written(self, stage: str, done: int, total: int) -> None:
        """Writing: ``done`` of the ``total`` rows read are in their tables (shown, not called
        back: the callback counts rows read)."""
        return


class _RichReporter(Reporter):
    def __init__(self, bar: Any, task: Any) -> None:
        super().__init__()
        self._bar, self._task = bar, task

    def rows(self, done: int, total: int | None) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def written(self, stage: str, done: int, total: int) -> None:
        self._bar.update(self._task, description=stage, completed=done, total=total)


@contextmanager
def _progress_reporter(progress: bool | ProgressCallback, name: str) -> Iterator[Reporter]:
    if callable(progress) or not progress:
        yield Reporter(progress if callable(progress) else None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    )
    console = Console(stderr=True)
    # In a pipe or a log there is no bar at all (the command prints its result).
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        yield _RichReporter(bar, bar.add_task(f"reading {name}", total=None))

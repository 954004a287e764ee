"""Load input files into the database in chunks, one transaction per chunk.

Reading and parsing run in the calling thread while a single writer thread stores the previous
chunk: both databases release the GIL while they execute SQL, so parsing the next chunk
overlaps with storing this one. At most two chunks wait for the writer, which bounds memory
whatever the size of the input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Final

import orjson

from eras.bulk.formats import (
    Reader,
    Rejected,
    panoptes_reader,
    read_eras_classifications,
    read_eras_comments,
    read_eras_groups,
    read_ndjson,
)
from eras.bulk.inputs import Format, InputError, InputFile, Kind, Source
from eras.bulk.progress import LoadProgress
from eras.ingest.events import Classification, Comment, GroupMembership, Ignored
from eras.ingest.service import IngestSummary
from eras.store.bulk import Chunk, store_chunk
from eras.store.database import Database
from eras.store.ingest import StoreOutcome

DEFAULT_CHUNK_SIZE: Final = 50_000
_PENDING_CHUNKS: Final = 2
_PROGRESS_EVERY: Final = 4096  # rows between progress updates

MISSING_PROJECT_ID: Final = (
    "panoptes-csv exports have no project column: give the project they belong to "
    "with --project-id N"
)


def default_rejects_path() -> Path:
    """In the working directory, named after the time, so loads never overwrite each other's."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"eras-ingest-rejects-{stamp}.ndjson")


class LoadError(Exception):
    """Loading cannot go on: nothing more is read."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    input_format: Format | None = None
    project_id: int | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    rejects_path: Path = field(default_factory=default_rejects_path)


@dataclass(slots=True)
class SourceReport:
    name: str
    kind: Kind | None
    summary: IngestSummary = field(default_factory=IngestSummary)


@dataclass(slots=True)
class LoadReport:
    sources: list[SourceReport] = field(default_factory=list)
    total: IngestSummary = field(default_factory=IngestSummary)
    rejects_path: Path | None = None  # set once a row was rejected


# --- before reading any row ----------------------------------------------------------------


def check_options(options: LoadOptions) -> None:
    """Refuse what can be refused without opening a file."""
    if options.input_format is Format.PANOPTES_CSV and options.project_id is None:
        raise LoadError(MISSING_PROJECT_ID)
    if options.chunk_size < 1:
        raise LoadError("--chunk-size must be at least 1")


def open_inputs(paths: Sequence[Path], options: LoadOptions) -> list[InputFile]:
    """Check every file's format from its first line before loading any of them."""
    check_options(options)
    try:
        files = [InputFile(path) for path in paths]
        for file in files:
            with file.sources() as sources:
                for source in sources:
                    _check_kind(source, options)
    except InputError as error:
        raise LoadError(str(error)) from None
    return files


def _check_kind(source: Source, options: LoadOptions) -> None:
    if source.kind is None:
        if source.first_line.strip():
            raise LoadError(
                f"{source.name}: not ndjson, a Panoptes export or a table of the original "
                f"service (first line: {source.first_line.strip()[:80]!r})"
            )
        return  # an empty file: nothing to load
    wanted = options.input_format
    if wanted is not None and source.kind.input_format is not wanted:
        raise LoadError(f"{source.name} holds {source.kind}, not {wanted}")
    if source.kind is Kind.PANOPTES_CSV and options.project_id is None:
        raise LoadError(f"{source.name}: {MISSING_PROJECT_ID}")


def _reader(kind: Kind, options: LoadOptions) -> Reader:
    if kind is Kind.NDJSON:
        return read_ndjson
    if kind is Kind.PANOPTES_CSV:
        assert options.project_id is not None
        return panoptes_reader(options.project_id)
    if kind is Kind.CLASSIFICATION_EVENTS:
        return read_eras_classifications
    if kind is Kind.CLASSIFICATION_USER_GROUPS:
        return read_eras_groups
    return read_eras_comments


# --- rejects -------------------------------------------------------------------------------


class RejectsFile:
    """Rejected rows as JSON lines; the file is created with the first one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def write(self, source: str, rejected: Rejected) -> None:
        if self._file is None:
            self._file = self.path.open("wb")
        entry: dict[str, object] = {"file": source, "line": rejected.line}
        if rejected.event is not None:
            entry["event"] = rejected.event
        entry["reason"] = rejected.reason
        entry["row"] = rejected.row
        self._file.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))

    @property
    def used(self) -> bool:
        return self._file is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# --- the writer thread ---------------------------------------------------------------------


class ChunkWriter:
    """Stores chunks in order on one background thread, each in its own transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eras-ingest-writer")
        self._pending: deque[tuple[Future[StoreOutcome], IngestSummary]] = deque()

    def submit(self, chunk: Chunk, summary: IngestSummary) -> None:
        """Queue ``chunk``; its outcome is added to ``summary`` once stored."""
        while len(self._pending) >= _PENDING_CHUNKS:
            self._collect_oldest()
        work = partial(store_chunk, dialect=self._database.dialect, chunk=chunk)
        future = self._pool.submit(self._database.run_write, work)
        self._pending.append((future, summary))

    def drain(self) -> None:
        while self._pending:
            self._collect_oldest()

    def _collect_oldest(self) -> None:
        future, summary = self._pending.popleft()
        outcome = future.result()  # re-raises the writer's error here
        summary.inserted += outcome.inserted
        summary.duplicates += outcome.duplicates
        summary.updated += outcome.updated

    def close(self) -> None:
        for future, _summary in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)


@contextmanager
def _writer(database: Database) -> Iterator[ChunkWriter]:
    writer = ChunkWriter(database)
    try:
        yield writer
    finally:
        writer.close()


# --- loading -------------------------------------------------------------------------------


def load(
    database: Database,
    files: Sequence[InputFile],
    options: LoadOptions,
    progress: LoadProgress,
) -> LoadReport:
    """Load every source of every file; a bad row is set aside, never fatal."""
    report = LoadReport()
    rejects = RejectsFile(options.rejects_path)
    try:
        with _writer(database) as writer:
            for file in files:
                progress.start_file(file.path.name, file.size)
                rows = 0
                with file.sources() as sources:
                    for source in sources:
                        source_report, source_rows = _load_source(
                            source, file, options, writer, rejects, progress, rows
                        )
                        rows += source_rows
                        report.sources.append(source_report)
                        report.total.add(source_report.summary)
                progress.finish_file(rows=rows)
    except InputError as error:
        raise LoadError(str(error)) from None
    finally:
        rejects.close()
    if rejects.used:
        report.rejects_path = rejects.path
    return report


def _load_source(
    source: Source,
    file: InputFile,
    options: LoadOptions,
    writer: ChunkWriter,
    rejects: RejectsFile,
    progress: LoadProgress,
    rows_before: int,
) -> tuple[SourceReport, int]:
    report = SourceReport(source.name, source.kind)
    if source.kind is None:
        return report, 0
    summary = report.summary
    # The original's classification_events rows leave group membership to its own table.
    replace_groups = source.kind is not Kind.CLASSIFICATION_EVENTS
    chunk = Chunk([], [], [], replace_groups=replace_groups)
    rows = 0
    for item in _reader(source.kind, options)(source.lines()):
        rows += 1
        if isinstance(item, Classification):
            chunk.classifications.append(item)
        elif isinstance(item, Comment):
            chunk.comments.append(item)
        elif isinstance(item, GroupMembership):
            chunk.group_rows.append(item)
        elif isinstance(item, Ignored):
            summary.ignored += 1
        else:
            summary.rejected += 1
            rejects.write(source.name, item)
        if len(chunk) >= options.chunk_size:
            writer.submit(chunk, summary)
            chunk = Chunk([], [], [], replace_groups=replace_groups)
        if rows % _PROGRESS_EVERY == 0:
            progress.update(position=file.position(), rows=rows_before + rows)
    if len(chunk):
        writer.submit(chunk, summary)
    # Every chunk of this source is stored before its summary is reported.
    writer.drain()
    return report, rows

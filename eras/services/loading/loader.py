"""Load input files into the database in batches, one transaction per batch.

Reading and parsing run in the calling thread while a single writer thread stores the previous
batch through the one write path (:func:`eras.store.write.write_batch`): both databases release
the GIL while they execute SQL, so parsing the next batch overlaps with storing this one. At
most two batches wait for the writer, which bounds memory whatever the size of the input.

ndjson is parsed in blocks of lines by a pool of parser processes when more than one CPU is
available: parsing costs more than storing, and one interpreter runs Python on one core at a
time. The calling thread hands out blocks in order, takes the parsed blocks back in the same
order, writes the rejects and cuts the records into batches exactly where a single process
would; the one writer thread stores batches in input order. A bounded number of blocks is in
flight, so memory stays bounded as well.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, Final, Protocol

import msgspec
import orjson

from eras.domain.records import Classification, Comment, GroupMembership, Ignored, Rejection
from eras.domain.summary import IngestSummary
from eras.services.loading.formats import (
    BLOCKS,
    ParsedBlock,
    Reader,
    panoptes_reader,
    parse_ndjson_block,
    parse_ndjson_range,
    read_original_classifications,
    read_original_comments,
    read_original_memberships,
)
from eras.services.loading.inputs import Format, InputError, InputFile, Kind, Source
from eras.store.database import Database
from eras.store.schema import RAW_TABLES, ROLLUP_TABLES
from eras.store.write import Batch, prepare_batch, write_batch

DEFAULT_BATCH_SIZE: Final = 50_000
_PENDING_BATCHES: Final = 2
_PROGRESS_EVERY: Final = 4096  # rows between progress updates
# Bytes of ndjson per block handed to a parser: a few hundred events, so handing blocks
# out and back costs little next to parsing them.
BLOCK_SIZE: Final = 1 << 20
_BLOCKS_PER_PARSER: Final = 2  # blocks in flight per parser process
_MAX_JOBS: Final = 8  # more parsers than this outrun the one writer
# A load that leaves at least this share of a raw table new refreshes the planner's statistics.
_ANALYZE_SHARE: Final = 0.2
_ANALYZE_FROM_ROWS: Final = 10_000

MISSING_PROJECT_ID: Final = (
    "panoptes-csv exports have no project column: give the project they belong to "
    "with --project-id N"
)


def default_jobs() -> int:
    """Parser processes: one per CPU this process may run on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_JOBS))


def default_rejects_path() -> Path:
    """In the working directory, named after the time, so loads never overwrite each other's."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"eras-ingest-rejects-{stamp}.ndjson")


class LoadError(Exception):
    """Loading cannot go on: nothing more is read."""


class Progress(Protocol):
    """What a load reports as it goes (a progress bar, or nothing)."""

    def start_file(self, name: str, size: int) -> None: ...

    def update(self, *, position: int, rows: int) -> None: ...

    def finish_file(self, *, rows: int) -> None: ...


class NoProgress:
    def start_file(self, name: str, size: int) -> None:
        pass

    def update(self, *, position: int, rows: int) -> None:
        pass

    def finish_file(self, *, rows: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class LoadOptions:
    input_format: Format | None = None
    project_id: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    rejects_path: Path = field(default_factory=default_rejects_path)
    # Processes parsing ndjson; 1 parses in the loading process itself.
    jobs: int = field(default_factory=default_jobs)
    block_size: int = BLOCK_SIZE


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
    analyzed: list[str] = field(default_factory=list)  # tables whose statistics were refreshed


# --- before reading any row ----------------------------------------------------------------


def check_options(options: LoadOptions) -> None:
    """Refuse what can be refused without opening a file."""
    if options.input_format is Format.PANOPTES_CSV and options.project_id is None:
        raise LoadError(MISSING_PROJECT_ID)
    if options.batch_size < 1:
        raise LoadError("--batch-size must be at least 1")
    if options.jobs < 1:
        raise LoadError("--jobs must be at least 1")


def open_inputs(paths: Sequence[Path], options: LoadOptions) -> list[InputFile]:
    """Check every file's format from its first line before loading any of them."""
    check_options(options)
    try:
        files = [InputFile(path) for path in paths]
        for file in files:
            with file.sources() as sources:
                for source in sources:
                    _check_kind(source, options)
                    if source.kind is not None:
                        file.kinds.add(source.kind)
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


def _csv_reader(kind: Kind, options: LoadOptions) -> Reader:
    if kind is Kind.PANOPTES_CSV:
        assert options.project_id is not None
        return panoptes_reader(options.project_id)
    if kind is Kind.CLASSIFICATION_EVENTS:
        return read_original_classifications
    if kind is Kind.CLASSIFICATION_USER_GROUPS:
        return read_original_memberships
    return read_original_comments


# --- rejects -------------------------------------------------------------------------------


class RejectsFile:
    """Rejected rows as JSON lines; the file is created with the first one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def write(self, source: str, rejection: Rejection) -> None:
        if self._file is None:
            self._file = self.path.open("wb")
        entry: dict[str, object] = {"file": source, "line": rejection.line}
        if rejection.position is not None:
            entry["event"] = rejection.position
        entry["reason"] = rejection.reason
        entry["row"] = rejection.event
        self._file.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE, default=str))

    @property
    def used(self) -> bool:
        return self._file is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# --- the writer thread ---------------------------------------------------------------------


class BatchWriter:
    """Stores batches in order on one background thread, each in its own transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eras-ingest-writer")
        self._pending: deque[tuple[Future[IngestSummary], IngestSummary]] = deque()

    def submit(self, batch: Batch, summary: IngestSummary) -> None:
        """Queue ``batch``; what became of it is added to ``summary`` once stored.

        The batch is prepared here, in the loading thread, while the writer stores the one
        before: the database then waits less between batches."""
        prepared = prepare_batch(self._database.backend, batch)
        while len(self._pending) >= _PENDING_BATCHES:
            self._collect_oldest()
        work = partial(write_batch, backend=self._database.backend, batch=prepared)
        future = self._pool.submit(self._database.run_write, work)
        self._pending.append((future, summary))

    def drain(self) -> None:
        while self._pending:
            self._collect_oldest()

    def _collect_oldest(self) -> None:
        future, summary = self._pending.popleft()
        summary += future.result()  # re-raises the writer's error here

    def close(self) -> None:
        for future, _summary in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)


@contextmanager
def _writer(database: Database) -> Iterator[BatchWriter]:
    writer = BatchWriter(database)
    try:
        yield writer
    finally:
        writer.close()


# --- parser processes ----------------------------------------------------------------------


def _ignore_interrupts() -> None:
    # Ctrl-C reaches every process of the terminal's process group: the loading process alone
    # handles it, and shuts its parsers down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def parsers(files: Sequence[InputFile], options: LoadOptions) -> Iterator[Executor | None]:
    """Parser processes for the ndjson among ``files``, or ``None`` to parse in this process.

    Enter this before starting any thread (the progress bar's, the writer): the processes are
    forked at once, and a fork only copies the forking thread. They stop when the block exits,
    on an error or Ctrl-C as well: blocks not yet parsed are cancelled.
    """
    if options.jobs < 2 or not any(Kind.NDJSON in file.kinds for file in files):
        yield None
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = ProcessPoolExecutor(options.jobs, mp_context=context, initializer=_ignore_interrupts)
    try:
        # With fork, the first task starts every process; nothing else runs in this one yet.
        pool.submit(os.getpid)
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _parsed_blocks(
    source: Source, file: InputFile, options: LoadOptions, pool: Executor | None
) -> Iterator[tuple[ParsedBlock, int]]:
    """The source's ndjson parsed block by block, in order, each with how far into the file
    reading has got."""
    if pool is None:
        for data in source.blocks(options.block_size):
            yield BLOCKS.decode(parse_ndjson_block(data)), file.position()
        return
    pending: deque[tuple[Future[bytes], int | None]] = deque()
    in_flight = _BLOCKS_PER_PARSER * options.jobs
    work: Iterator[tuple[Callable[..., bytes], tuple[Any, ...], int | None]]
    if source.path is not None:
        # An uncompressed file: each parser reads its own range of it.
        path = str(source.path)
        work = (
            (parse_ndjson_range, (path, start, end), end)
            for start, end in source.ranges(options.block_size)
        )
    else:
        work = ((parse_ndjson_block, (data,), None) for data in source.blocks(options.block_size))
    try:
        for function, arguments, position in work:
            if len(pending) >= in_flight:
                yield _result(pending.popleft(), file)
            pending.append((pool.submit(function, *arguments), position))
        while pending:
            yield _result(pending.popleft(), file)
    finally:
        for future, _position in pending:
            future.cancel()


def _result(
    submitted: tuple[Future[bytes], int | None], file: InputFile
) -> tuple[ParsedBlock, int]:
    future, position = submitted
    try:
        block = BLOCKS.decode(future.result())
    except BrokenProcessPool:
        raise LoadError("a parser process stopped unexpectedly") from None
    return block, file.position() if position is None else position


# --- loading -------------------------------------------------------------------------------


def load(
    database: Database,
    files: Sequence[InputFile],
    options: LoadOptions,
    progress: Progress | None = None,
    *,
    pool: Executor | None = None,
) -> LoadReport:
    """Load every source of every file; a bad row is set aside, never fatal.

    ``pool`` parses ndjson (see :func:`parsers`); without one it is parsed in this process.
    When the load made up a large share of the raw tables, their statistics and the rollups'
    are refreshed at the end, so the planner does not go on with those of a far smaller
    database.
    """
    progress = progress or NoProgress()
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
                            source, file, options, writer, rejects, progress, rows, pool
                        )
                        rows += source_rows
                        report.sources.append(source_report)
                        report.total += source_report.summary
                progress.finish_file(rows=rows)
    except InputError as error:
        raise LoadError(str(error)) from None
    finally:
        rejects.close()
    if rejects.used:
        report.rejects_path = rejects.path
    report.analyzed = _refresh_statistics(database, report.total.inserted)
    return report


def _refresh_statistics(database: Database, inserted: int) -> list[str]:
    if inserted < _ANALYZE_FROM_ROWS:
        return []
    with database.read() as connection:
        stored = database.backend.estimated_rows(connection, RAW_TABLES)
    if inserted < _ANALYZE_SHARE * stored:
        return []
    tables = [*RAW_TABLES, *ROLLUP_TABLES.values()]
    with database.write() as connection:
        database.backend.analyze(connection, tables)
    return [table.name for table in tables]


class _Batcher:
    """Cuts records into batches of ``size`` records in input order and hands each to the
    writer."""

    def __init__(self, writer: BatchWriter, summary: IngestSummary, size: int) -> None:
        self._writer = writer
        self._summary = summary
        self._size = size
        self.batch = Batch()

    def full(self) -> None:
        """Hand the batch over if it holds ``size`` records."""
        if len(self.batch) >= self._size:
            self._writer.submit(self.batch, self._summary)
            self.batch = Batch()

    def add_block(self, block: ParsedBlock) -> None:
        if not block.comments:
            self._add_classifications(block.classifications)
            return
        classifications, comments = iter(block.classifications), iter(block.comments)
        for kind in block.kinds:
            if kind:
                self.batch.comments.append(next(comments))
            else:
                self.batch.classifications.append(next(classifications))
            self.full()

    def _add_classifications(self, records: Sequence[Classification]) -> None:
        start = 0
        while start < len(records):
            room = self._size - len(self.batch)
            self.batch.classifications.extend(records[start : start + room])
            start += room
            self.full()

    def finish(self) -> None:
        if len(self.batch):
            self._writer.submit(self.batch, self._summary)
        self.batch = Batch()


def _load_source(
    source: Source,
    file: InputFile,
    options: LoadOptions,
    writer: BatchWriter,
    rejects: RejectsFile,
    progress: Progress,
    rows_before: int,
    pool: Executor | None,
) -> tuple[SourceReport, int]:
    report = SourceReport(source.name, source.kind)
    if source.kind is None:
        return report, 0
    summary = report.summary
    batcher = _Batcher(writer, summary, options.batch_size)
    rows = 0
    if source.kind is Kind.NDJSON:
        lines = 0  # before the block
        for block, position in _parsed_blocks(source, file, options, pool):
            rows += block.items
            summary.ignored += block.ignored
            summary.rejected += len(block.rejected)
            for rejection in block.rejected:
                line = lines + (rejection.line or 0)
                rejects.write(source.name, msgspec.structs.replace(rejection, line=line))
            lines += block.lines
            batcher.add_block(block)
            progress.update(position=position, rows=rows_before + rows)
    else:
        for item in _csv_reader(source.kind, options)(source.lines()):
            rows += 1
            batch = batcher.batch
            if isinstance(item, Classification):
                batch.classifications.append(item)
            elif isinstance(item, Comment):
                batch.comments.append(item)
            elif isinstance(item, GroupMembership):
                batch.memberships.append(item)
            elif isinstance(item, Ignored):
                summary.ignored += 1
            else:
                summary.rejected += 1
                rejects.write(source.name, item)
            batcher.full()
            if rows % _PROGRESS_EVERY == 0:
                progress.update(position=file.position(), rows=rows_before + rows)
    batcher.finish()
    # Every batch of this source is stored before its summary is reported.
    writer.drain()
    return report, rows

"""Load input files into the database in chunks, one transaction per chunk.

Reading and parsing run in the calling thread while a single writer thread stores the previous
chunk: both databases release the GIL while they execute SQL, so parsing the next chunk
overlaps with storing this one. At most two chunks wait for the writer, which bounds memory
whatever the size of the input.

ndjson is parsed in blocks of lines by a pool of parser processes when more than one CPU is
available: parsing costs far more than storing, and one interpreter runs Python on one core at
a time. The calling thread hands out blocks in order, takes the parsed blocks back in the same
order, writes the rejects and cuts the records into chunks exactly where a single process
would; the one writer thread keeps storing chunks in input order. A bounded number of blocks is
in flight, so memory stays bounded as well.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Final

import orjson

from eras.bulk.formats import (
    ParsedBlock,
    Reader,
    Rejected,
    panoptes_reader,
    parse_ndjson_block,
    read_eras_classifications,
    read_eras_comments,
    read_eras_groups,
    read_ndjson,
)
from eras.bulk.inputs import Format, InputError, InputFile, Kind, Source
from eras.bulk.progress import LoadProgress
from eras.ingest.events import Classification, Comment, GroupMembership, Ignored
from eras.ingest.service import IngestSummary
from eras.store.bulk import (
    Chunk,
    ClassificationRow,
    classification_row,
    comment_row,
    store_chunk,
)
from eras.store.database import Database
from eras.store.ingest import StoreOutcome

DEFAULT_CHUNK_SIZE: Final = 50_000
_PENDING_CHUNKS: Final = 2
_PROGRESS_EVERY: Final = 4096  # rows between progress updates
# Characters of ndjson per block handed to a parser: a few thousand events, so handing blocks
# out and back costs little next to parsing them.
BLOCK_SIZE: Final = 1 << 20
_BLOCKS_PER_PARSER: Final = 2  # blocks in flight per parser process
_MAX_JOBS: Final = 8  # more parsers than this outrun the one writer

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


@dataclass(frozen=True, slots=True)
class LoadOptions:
    input_format: Format | None = None
    project_id: int | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
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


# --- before reading any row ----------------------------------------------------------------


def check_options(options: LoadOptions) -> None:
    """Refuse what can be refused without opening a file."""
    if options.input_format is Format.PANOPTES_CSV and options.project_id is None:
        raise LoadError(MISSING_PROJECT_ID)
    if options.chunk_size < 1:
        raise LoadError("--chunk-size must be at least 1")
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
    source: Source, options: LoadOptions, pool: Executor | None
) -> Iterator[ParsedBlock]:
    """The source's ndjson parsed block by block, in order."""
    blocks = source.blocks(options.block_size)
    if pool is None:
        for first_line, text in blocks:
            yield parse_ndjson_block(text, first_line)
        return
    pending: deque[Future[ParsedBlock]] = deque()
    in_flight = _BLOCKS_PER_PARSER * options.jobs
    try:
        for first_line, text in blocks:
            if len(pending) >= in_flight:
                yield _result(pending.popleft())
            pending.append(pool.submit(parse_ndjson_block, text, first_line))
        while pending:
            yield _result(pending.popleft())
    finally:
        for future in pending:
            future.cancel()


def _result(future: Future[ParsedBlock]) -> ParsedBlock:
    try:
        return future.result()
    except BrokenProcessPool:
        raise LoadError("a parser process stopped unexpectedly") from None


# --- loading -------------------------------------------------------------------------------


def load(
    database: Database,
    files: Sequence[InputFile],
    options: LoadOptions,
    progress: LoadProgress,
    *,
    pool: Executor | None = None,
) -> LoadReport:
    """Load every source of every file; a bad row is set aside, never fatal.

    ``pool`` parses ndjson (see :func:`parsers`); without one it is parsed in this process.
    """
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
                        report.total.add(source_report.summary)
                progress.finish_file(rows=rows)
    except InputError as error:
        raise LoadError(str(error)) from None
    finally:
        rejects.close()
    if rejects.used:
        report.rejects_path = rejects.path
    return report


class _Chunks:
    """Cuts records into chunks of ``size`` records in input order and hands each to the
    writer."""

    def __init__(
        self, writer: ChunkWriter, summary: IngestSummary, size: int, *, replace_groups: bool
    ) -> None:
        self._writer = writer
        self._summary = summary
        self._size = size
        self._replace_groups = replace_groups
        self.chunk = self._new()

    def _new(self) -> Chunk:
        return Chunk([], [], [], replace_groups=self._replace_groups)

    def full(self) -> None:
        """Hand the chunk over if it holds ``size`` records."""
        if len(self.chunk) >= self._size:
            self._writer.submit(self.chunk, self._summary)
            self.chunk = self._new()

    def add_block(self, block: ParsedBlock) -> None:
        if not block.comments:
            self._add_classifications(block.classifications)
            return
        classifications, comments = iter(block.classifications), iter(block.comments)
        for kind in block.kinds:
            if kind:
                self.chunk.comments.append(next(comments))
            else:
                self.chunk.classifications.append(next(classifications))
            self.full()

    def _add_classifications(self, rows: Sequence[ClassificationRow]) -> None:
        start = 0
        while start < len(rows):
            room = self._size - len(self.chunk)
            self.chunk.classifications.extend(rows[start : start + room])
            start += room
            self.full()

    def finish(self) -> None:
        if len(self.chunk):
            self._writer.submit(self.chunk, self._summary)
        self.chunk = self._new()


def _load_source(
    source: Source,
    file: InputFile,
    options: LoadOptions,
    writer: ChunkWriter,
    rejects: RejectsFile,
    progress: LoadProgress,
    rows_before: int,
    pool: Executor | None,
) -> tuple[SourceReport, int]:
    report = SourceReport(source.name, source.kind)
    if source.kind is None:
        return report, 0
    summary = report.summary
    # The original's classification_events rows leave group membership to its own table.
    replace_groups = source.kind is not Kind.CLASSIFICATION_EVENTS
    chunks = _Chunks(writer, summary, options.chunk_size, replace_groups=replace_groups)
    rows = 0
    if source.kind is Kind.NDJSON:
        for block in _parsed_blocks(source, options, pool):
            rows += block.items
            summary.ignored += block.ignored
            summary.rejected += len(block.rejected)
            for rejected in block.rejected:
                rejects.write(source.name, rejected)
            chunks.add_block(block)
            progress.update(position=file.position(), rows=rows_before + rows)
    else:
        for item in _reader(source.kind, options)(source.lines()):
            rows += 1
            chunk = chunks.chunk
            if isinstance(item, Classification):
                chunk.classifications.append(classification_row(item))
            elif isinstance(item, Comment):
                chunk.comments.append(comment_row(item))
            elif isinstance(item, GroupMembership):
                chunk.group_rows.append(item)
            elif isinstance(item, Ignored):
                summary.ignored += 1
            else:
                summary.rejected += 1
                rejects.write(source.name, item)
            chunks.full()
            if rows % _PROGRESS_EVERY == 0:
                progress.update(position=file.position(), rows=rows_before + rows)
    chunks.finish()
    # Every chunk of this source is stored before its summary is reported.
    writer.drain()
    return report, rows

"""SQLite: one file, one writer at a time, readers never blocked (WAL)."""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from functools import cache
from typing import Any, Final
from urllib.request import pathname2url

import anyio.to_thread
from sqlalchemy import (
    JSON,
    Connection,
    Date,
    DateTime,
    Delete,
    Engine,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    cast,
    create_engine,
    delete,
    event,
    exists,
    func,
    literal_column,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.elements import ColumnElement

from eras.domain.query import Period
from eras.errors import DatabaseUnavailable
from eras.store import staging
from eras.store.backend import Backend, driver_url
from eras.store.reads import Read, Reader, Rows
from eras.store.staging import State

log = logging.getLogger(__name__)

_WRITE_OPTION: Final = "eras_write"
# Named parameters, :name, as the sqlite3 module binds them from a dict: for the reads, and
# for the write statements run as SQL text (the engine's own dialect binds by position).
_NAMED_DIALECT: Final = sqlite.pysqlite.dialect(paramstyle="named")


# How much CPU a plan may use on the event loop before it is moved to a worker thread: the
# longest any other request of the worker waits for it. CPU time, not the clock: a short read
# whose thread the system preempted has not outrun anything, and must not be remembered as slow.
_INLINE_SECONDS: Final = 0.001
# Plans remembered as too long for the event loop, the least recently asked for forgotten first.
_SLOW_PLANS: Final = 1024
# SQLite calls the progress handler every this many virtual machine instructions (a few
# microseconds of work), so the deadline above is kept to within that.
_PROGRESS_STEPS: Final = 1000


class SQLiteReader(Reader):
    """Reads on the engine's connections; one snapshot (a deferred read transaction, WAL) for
    the reads of a plan.

    SQLite runs in the calling thread, so a read on the event loop stalls every other request
    of the worker while it runs; but handing a read to a worker thread and back costs about
    100 µs of CPU, several times what a volunteer's page costs to read. So a plan first runs
    on the event loop, on a connection kept for that, with a deadline of ``_INLINE_SECONDS``
    enforced by SQLite's progress handler: a plan that would take longer is interrupted and
    run again from the start in a worker thread, on a connection of its own. Reads change
    nothing, so running one again is safe, and the other requests wait at most the deadline.
    A plan that outran it (the same statements with the same values: a large group's page,
    which its members keep asking for) is remembered, and goes straight to a worker thread
    the next time, so only its first run pays the deadline. The event loop's connection never
    waits for a lock either (``busy_timeout`` 0): a read that would wait goes to a worker
    thread, where it may.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._inline: Any = None  # the pooled connection the event loop reads on
        self._inline_thread: int | None = None
        self._deadline = math.inf
        self._slow: OrderedDict[Hashable, None] = OrderedDict()  # the latest last
        self.moved_to_thread = 0  # plans that outran the deadline or met a lock
        self.sent_to_thread = 0  # plans run in a worker thread, moved or sent straight there

    async def fetch(self, reads: Sequence[Read]) -> list[Rows]:
        if not reads:
            return []
        plan = tuple((read.shape, tuple(read.values.items())) for read in reads)
        if plan in self._slow:
            self._slow.move_to_end(plan)
        elif self._inline_thread in (None, threading.get_ident()):
            try:
                connection = self._inline_connection()
                self._deadline = time.thread_time() + _INLINE_SECONDS
                try:
                    return _fetch_all(connection, reads)
                finally:
                    self._deadline = math.inf
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode == sqlite3.SQLITE_INTERRUPT:
                    self._remember_slow(plan)
                elif error.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    self._drop_inline()  # the worker thread's attempt reports the error
            except OperationalError:
                pass  # could not open a connection: neither will the worker thread
            self.moved_to_thread += 1
        self.sent_to_thread += 1
        return await anyio.to_thread.run_sync(self._fetch, reads)

    def _remember_slow(self, plan: Hashable) -> None:
        self._slow[plan] = None
        if len(self._slow) > _SLOW_PLANS:
            self._slow.popitem(last=False)

    def _inline_connection(self) -> sqlite3.Connection:
        if self._inline is None:
            pooled = self._engine.raw_connection()
            connection: sqlite3.Connection = pooled.driver_connection  # type: ignore[assignment]
            connection.execute("PRAGMA busy_timeout=0")
            connection.set_progress_handler(self._past_deadline, _PROGRESS_STEPS)
            self._inline = pooled
            self._inline_thread = threading.get_ident()
        inline: sqlite3.Connection = self._inline.driver_connection
        return inline

    def _past_deadline(self) -> bool:
        return time.thread_time() > self._deadline

    def _drop_inline(self) -> None:
        pooled, self._inline = self._inline, None
        if pooled is not None:
            pooled.invalidate()

    def _fetch(self, reads: Sequence[Read]) -> list[Rows]:
        try:
            pooled = self._engine.raw_connection()
            try:
                connection: sqlite3.Connection = pooled.driver_connection  # type: ignore[assignment]
                return _fetch_all(connection, reads)
            finally:
                pooled.close()
        except (sqlite3.OperationalError, OperationalError) as error:
            log.error("database unavailable: %s", type(error).__name__)
            raise DatabaseUnavailable from None

    async def aclose(self) -> None:
        # Invalidated rather than returned: the pool must not hand out a connection that
        # carries the event loop's deadline and no busy timeout.
        self._drop_inline()


def _fetch_all(connection: sqlite3.Connection, reads: Sequence[Read]) -> list[Rows]:
    if len(reads) == 1:
        return [_rows(connection, reads[0])]
    connection.execute("BEGIN")
    try:
        return [_rows(connection, read) for read in reads]
    finally:
        if connection.in_transaction:  # an interrupted SELECT leaves it open too
            connection.execute("COMMIT")


def _rows(connection: sqlite3.Connection, read: Read) -> Rows:
    return read.shape.rows(connection.execute(read.shape.sql, read.bound()).fetchall())


def _timestamp(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format: always six digits of microseconds, no zone.
    # Staged keys must be that exact text to compare equal to stored ones.
    return None if value is None else value.isoformat(" ", "microseconds")


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _json(value: Any) -> str | None:
    # What SQLAlchemy's JSON type stores with its default serializer, to the character.
    return None if value is None else json.dumps(value)


def _converter(column_type: Any) -> Callable[[Any], Any] | None:
    """How a staged value is written for a column, as SQLAlchemy would store it."""
    if isinstance(column_type, JSON):
        return _json
    if isinstance(column_type, DateTime):
        return _timestamp
    if isinstance(column_type, Date):
        return _day
    return None  # numbers, text and booleans go as they are


# The page cache of each connection of a bulk load (eras ingest), in KiB.
_BULK_CACHE_KIB: Final = 256 * 1024
# The log size, in pages, at which a server's writer checkpoints inside its commit after all:
# only when the background checkpoints (Checkpointer) cannot keep up, or cannot run.
_BACKSTOP_PAGES: Final = 65_536
# The log size, in pages, at which the background checkpoint makes the next writer begin it
# again (Checkpointer), and how long it waits for readers to finish with it.
_RESTART_PAGES: Final = 32_768
_RESTART_WAIT_MS: Final = 1_000
# What a writer's connection truncates the log file to when the log begins again.
_LOG_LIMIT_BYTES: Final = 64 * 1024 * 1024


def database_file(url: str) -> str | None:
    """The database's file; None for a database in memory, which only one process can open
    (or a URI filename, which eras does not write)."""
    database = make_url(driver_url(url)).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


class WritersQueue:
    """One writer at a time, across every thread and process that opens the database, handed
    on the moment the last one finishes.

    SQLite's own lock is not a queue: a writer that finds the database locked sleeps in its
    busy handler for 1, 2, 5, 10, ... up to 100 ms between tries, so the lock can stand free
    while the next writer sleeps, and who comes next is left to chance. Threads of
    this process queue on a mutex, processes on an ``flock`` of a file beside the database,
    which the kernel grants to the next waiter as soon as it is released (and releases when a
    process dies). It only orders the writers that take it: the write transaction still takes
    SQLite's lock (``BEGIN IMMEDIATE``, with ``busy_timeout``), so a writer that does not queue
    here, an older eras or the ``sqlite3`` shell, still excludes and is excluded as before.
    The lock is on a file of its own: closing any descriptor of the database file would drop
    the POSIX locks SQLite holds on it.
    """

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._threads = threading.Lock()
        self._descriptor: int | None = None
        self._opened_by = 0  # the process that opened it: a forked child shares its lock

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if self._path is None:
                yield
                return
            if self._descriptor is None or self._opened_by != os.getpid():
                # A descriptor inherited across fork refers to the parent's open file, and so
                # to the parent's lock: the child opens its own.
                try:
                    self._descriptor = os.open(
                        self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666
                    )
                except OSError as error:
                    # A directory that is missing or not writable: the database itself is out
                    # of reach or read-only, which the transaction reports in its own words
                    # (503 for a database that cannot be opened); until then writers wait in
                    # SQLite's busy handler, as without the queue.
                    log.debug("writers' queue unavailable: %s", error)
                    yield
                    return
                self._opened_by = os.getpid()
            fcntl.flock(self._descriptor, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._descriptor, fcntl.LOCK_UN)


class Checkpointer:
    """Copies committed pages from the write-ahead log into the database file in a thread of
    its own, so that no writer waits for it.

    By default SQLite checkpoints inside the commit that takes the log past 1,000 pages: the
    writer, holding the only write lock, copies pages to their places all over the file and
    syncs it. Measured with one writer storing the benchmark's stream batches of 500 events
    into 2M events' worth of data, that was 60% of the write transaction. Here a writer's
    connections checkpoint only as a backstop (a log of :data:`_BACKSTOP_PAGES`), and after
    each write this runs a passive checkpoint, which never waits for a writer or a reader and
    copies what it can; one at a time per process, and when writes come faster than that, once
    more after the running one.

    A writer begins the log again from the start only if every page of it has been copied when
    it starts; writers queued back to back never find it so, and the log grows. Once it passes
    :data:`_RESTART_PAGES`, the checkpoint joins the writers' queue and copies the rest with
    ``RESTART``, after which the next writer begins the log again (and its connection cuts the
    file down to :data:`_LOG_LIMIT_BYTES`). By then nearly every page has been copied, so the
    writers wait only for the rest. A log still as this process's last ``RESTART`` left it
    (every page copied, no writer since) is not restarted again: the next writer begins it anew.
    """

    def __init__(self, path: str, writers: WritersQueue) -> None:
        self._uri = f"file:{pathname2url(os.path.abspath(path))}?mode=rw"
        self._writers = writers
        self._state = threading.Lock()
        self._running = False
        self._again = False
        self._restarted: int | None = None  # the log's frames after this process's last RESTART

    @property
    def running(self) -> bool:
        with self._state:
            return self._running

    def after_write(self) -> None:
        with self._state:
            if self._running:
                self._again = True
                return
            self._running = True
        threading.Thread(target=self._run, name="eras-checkpoint", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                # timeout 0: another process's checkpoint or a lock held means skip, not wait;
                # mode=rw: a database removed meanwhile is not created again, empty.
                connection = sqlite3.connect(self._uri, uri=True, timeout=0, isolation_level=None)
                try:
                    _busy, frames, copied = connection.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    # A log left as this process's last RESTART left it: no writer has begun
                    # it again yet, and the next one will.
                    restarted = copied == frames == self._restarted
                    if frames > _RESTART_PAGES and not restarted:
                        # Readers' snapshots are short: wait for them, not for ever.
                        connection.execute(f"PRAGMA busy_timeout={_RESTART_WAIT_MS}")
                        with self._writers.held():
                            busy, frames, copied = connection.execute(
                                "PRAGMA wal_checkpoint(RESTART)"
                            ).fetchone()
                        self._restarted = frames if not busy and copied == frames else None
                finally:
                    connection.close()
            except sqlite3.Error as error:
                # Another process's checkpoint, or readers that outlasted the wait: the next
                # write tries again, and the writers' backstop checkpoint still bounds the log.
                log.debug("checkpoint skipped: %s", error)
            with self._state:
                if not self._again:
                    self._running = False
                    return
                self._again = False


@cache
def _emptied(table: Table) -> Delete:
    return delete(table)


@cache
def _mark_absent(stage: Table, target: Table, key: tuple[str, ...]) -> Update:
    stored = exists().where(*(target.c[name] == stage.c[name] for name in key))
    return update(stage).where(~stored).values(state=State.NEW)


@cache
def _insert_marked(
    stage: Table, target: Table, rows: Select[Any], columns: tuple[str, ...]
) -> Insert:
    return target.insert().from_select(columns, rows.where(stage.c.state == State.NEW))


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, url: str, *, busy_timeout_ms: int, bulk: bool = False) -> None:
        self._busy_timeout_ms = busy_timeout_ms
        self._bulk = bulk
        database = database_file(url)
        self._writers = WritersQueue(f"{database}-writers" if database else None)
        # A bulk load (one writer, one process) keeps SQLite's own checkpoints: its commits are
        # few and large.
        self._checkpointer = (
            Checkpointer(database, self._writers) if database and not bulk else None
        )
        self._inserts: dict[str, str] = {}

    # --- connections and transactions ------------------------------------------------------

    def create_engine(self, url: str, *, pool_size: int) -> Engine:
        engine = create_engine(
            driver_url(url), pool_size=pool_size, max_overflow=pool_size * 2, hide_parameters=True
        )
        busy_timeout_ms = int(self._busy_timeout_ms)
        bulk = self._bulk
        ddl = [str(CreateTable(table).compile(dialect=engine.dialect)) for table in staging.ALL]

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let the "begin" listener below issue BEGIN, instead of pysqlite guessing.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            # Wait for another process's write to finish instead of failing with "database is
            # locked". Set first: switching the journal mode below may itself have to wait.
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            # WAL: readers never block the writer and the writer never blocks readers.
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash or
            # power loss can drop the last commits, which the stream then re-delivers.
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Staging tables live for the connection, in memory: they never reach the disk.
            cursor.execute("PRAGMA temp_store=MEMORY")
            if not bulk:
                cursor.execute(f"PRAGMA wal_autocheckpoint={_BACKSTOP_PAGES}")
                cursor.execute(f"PRAGMA journal_size_limit={_LOG_LIMIT_BYTES}")
            if bulk:
                # A load inserts into the raw tables' indexes and upserts rollup rows all over
                # their B-trees: with SQLite's default 2 MiB page cache, most of those pages
                # would be read again from the file by every batch.
                cursor.execute(f"PRAGMA cache_size=-{_BULK_CACHE_KIB}")
            for statement in ddl:
                cursor.execute(statement)
            cursor.close()

        @event.listens_for(engine, "begin")
        def on_begin(connection: Connection) -> None:
            # A write takes the lock up front: a deferred transaction that upgrades to a write
            # later can fail with SQLITE_BUSY without the busy handler being consulted.
            if connection.get_execution_options().get(_WRITE_OPTION):
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.exec_driver_sql("BEGIN")

        return engine

    # --- the read path ---------------------------------------------------------------------

    def create_reader(self, url: str, engine: Engine, *, pool_size: int) -> Reader:
        return SQLiteReader(engine)

    @property
    def read_dialect(self) -> Dialect:
        return _NAMED_DIALECT

    def write_dialect(self, connection: Connection) -> Dialect:
        return _NAMED_DIALECT

    def for_each(self, outer: Table, rows: Select[Any]) -> Select[Any]:
        # SQLite joins by nested loops, starting from the table its filters narrow most.
        return rows.select_from(outer)

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        listed = func.json_each(bindparam(name)).table_valued("value")
        return column.in_(select(listed.c.value).scalar_subquery())

    def ids_value(self, ids: Sequence[int]) -> Any:
        return json.dumps(list(ids))

    def day_value(self, day: date) -> Any:
        return day.isoformat()  # days are stored as 'YYYY-MM-DD' text

    def time_value(self, moment: datetime) -> Any:
        return _timestamp(moment)  # the stored text's form

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        try:
            with self._writers.held():
                yield
        finally:
            if self._checkpointer is not None:
                self._checkpointer.after_write()

    def for_writing(self, connection: Connection) -> Connection:
        return connection.execution_options(**{_WRITE_OPTION: True})

    def is_retryable(self, error: DBAPIError) -> bool:
        return False  # one writer at a time: nothing to deadlock with

    def lock_migrations(self, connection: Connection) -> None:
        pass  # the migration's write transaction (BEGIN IMMEDIATE) already excludes others

    def lock_raw_tables(self, connection: Connection) -> None:
        pass  # likewise for a rebuild

    # --- SQL expressions -------------------------------------------------------------------

    def insert(self, table: Table) -> sqlite.Insert:
        return sqlite.insert(table)

    def bucket(self, period: Period, day: ColumnElement[Any]) -> ColumnElement[Any]:
        # Days are stored as 'YYYY-MM-DD' text, which these functions read and write.
        expression: ColumnElement[Any]
        if period is Period.DAY:
            return day
        if period is Period.WEEK:
            # Step back six days, then forward to the next Monday: the Monday on or before.
            expression = func.date(day, literal_column("'-6 days'"), literal_column("'weekday 1'"))
        elif period is Period.MONTH:
            # Cutting the text is several times cheaper per row than strftime's date parsing.
            expression = func.substr(day, 1, 8).concat(literal_column("'01'"))
        else:
            expression = func.substr(day, 1, 5).concat(literal_column("'01-01'"))
        return type_coerce(expression, Date)

    def day_of(self, timestamp: ColumnElement[Any]) -> ColumnElement[Any]:
        # Timestamps are 'YYYY-MM-DD HH:MM:SS.ffffff' text and days 'YYYY-MM-DD' text. A CAST
        # to DATE would apply numeric affinity and keep only the year.
        return type_coerce(func.date(timestamp), Date)

    def within_day(
        self, timestamp: ColumnElement[Any], day: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        # Both are text: 'YYYY-MM-DD HH:MM:SS.ffffff' sorts after 'YYYY-MM-DD' and before the
        # next day.
        return and_(timestamp >= day, timestamp < func.date(day, literal_column("'+1 day'")))

    def earliest(self, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
        # SQLite's two-argument min() is NULL when either is.
        return func.coalesce(func.min(left, right), left, right)

    def latest(self, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.coalesce(func.max(left, right), left, right)

    def session_ms_of(self, seconds: ColumnElement[Any]) -> ColumnElement[Any]:
        # SQLite's round() takes a tie away from zero, Python's to the even integer; session
        # times are never negative, so truncation is the floor and a tie is spotted exactly.
        milliseconds = seconds * literal_column("1000.0")
        fraction = milliseconds - cast(milliseconds, Integer)
        half_even: ColumnElement[Any] = literal_column("2") * func.round(
            milliseconds / literal_column("2.0")
        )
        return cast(
            case((fraction == literal_column("0.5"), half_even), else_=func.round(milliseconds)),
            Integer,
        )

    # --- the write path --------------------------------------------------------------------

    def prepare(self, table: Table, rows: Sequence[Sequence[Any]]) -> Sequence[Any]:
        names = staging.staged_columns(table)
        converters = [(index, _converter(table.c[name].type)) for index, name in enumerate(names)]
        converting = [(index, convert) for index, convert in converters if convert is not None]
        if not converting:
            return [tuple(row) for row in rows]
        converted = []
        for row in rows:
            values = list(row)
            for index, convert in converting:
                values[index] = convert(values[index])
            converted.append(tuple(values))
        return converted

    def stage(self, connection: Connection, table: Table, rows: Sequence[Any]) -> None:
        if not rows:
            return
        statement = self._inserts.get(table.name)
        if statement is None:
            names = staging.staged_columns(table)
            insert = table.insert().values({name: bindparam(name) for name in names})
            statement = str(insert.compile(dialect=connection.dialect))
            self._inserts[table.name] = statement
        # One executemany straight to the driver: the values are already in stored form.
        connection.exec_driver_sql(statement, list(rows))

    def analyze_staging(self, connection: Connection, tables: Sequence[Table], rows: int) -> None:
        pass  # SQLite plans joins with temporary tables well without statistics

    def release_staging(self, connection: Connection, tables: Sequence[Table]) -> None:
        for table in tables:
            self.execute_compiled(connection, _emptied(table))

    def insert_new(
        self,
        connection: Connection,
        *,
        stage: Table,
        target: Table,
        key: tuple[str, ...],
        rows: Select[Any],
        columns: tuple[str, ...],
        staged: int,
        values: Mapping[str, Any],
    ) -> int:
        # One writer at a time, and this transaction holds the write lock: the keys absent
        # now are still absent when the INSERT runs.
        marked = self.execute_compiled(connection, _mark_absent(stage, target, key))
        if marked:
            self.execute_compiled(connection, _insert_marked(stage, target, rows, columns), values)
        return marked

    def lock_stored(self, connection: Connection, rows: Select[Any], *, of: Table) -> None:
        pass  # the write transaction already excludes every other writer

    def analyze(self, connection: Connection, tables: Sequence[Table]) -> None:
        quote = connection.dialect.identifier_preparer.quote
        for table in tables:
            connection.exec_driver_sql(f"ANALYZE {quote(table.name)}")

    def estimated_rows(self, connection: Connection, tables: Sequence[Table]) -> int:
        # Raw tables are rowid tables, and rows are rarely deleted from them: the largest rowid
        # is about their size, read from the end of the b-tree instead of counting.
        largest: ColumnElement[int] = func.max(literal_column("rowid"))
        return sum(
            connection.execute(select(largest).select_from(table)).scalar() or 0 for table in tables
        )

"""Engine set-up and the two transaction shapes the service uses: read and write."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

from eras.store.dialect import Dialect, SQLiteDialect, dialect_for, driver_url

T = TypeVar("T")

_WRITE_OPTION = "eras_write"
# PostgreSQL SQLSTATEs worth retrying a whole write transaction for.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


class Database:
    """One engine plus the dialect helpers; hands out connections inside transactions."""

    def __init__(self, url: str, *, pool_size: int = 10, sqlite_busy_timeout_ms: int = 60_000):
        self.url = url
        self.dialect: Dialect = dialect_for(url)
        self.is_sqlite = isinstance(self.dialect, SQLiteDialect)
        # SQLite allows one writer at a time. Threads of this process queue on this lock instead
        # of spinning in SQLite's busy handler; other processes are covered by busy_timeout.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            self.engine = create_engine(
                driver_url(url),
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                hide_parameters=True,
            )
            _configure_sqlite(self.engine, busy_timeout_ms=sqlite_busy_timeout_ms)
        else:
            self.engine = create_engine(
                driver_url(url),
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                pool_pre_ping=False,
                # Errors must not carry event data or ids into logs.
                hide_parameters=True,
            )

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: every statement inside sees the same snapshot."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed when the block exits without an exception."""
        if self._write_lock is None:
            with self.engine.connect() as connection, connection.begin():
                yield connection
            return
        with self._write_lock, self.engine.connect() as connection:
            connection = connection.execution_options(**{_WRITE_OPTION: True})
            with connection.begin():
                yield connection

    def run_write(self, work: Callable[[Connection], T], *, attempts: int = 5) -> T:
        """Run ``work`` in a write transaction, retrying it whole after a deadlock."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as connection:
                    return work(connection)
            except DBAPIError as error:
                if attempt == attempts or _sqlstate(error) not in _RETRYABLE_SQLSTATES:
                    raise
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, instead of pysqlite guessing.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Wait for another process's write to finish instead of failing with "database is
        # locked". Set first: switching the journal mode below may itself have to wait.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # WAL: readers never block the writer and the writer never blocks readers.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode; only an OS crash or power
        # loss can drop the last commits, which the stream then re-delivers.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        # A write takes the lock up front: a deferred transaction that upgrades to a write
        # later can fail with SQLITE_BUSY without the busy handler being consulted.
        if connection.get_execution_options().get(_WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

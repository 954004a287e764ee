"""One backend per database, behind one interface.

Everything that differs between SQLite and PostgreSQL lives in :mod:`.sqlite` and
:mod:`.postgresql`: engine options, locking, how rows are staged (``COPY`` or
``executemany``), ``RETURNING`` forms, ``ANALYZE``, and the SQL for days, buckets and rounding.
No module outside this package asks which database it is on; :func:`backend_for` is the one
place that picks a backend, from the URL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import namedtuple
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from eras.domain.query import Period
from eras.store.reads import Reader, Shape


class Backend(ABC):
    """The database-specific half of the store."""

    #: Shown to people (reports, errors); never used to decide anything outside the backend.
    name: str

    # --- connections and transactions ------------------------------------------------------

    @abstractmethod
    def create_engine(self, url: str, *, pool_size: int) -> Engine:
        """An engine whose connections are set up for eras, staging tables included."""

    @abstractmethod
    def write_lock(self) -> AbstractContextManager[Any]:
        """Held by a writer of this process for the whole write transaction."""

    @abstractmethod
    def for_writing(self, connection: Connection) -> Connection:
        """``connection`` set up so that the transaction it begins next is a write."""

    @abstractmethod
    def is_retryable(self, error: DBAPIError) -> bool:
        """Whether a write transaction that failed with ``error`` may simply run again."""

    @abstractmethod
    def lock_migrations(self, connection: Connection) -> None:
        """Serialise the schema migrations of several processes starting at once."""

    @abstractmethod
    def lock_raw_tables(self, connection: Connection) -> None:
        """Hold off writers of the raw tables until the transaction ends; readers carry on."""

    # --- SQL expressions -------------------------------------------------------------------

    @abstractmethod
    def insert(self, table: Table) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing`` and ``on_conflict_do_update``."""

    @abstractmethod
    def bucket(self, period: Period, day: ColumnElement[Any]) -> ColumnElement[Any]:
        """The first day of the calendar bucket holding ``day``, as a DATE."""

    @abstractmethod
    def day_of(self, timestamp: ColumnElement[Any]) -> ColumnElement[Any]:
        """The UTC day of a stored (naive UTC) timestamp, in the form the rollups store it."""

    @abstractmethod
    def within_day(
        self, timestamp: ColumnElement[Any], day: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        """Whether a stored timestamp falls on ``day``, as a range an index on it can serve."""

    @abstractmethod
    def earliest(self, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
        """The earlier of two times, either of which may be NULL."""

    @abstractmethod
    def latest(self, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
        """The later of two times, either of which may be NULL."""

    @abstractmethod
    def session_ms_of(self, seconds: ColumnElement[Any]) -> ColumnElement[Any]:
        """``round(seconds * 1000)`` exactly as :func:`eras.domain.rules.session_milliseconds`
        computes it (ties to even)."""

    # --- the read path ---------------------------------------------------------------------

    @abstractmethod
    def create_reader(self, url: str, engine: Engine, *, pool_size: int) -> Reader:
        """What runs the read routes' statements (see :mod:`eras.store.reads`)."""

    @property
    @abstractmethod
    def read_dialect(self) -> Dialect:
        """The dialect a read is compiled with, in the parameter style its reader binds."""

    def compile_read(self, statement: Select[Any]) -> Shape:
        """``statement`` compiled once, to be run with its values by the reader."""
        compiled = statement.compile(dialect=self.read_dialect)
        names = [str(column.key) for column in statement.selected_columns]
        row = namedtuple("Row", names)  # type: ignore[misc]
        defaults = {name: value for name, value in compiled.params.items() if value is not None}
        return Shape(sql=str(compiled), defaults=defaults, make_row=row._make)

    @abstractmethod
    def for_each(self, outer: Table, rows: Select[Any]) -> Select[Any]:
        """``rows``, whose conditions refer to ``outer``'s columns, for each row of ``outer``:
        one index lookup per outer row, never a scan of every row ``rows`` could match."""

    @abstractmethod
    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        """``column`` is one of the ids bound as ``name``, with one SQL text for any number
        of ids."""

    @abstractmethod
    def ids_value(self, ids: Sequence[int]) -> Any:
        """``ids`` bound for :meth:`one_of`."""

    @abstractmethod
    def day_value(self, day: date) -> Any:
        """A day bound for comparison with a rollup's day or month column."""

    @abstractmethod
    def time_value(self, moment: datetime) -> Any:
        """A naive UTC time bound for comparison with a rollup's ``first_at`` or ``last_at``."""

    # --- the write path --------------------------------------------------------------------

    @abstractmethod
    def prepare(self, table: Table, rows: Sequence[Sequence[Any]]) -> Sequence[Any]:
        """``rows`` for a staging table, each holding the values of
        :func:`eras.store.staging.staged_columns` in that order, put in the form
        :meth:`stage` sends. Needs no database: runs before the write transaction."""

    @abstractmethod
    def stage(self, connection: Connection, table: Table, rows: Sequence[Any]) -> None:
        """Copy prepared ``rows`` into a staging table, in the fastest way the database has."""

    @abstractmethod
    def analyze_staging(self, connection: Connection, tables: Sequence[Table], rows: int) -> None:
        """Give the planner the staged tables' sizes, when ``rows`` makes it worth it."""

    @abstractmethod
    def release_staging(self, connection: Connection, tables: Sequence[Table]) -> None:
        """Leave the staging tables a write used empty for the next one, before its commit."""

    @abstractmethod
    def insert_new(
        self,
        connection: Connection,
        *,
        stage: Table,
        target: Table,
        key: Sequence[str],
        rows: Select[Any],
        columns: Sequence[str],
        staged: int,
    ) -> int:
        """Insert ``rows`` (a SELECT of ``columns`` over ``stage``, in key order) whose key is
        not in ``target`` yet, and return how many. Unless that is every one of the ``staged``
        rows, exactly the staged rows this inserted are marked ``State.NEW``, even when a
        concurrent writer inserts the same keys."""

    @abstractmethod
    def lock_stored(self, connection: Connection, rows: Select[Any], *, of: Table) -> None:
        """Lock the rows of ``of`` that ``rows`` selects, in its order, until the transaction
        ends."""

    @abstractmethod
    def analyze(self, connection: Connection, tables: Sequence[Table]) -> None:
        """Bring the planner's statistics of ``tables`` up to date (after a large load)."""

    @abstractmethod
    def estimated_rows(self, connection: Connection, tables: Sequence[Table]) -> int:
        """About how many rows ``tables`` hold together, without counting them."""


def driver_url(url: str) -> str:
    """Map the plain ``postgresql://`` form users write onto the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def backend_for(url: str, *, sqlite_busy_timeout_ms: int = 60_000, bulk: bool = False) -> Backend:
    """The backend for a database URL: ``sqlite:///file.db`` or ``postgresql://...``.

    ``bulk``: the connections serve one long load (``eras ingest``), not a server's requests,
    and may hold more memory for it."""
    kind = make_url(driver_url(url)).get_backend_name()
    if kind == "sqlite":
        from eras.store.backend.sqlite import SQLiteBackend

        return SQLiteBackend(url, busy_timeout_ms=sqlite_busy_timeout_ms, bulk=bulk)
    if kind == "postgresql":
        from eras.store.backend.postgresql import PostgresBackend

        return PostgresBackend()
    raise ValueError(f"unsupported database URL scheme {kind!r}: use sqlite:// or postgresql://")

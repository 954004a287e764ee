"""One backend per database, behind one interface.

Everything that differs between SQLite and PostgreSQL lives in :mod:`.sqlite` and
:mod:`.postgresql`: engine options, locking, how rows are staged (``COPY`` or
``executemany``), ``RETURNING`` forms, ``ANALYZE``, and the SQL for days, buckets and rounding.
No module outside this package asks which database it is on; :func:`backend_for` is the one
place that picks a backend, from the URL.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections import namedtuple
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine, Executable, Select, Table
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from eras.domain.query import Period
from eras.store.reads import Reader, Shape

# SQLAlchemy reports the rows an INSERT wrote only when asked to.
_COUNTED: Final = {"preserve_rowcount": True}


@dataclass(frozen=True, slots=True)
class _DriverSQL:
    sql: str
    defaults: Mapping[str, Any]  # the values the statement binds itself, in the driver's form


def _driver_value(value: Any) -> Any:
    # State and the like: a driver may write an enum by its name.
    return int(value) if isinstance(value, enum.IntEnum) else value


def _driver_sql(statement: ClauseElement, dialect: Dialect) -> _DriverSQL:
    """``statement`` as SQL text for ``dialect``'s driver, with the values it binds itself."""
    compiled = statement.compile(dialect=dialect)
    defaults = {
        name: _driver_value(value) for name, value in compiled.params.items() if value is not None
    }
    return _DriverSQL(sql=str(compiled), defaults=defaults)


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

    @abstractmethod
    def write_dialect(self, connection: Connection) -> Dialect:
        """The dialect :meth:`execute_compiled` compiles with: ``connection``'s own, in a
        parameter style by name, which its driver binds from a dict."""

    def execute_compiled(
        self,
        connection: Connection,
        statement: Executable,
        values: Mapping[str, Any] | None = None,
    ) -> int:
        """Run ``statement`` as SQL text compiled on its first run, and return the rows it
        changed. ``values`` bind its parameters that have no value, in the driver's form.

        For the write path's statements, which are made once and kept (see
        :mod:`eras.store.write`): a batch runs some fifteen of them, and building each and
        having SQLAlchemy find its compiled form again cost more than many of them take to
        run. Only a kept statement belongs here, since the compiled text is kept for it.
        """
        compiled = _COMPILED_WRITES.get((self, statement))
        if compiled is None:
            assert isinstance(statement, ClauseElement)
            compiled = _driver_sql(statement, self.write_dialect(connection))
            _COMPILED_WRITES[(self, statement)] = compiled
        parameters = {**compiled.defaults, **values} if values else compiled.defaults
        result = connection.exec_driver_sql(compiled.sql, parameters, execution_options=_COUNTED)
        return int(result.rowcount)

    def compile_read(self, statement: Select[Any]) -> Shape:
        """``statement`` compiled once, to be run with its values by the reader."""
        compiled = _driver_sql(statement, self.read_dialect)
        names = [str(column.key) for column in statement.selected_columns]
        row = namedtuple("Row", names)  # type: ignore[misc]
        return Shape(sql=compiled.sql, defaults=compiled.defaults, make_row=row._make)

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
        key: tuple[str, ...],
        rows: Select[Any],
        columns: tuple[str, ...],
        staged: int,
        values: Mapping[str, Any],
    ) -> int:
        """Insert ``rows`` (a SELECT of ``columns`` over ``stage``, in key order, binding
        ``values``) whose key is not in ``target`` yet, and return how many. Unless that is
        every one of the ``staged`` rows, exactly the staged rows this inserted are marked
        ``State.NEW``, even when a concurrent writer inserts the same keys. ``rows`` is made
        once and kept, like every statement :meth:`execute_compiled` runs."""

    @abstractmethod
    def lock_stored(self, connection: Connection, rows: Select[Any], *, of: Table) -> None:
        """Lock the rows of ``of`` that ``rows`` (made once and kept) selects, in its order,
        until the transaction ends."""

    @abstractmethod
    def analyze(self, connection: Connection, tables: Sequence[Table]) -> None:
        """Bring the planner's statistics of ``tables`` up to date (after a large load)."""

    @abstractmethod
    def estimated_rows(self, connection: Connection, tables: Sequence[Table]) -> int:
        """About how many rows ``tables`` hold together, without counting them."""


_COMPILED_WRITES: dict[tuple[Backend, Executable], _DriverSQL] = {}


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

"""PostgreSQL through psycopg 3: concurrent writers, row locks, COPY."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, Final

import asyncpg
import orjson
from psycopg import sql as pgsql
from psycopg.types.json import set_json_dumps
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Insert,
    Integer,
    MetaData,
    Select,
    SmallInteger,
    String,
    Table,
    Update,
    and_,
    any_,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.elements import ColumnElement

from eras.domain.query import Period
from eras.errors import DatabaseUnavailable
from eras.store import staging
from eras.store.backend import Backend, driver_url
from eras.store.reads import Read, Reader, Rows, Shape
from eras.store.staging import State

log = logging.getLogger(__name__)

# SQLSTATEs worth retrying a whole write transaction for.
_RETRYABLE_SQLSTATES: Final = frozenset({"40001", "40P01"})  # serialization, deadlock
# Any fixed number: it names the advisory lock that keeps two starting servers from both
# migrating.
_MIGRATION_LOCK_KEY: Final = 0x45524153
# Below this many staged rows, the planner's default guess for a never-analysed temporary table
# (ten pages) is close enough and ANALYZE would cost more than it saves.
_ANALYZE_FROM_ROWS: Final = 5_000


_ANALYZED: Final = "eras_staging_analyzed"


def _new_keys(stage: Table) -> Table:
    """The keys of the staged rows one statement inserted (see ``insert_new``)."""
    columns = [Column(column.name, column.type) for column in stage.primary_key.columns]
    return Table(
        f"{stage.name}_new",
        _metadata,
        *columns,
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )


_metadata = MetaData()
# Named parameters, %(name)s, as psycopg binds them from a dict.
_READ_DIALECT: Final = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
_NEW_KEYS: Final = {stage.name: _new_keys(stage) for stage in staging.STAGED_ROWS}


def _binary_type(column_type: Any) -> str:
    """The PostgreSQL type a staged value is sent as in binary COPY."""
    if isinstance(column_type, SmallInteger):
        return "int2"
    if isinstance(column_type, BigInteger):
        return "int8"
    if isinstance(column_type, Integer):
        return "int4"
    if isinstance(column_type, DateTime):
        return "timestamp"
    if isinstance(column_type, Date):
        return "date"
    if isinstance(column_type, Float):
        return "float8"
    if isinstance(column_type, Boolean):
        return "bool"
    if isinstance(column_type, JSON):
        return "json"
    if isinstance(column_type, String):
        return "text"
    raise TypeError(f"no binary COPY type for {column_type!r}")


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# A parameter as the read statements are compiled (psycopg's style), or an escaped percent sign.
_PARAMETER: Final = re.compile(r"%\((\w+)\)s|%%")
# Distinct statements each read connection keeps prepared: every plan's, with room to spare.
_PREPARED_STATEMENTS: Final = 1024
# A server that does not answer at all (not one that refuses) fails the request after this.
_CONNECT_SECONDS: Final = 10.0


@dataclass(frozen=True, slots=True)
class _Statement:
    """A plan's reads as one statement, and which read's value each of its parameters takes,
    in the order of ``$1``, ``$2``..."""

    sql: str
    arguments: tuple[tuple[int, str], ...]


def _statement(shapes: Sequence[Shape]) -> _Statement:
    """One read as it is; several side by side, each as the array of its rows: one statement
    sees one snapshot of the database, and is one round trip."""
    arguments: list[tuple[int, str]] = []

    def numbered(index: int, sql: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "%"
            key = (index, name)
            if key not in arguments:
                arguments.append(key)
            return f"${arguments.index(key) + 1}"

        return _PARAMETER.sub(replace, sql)

    if len(shapes) == 1:
        return _Statement(numbered(0, shapes[0].sql), tuple(arguments))
    # A subquery's rows come out in its ORDER BY when nothing else is done to them.
    columns = ", ".join(
        f"ARRAY(SELECT read_rows FROM ({numbered(index, shape.sql)}) AS read_rows)"  # noqa: S608 - compiled statements; values are parameters
        for index, shape in enumerate(shapes)
    )
    return _Statement(f"SELECT {columns}", tuple(arguments))


# What asyncpg raises when the server cannot be reached, went away, or is shutting down; any
# other error is a fault in the statement and answers 500.
_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
)


class PostgresReader(Reader):
    """Reads on asyncpg connections, at most ``size`` at once, opened as needed.

    A plan is one prepared statement (see ``_statement``): one round trip, one snapshot, and no
    ``BEGIN`` or ``COMMIT`` to send. asyncpg rather than psycopg, which the writes
    use: per round trip it costs about a third of the CPU (its protocol is compiled and keeps
    its socket registered with the event loop), and it decodes the arrays of rows with their
    types.

    The connections are kept here rather than in a pool library because a request must fail at
    once when the database is down (503), not wait while a pool retries in the background.
    """

    def __init__(self, dsn: str, *, size: int) -> None:
        self._dsn = dsn
        self._size = size
        self._idle: list[Any] = []
        self._slots: asyncio.Semaphore | None = None
        self._statements: dict[tuple[Shape, ...], _Statement] = {}

    async def fetch(self, reads: Sequence[Read]) -> list[Rows]:
        if not reads:
            return []
        shapes = tuple(read.shape for read in reads)
        statement = self._statements.get(shapes)
        if statement is None:
            statement = self._statements[shapes] = _statement(shapes)
        values = [read.bound() for read in reads]
        arguments = [values[index][name] for index, name in statement.arguments]
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        async with self._slots:
            try:
                connection = self._idle.pop() if self._idle else await self._connect()
            except _UNAVAILABLE as error:
                log.error("database unavailable: %s", type(error).__name__)
                raise DatabaseUnavailable from None
            try:
                if len(reads) == 1:
                    rows = [reads[0].shape.rows(await connection.fetch(statement.sql, *arguments))]
                else:
                    found = await connection.fetchrow(statement.sql, *arguments)
                    rows = [read.shape.rows(found[index]) for index, read in enumerate(reads)]
            except _UNAVAILABLE as error:
                connection.terminate()
                log.error("database unavailable: %s", type(error).__name__)
                raise DatabaseUnavailable from None
            except BaseException:
                # A cancelled request may leave its statement running: never reuse that one.
                connection.terminate()
                raise
            self._idle.append(connection)
            return rows

    async def _connect(self) -> Any:
        return await asyncpg.connect(
            self._dsn,
            timeout=_CONNECT_SECONDS,
            statement_cache_size=_PREPARED_STATEMENTS,
            # These connections never write.
            server_settings={"default_transaction_read_only": "on"},
        )

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


@cache
def _insert_returning_keys(
    stage: Table, target: Table, key: tuple[str, ...], rows: Select[Any], columns: tuple[str, ...]
) -> Insert:
    # The keys RETURNING gives back are the rows this statement inserted: a row another
    # transaction inserted first, even concurrently, is a conflict and is not among them.
    # They go into a narrow table of their own; marking the wide staged rows costs more,
    # and is only needed when some were stored already.
    inserted = (
        postgresql.insert(target)
        .from_select(columns, rows)
        .on_conflict_do_nothing()
        .returning(*(target.c[name] for name in key))
        .cte("inserted")
    )
    return _NEW_KEYS[stage.name].insert().from_select(list(key), select(inserted))


@cache
def _mark_inserted(stage: Table, key: tuple[str, ...]) -> Update:
    new_keys = _NEW_KEYS[stage.name]
    return (
        update(stage)
        .where(*(stage.c[name] == new_keys.c[name] for name in key))
        .values(state=State.NEW)
    )


@cache
def _locked(rows: Select[Any], of: Table) -> Select[Any]:
    return select(func.count()).select_from(rows.with_for_update(of=of).subquery())


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self) -> None:
        self._copies: dict[str, tuple[pgsql.Composed, list[str]]] = {}

    # --- connections and transactions ------------------------------------------------------

    def create_engine(self, url: str, *, pool_size: int) -> Engine:
        engine = create_engine(
            driver_url(url),
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_pre_ping=False,
            # Errors must not carry event data or ids into logs.
            hide_parameters=True,
        )
        tables = [*staging.ALL, *_NEW_KEYS.values()]
        ddl = [str(CreateTable(table).compile(dialect=engine.dialect)) for table in tables]

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # JSON values staged by COPY are written by orjson, not the standard library.
            set_json_dumps(_json_text, context=dbapi_connection)
            # Staging tables for the connection's lifetime, emptied at every commit: a write
            # then costs no DDL and leaves nothing in the catalogue behind it.
            with dbapi_connection.cursor() as cursor:
                for statement in ddl:
                    cursor.execute(statement)
            dbapi_connection.commit()

        return engine

    def write_lock(self) -> nullcontext[None]:
        return nullcontext()  # writers are serialised by row locks, where they meet

    # --- the read path ---------------------------------------------------------------------

    def create_reader(self, url: str, engine: Engine, *, pool_size: int) -> Reader:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresReader(dsn, size=pool_size)

    @property
    def read_dialect(self) -> Dialect:
        return _READ_DIALECT

    def write_dialect(self, connection: Connection) -> Dialect:
        return connection.dialect  # psycopg's: %(name)s

    def for_each(self, outer: Table, rows: Select[Any]) -> Select[Any]:
        # A prepared statement's generic plan guesses that a range of months is narrow, and
        # would read every month of the filters for each outer row. LATERAL with OFFSET 0
        # (which keeps the planner from merging it into the outer query) makes it look up
        # each outer row's own key instead.
        each = rows.offset(literal_column("0")).lateral("each")
        return select(*each.c).select_from(outer.join(each, true()))

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        return column == any_(bindparam(name, type_=postgresql.ARRAY(BigInteger)))

    def ids_value(self, ids: Sequence[int]) -> Any:
        return list(ids)

    def day_value(self, day: date) -> Any:
        return day

    def time_value(self, moment: datetime) -> Any:
        return moment

    def for_writing(self, connection: Connection) -> Connection:
        return connection

    def is_retryable(self, error: DBAPIError) -> bool:
        return getattr(error.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES

    def lock_migrations(self, connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})

    def lock_raw_tables(self, connection: Connection) -> None:
        # SHARE conflicts with the ROW EXCLUSIVE lock every INSERT, UPDATE and DELETE takes, so
        # writers wait for the transaction to commit; plain SELECTs are not blocked.
        connection.execute(
            text(
                "LOCK TABLE classification_events, classification_user_groups, comment_events "
                "IN SHARE MODE"
            )
        )

    # --- SQL expressions -------------------------------------------------------------------

    def insert(self, table: Table) -> postgresql.Insert:
        return postgresql.insert(table)

    def bucket(self, period: Period, day: ColumnElement[Any]) -> ColumnElement[Any]:
        if period is Period.DAY:
            return day
        # Cast to a plain timestamp first: date_trunc on a DATE would pick the timestamptz
        # overload and shift buckets by the session time zone. ISO weeks start on Monday.
        unit: ColumnElement[str] = literal_column(f"'{period.value}'")
        return cast(func.date_trunc(unit, cast(day, postgresql.TIMESTAMP)), Date)

    def day_of(self, timestamp: ColumnElement[Any]) -> ColumnElement[Any]:
        return cast(timestamp, Date)

    def within_day(
        self, timestamp: ColumnElement[Any], day: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        return and_(timestamp >= day, timestamp < day + literal_column("1"))

    def earliest(self, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.least(left, right)  # which ignores a NULL

    def latest(self, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.greatest(left, right)

    def session_ms_of(self, seconds: ColumnElement[Any]) -> ColumnElement[Any]:
        # round(double precision) rounds a tie to the even integer, as Python does.
        return cast(func.round(seconds * literal_column("1000.0")), BigInteger)

    # --- the write path --------------------------------------------------------------------

    def prepare(self, table: Table, rows: Sequence[Sequence[Any]]) -> Sequence[Any]:
        return rows  # psycopg's binary dumpers write each value as the COPY streams

    def stage(self, connection: Connection, table: Table, rows: Sequence[Any]) -> None:
        if not rows:
            return
        copy_statement = self._copies.get(table.name)
        if copy_statement is None:
            names = staging.staged_columns(table)
            statement = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                pgsql.Identifier(table.name), pgsql.SQL(", ").join(map(pgsql.Identifier, names))
            )
            types = [_binary_type(table.c[name].type) for name in names]
            copy_statement = self._copies[table.name] = (statement, types)
        statement, types = copy_statement
        driver = connection.connection.driver_connection
        assert driver is not None
        # Binary COPY: psycopg's C dumpers write each value, and the server parses no text.
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    def analyze_staging(self, connection: Connection, tables: Sequence[Table], rows: int) -> None:
        # Temporary tables are never auto-analysed, and without statistics the planner joins a
        # large batch to the raw tables less well. Once per connection is enough: the tables
        # keep their statistics when emptied, and the planner scales them to the rows present.
        if rows >= _ANALYZE_FROM_ROWS and not connection.info.get(_ANALYZED):
            self.analyze(connection, tables)
            connection.info[_ANALYZED] = True

    def release_staging(self, connection: Connection, tables: Sequence[Table]) -> None:
        pass  # ON COMMIT DELETE ROWS

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
        count = self.execute_compiled(
            connection, _insert_returning_keys(stage, target, key, rows, columns), values
        )
        if count < staged:
            self.execute_compiled(connection, _mark_inserted(stage, key))
        return count

    def lock_stored(self, connection: Connection, rows: Select[Any], *, of: Table) -> None:
        self.execute_compiled(connection, _locked(rows, of))

    def analyze(self, connection: Connection, tables: Sequence[Table]) -> None:
        driver = connection.connection.driver_connection
        assert driver is not None
        for table in tables:
            driver.execute(pgsql.SQL("ANALYZE {}").format(pgsql.Identifier(table.name)))

    def estimated_rows(self, connection: Connection, tables: Sequence[Table]) -> int:
        # The planner's own estimate: -1 (never analysed) counts as empty.
        estimate = connection.execute(
            text(
                "SELECT coalesce(sum(greatest(reltuples, 0)), 0) FROM pg_class "
                "WHERE oid = ANY(CAST(:names AS regclass[]))"
            ),
            {"names": [table.name for table in tables]},
        ).scalar_one()
        return int(estimate)

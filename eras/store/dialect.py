"""Everything that differs between SQLite and PostgreSQL, behind one small interface."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    JSON,
    Date,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ColumnElement


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class Dialect(Protocol):
    name: str

    def insert(self, table: Table) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""

    def bucket(self, period: Period, day: ColumnElement[Any]) -> ColumnElement[Any]:
        """The first day of the calendar bucket holding ``day``, as a DATE."""

    def rows_source(
        self, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> Select[Any] | None:
        """A SELECT yielding ``rows`` in order, or ``None`` to pass them as executemany."""


class SQLiteDialect:
    name = "sqlite"

    def insert(self, table: Table) -> sqlite.Insert:
        return sqlite.insert(table)

    def bucket(self, period: Period, day: ColumnElement[Any]) -> ColumnElement[Any]:
        # Days are stored as 'YYYY-MM-DD' text, which these functions read and write.
        expression: ColumnElement[Any]
        if period is Period.DAY:
            return day
        if period is Period.WEEK:
            # Step back six days, then forward to the next Monday: the Monday on or before `day`.
            expression = func.date(day, literal_column("'-6 days'"), literal_column("'weekday 1'"))
        elif period is Period.MONTH:
            # Cutting the text is several times cheaper per row than strftime's date parsing.
            expression = func.substr(day, 1, 8).concat(literal_column("'01'"))
        else:
            expression = func.substr(day, 1, 5).concat(literal_column("'01-01'"))
        return type_coerce(expression, Date)

    def rows_source(
        self, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> Select[Any] | None:
        # In process, executemany is already the fast path.
        return None


class PostgresDialect:
    name = "postgresql"

    def insert(self, table: Table) -> postgresql.Insert:
        return postgresql.insert(table)

    def bucket(self, period: Period, day: ColumnElement[Any]) -> ColumnElement[Any]:
        if period is Period.DAY:
            return day
        # Cast to a plain timestamp first: date_trunc on a DATE would pick the timestamptz
        # overload and shift buckets by the session time zone. ISO weeks start on Monday.
        unit: ColumnElement[str] = literal_column(f"'{period.value}'")
        return cast(func.date_trunc(unit, cast(day, postgresql.TIMESTAMP)), Date)

    def rows_source(
        self, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> Select[Any] | None:
        """One array per column, unnested side by side.

        A multi-row VALUES list is a new statement text for every batch size, and psycopg
        re-parses such long statements on every execution; a handful of array parameters is
        parsed once and cached, whatever the number of rows.
        """
        selected = []
        for name in columns:
            column = table.c[name]
            values = [row[name] for row in rows]
            if isinstance(column.type, JSON):
                # An array of JSON documents travels as text: a list of lists would otherwise
                # be read as a two-dimensional array.
                texts = [
                    None if value is None else orjson.dumps(value).decode() for value in values
                ]
                array = bindparam(None, texts, type_=postgresql.ARRAY(Text))
                selected.append(cast(func.unnest(array), column.type).label(name))
            else:
                array = bindparam(None, values, type_=postgresql.ARRAY(column.type))
                selected.append(func.unnest(array).label(name))
        return select(*selected)


def dialect_for(url: str) -> Dialect:
    backend = make_url(driver_url(url)).get_backend_name()
    if backend == "sqlite":
        return SQLiteDialect()
    if backend == "postgresql":
        return PostgresDialect()
    raise ValueError(f"unsupported database URL scheme {backend!r}: use sqlite:// or postgresql://")


def driver_url(url: str) -> str:
    """Map the plain ``postgresql://`` form users write onto the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)

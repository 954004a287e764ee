"""Everything that differs between SQLite and PostgreSQL, behind one small interface."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    true,
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

    def rows_source(self, table: Table, columns: Sequence[str]) -> Select[Any] | None:
        """A SELECT yielding, in order, the rows given by :meth:`rows_parameters`.

        ``None`` when the rows are better passed as executemany. The SELECT depends only on
        the table and columns, so one built for them can be kept and executed again.
        """

    def rows_parameters(
        self, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The parameters with which :meth:`rows_source` yields ``rows``."""


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

    def rows_source(self, table: Table, columns: Sequence[str]) -> Select[Any] | None:
        """The rows as one JSON document, taken apart by ``json_each``.

        Bound row by row, every value of every row goes through SQLAlchemy's conversions in
        Python; one document is written by orjson and read inside SQLite. Values are first put
        in the form SQLAlchemy would store them in, so the rows are the same either way.
        """
        if not all(_sqlite_storable(table.c[name].type) for name in columns):
            return None
        selected: list[ColumnElement[Any]] = [
            literal_column(f"json_extract(value, '$[{index}]')").label(name)
            for index, name in enumerate(columns)
        ]
        # The WHERE clause is there for the parser: without one, the ON of an upsert clause
        # after INSERT ... SELECT ... FROM reads as a join constraint.
        return (
            select(*selected)
            .select_from(func.json_each(bindparam("rows", type_=Text)))
            .where(true())
            .order_by(literal_column("key"))
        )

    def rows_parameters(
        self, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        converted = [
            _sqlite_values(table.c[name].type, [row[name] for row in rows]) for name in columns
        ]
        return {"rows": orjson.dumps(list(zip(*converted, strict=True))).decode()}


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

    def rows_source(self, table: Table, columns: Sequence[str]) -> Select[Any] | None:
        """One array per column, unnested side by side.

        A multi-row VALUES list is a new statement text for every batch size, and psycopg
        re-parses such long statements on every execution; a handful of array parameters is
        parsed once and cached, whatever the number of rows. Each array is sent as the text of
        an array literal, which the server casts: psycopg would otherwise quote and escape
        every element in Python, at a higher cost than the rest of the insert.
        """
        selected = []
        for name in columns:
            type_ = table.c[name].type
            if isinstance(type_, JSON):
                # An array of JSON documents travels as text: a list of lists would otherwise
                # be read as a two-dimensional array.
                texts = cast(bindparam(f"rows_{name}", type_=Text), postgresql.ARRAY(Text))
                selected.append(cast(func.unnest(texts), type_).label(name))
            elif _array_element(type_) is None:
                array = bindparam(f"rows_{name}", type_=postgresql.ARRAY(type_))
                selected.append(func.unnest(array).label(name))
            else:
                literal = bindparam(f"rows_{name}", type_=Text)
                selected.append(func.unnest(cast(literal, postgresql.ARRAY(type_))).label(name))
        return select(*selected)

    def rows_parameters(
        self, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        for name in columns:
            type_ = table.c[name].type
            values = [row[name] for row in rows]
            element = _json_element if isinstance(type_, JSON) else _array_element(type_)
            if element is None:
                parameters[f"rows_{name}"] = values
            elif values and values.count(values[0]) == len(values):
                # Columns such as created_at hold one value for the whole batch.
                first = None if values[0] is None else element(values[0])
                parameters[f"rows_{name}"] = _array_literal([first] * len(values))
            else:
                parameters[f"rows_{name}"] = _array_literal(
                    [None if value is None else element(value) for value in values]
                )
        return parameters


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _json_element(value: Any) -> str:
    return _quoted(orjson.dumps(value).decode())


def _boolean(value: bool) -> str:
    return "t" if value else "f"


def _timestamp(value: datetime) -> str:
    # Quoted for the space between date and time; naive, as every stored time is UTC.
    return '"' + value.isoformat(" ") + '"'


def _date(value: date) -> str:
    return value.isoformat()


def _array_element(type_: Any) -> Callable[[Any], str] | None:
    """How a value of ``type_`` is written inside an array literal; ``None`` if not known."""
    if isinstance(type_, Boolean):
        return _boolean
    if isinstance(type_, Integer | Float):
        # repr of a float reads back as the same double.
        return repr
    if isinstance(type_, DateTime):
        return _timestamp
    if isinstance(type_, Date):
        return _date
    if isinstance(type_, String):
        return _quoted
    return None


def _array_literal(elements: Sequence[str | None]) -> str:
    return "{" + ",".join("NULL" if element is None else element for element in elements) + "}"


def _sqlite_storable(type_: Any) -> bool:
    return isinstance(type_, JSON | DateTime | Date | Boolean | Integer | Float | String)


def _sqlite_values(type_: Any, values: list[Any]) -> list[Any]:
    """``values`` as SQLAlchemy would bind them for a column of ``type_``, for orjson to write.

    Booleans stay booleans: SQLite reads JSON true and false back as 1 and 0.
    """
    if isinstance(type_, JSON):
        convert: Callable[[Any], Any] = _sqlite_json
    elif isinstance(type_, DateTime):
        convert = _sqlite_datetime
    elif isinstance(type_, Date):
        convert = _sqlite_date
    else:
        return values
    # Columns such as created_at hold one value for the whole batch: convert it once.
    if values and values.count(values[0]) == len(values):
        return [convert(values[0])] * len(values)
    return [convert(value) for value in values]


def _sqlite_datetime(value: date | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format: always six digits of microseconds, no zone.
    if value is None:
        return None
    if not isinstance(value, datetime):
        return date.isoformat(value) + " 00:00:00.000000"
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _sqlite_date(value: date | None) -> str | None:
    # The date part even of a datetime, as SQLAlchemy's SQLite DATE stores it.
    return None if value is None else date.isoformat(value)


def _sqlite_json(value: Any) -> str:
    # What SQLAlchemy's JSON type stores with its default serializer: None is JSON null.
    return json.dumps(value)


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

"""Rollups computed from rows with set-based SQL: rebuild from the raw tables, and verify.

Every rollup row is a GROUP BY over one raw table:

- ``classification_*`` rollups over ``classification_events``,
- ``group_*`` rollups over ``classification_user_groups`` (its rows carry the project, workflow,
  user and session time they count for, so no join is needed),
- ``comment_*`` rollups over ``comment_events``.

The bulk loader (``eras.store.bulk``) applies its changes through the same :func:`grouped`
query over a table of signed contributions, so a load and a rebuild agree by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Connection,
    Date,
    Integer,
    Select,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from eras.ingest.events import CLASSIFICATION_ROLLUPS, COMMENT_ROLLUPS
from eras.store.dialect import Dialect
from eras.store.schema import (
    ROLLUP_TABLES,
    classification_events,
    classification_user_groups,
    comment_events,
)

# Rollup name -> the raw table it is computed from.
ROLLUP_SOURCES: Final[dict[str, FromClause]] = {
    **{
        name: classification_user_groups if "user_group_id" in dimensions else classification_events
        for name, dimensions in CLASSIFICATION_ROLLUPS.items()
    },
    **{name: comment_events for name in COMMENT_ROLLUPS},
}
ROLLUP_NAMES: Final = tuple(sorted(ROLLUP_TABLES))


def dimensions_of(name: str) -> tuple[str, ...]:
    return CLASSIFICATION_ROLLUPS.get(name) or COMMENT_ROLLUPS.get(name) or ()


def has_session(name: str) -> bool:
    return name in CLASSIFICATION_ROLLUPS


# --- expressions shared with the bulk loader ------------------------------------------------


def day_of(dialect: Dialect, timestamp: ColumnElement[Any]) -> ColumnElement[Any]:
    """The UTC day of a stored (naive UTC) timestamp, in the form the rollups store it."""
    if dialect.name == "sqlite":
        # Timestamps are 'YYYY-MM-DD HH:MM:SS.ffffff' text and days 'YYYY-MM-DD' text. A CAST
        # to DATE would apply numeric affinity in SQLite and keep only the year.
        return type_coerce(func.date(timestamp), Date)
    return cast(timestamp, Date)


def session_ms_of(dialect: Dialect, seconds: ColumnElement[Any]) -> ColumnElement[Any]:
    """``round(seconds * 1000)`` exactly as Python's ``round`` computes it at ingest.

    Python rounds a tie to the even integer. PostgreSQL's ``round(double precision)`` does the
    same; SQLite's ``round`` takes a tie away from zero, so ties are handled explicitly there.
    Session times are never negative, so truncation is the floor.
    """
    milliseconds = seconds * literal_column("1000.0")
    if dialect.name != "sqlite":
        return cast(func.round(milliseconds), BigInteger)
    fraction = milliseconds - cast(milliseconds, Integer)
    half_even: ColumnElement[Any] = literal_column("2") * func.round(
        milliseconds / literal_column("2.0")
    )
    return cast(
        case((fraction == literal_column("0.5"), half_even), else_=func.round(milliseconds)),
        Integer,
    )


def grouped(
    name: str,
    source: FromClause,
    *,
    day: ColumnElement[Any],
    weight: ColumnElement[Any],
    session_ms: ColumnElement[Any] | None,
) -> Select[Any]:
    """Rows of rollup ``name`` summed from ``source``: dimensions, day, count [, session_ms].

    ``source`` has the rollup's dimension columns under their rollup names; ``weight`` is 1
    for a raw row, or +1/-1 for a contribution added or withdrawn. Rows with a null
    dimension count toward no row of this rollup (an anonymous user has no user rollup).
    """
    dimensions = [source.c[dimension] for dimension in dimensions_of(name)]
    measures: list[ColumnElement[Any]] = [cast(func.sum(weight), BigInteger).label("count")]
    if has_session(name):
        assert session_ms is not None
        measures.append(cast(func.sum(weight * session_ms), BigInteger).label("session_ms"))
    # Always a WHERE clause: SQLite needs one between INSERT ... SELECT and ON CONFLICT.
    conditions: list[ColumnElement[bool]] = [dimension.is_not(None) for dimension in dimensions]
    if not conditions:
        conditions.append(true())
    return (
        select(*dimensions, day.label("day"), *measures)
        .where(*conditions)
        .group_by(*dimensions, day)
    )


def expected_rollup(dialect: Dialect, name: str) -> Select[Any]:
    """What rollup ``name`` holds when it agrees with the raw tables."""
    source = ROLLUP_SOURCES[name]
    return grouped(
        name,
        source,
        day=day_of(dialect, source.c.event_time),
        weight=literal(1, BigInteger),
        session_ms=session_ms_of(dialect, source.c.session_time) if has_session(name) else None,
    )


def _key_columns(name: str) -> list[str]:
    return [*dimensions_of(name), "day"]


def _measure_columns(name: str) -> list[str]:
    return ["count", "session_ms"] if has_session(name) else ["count"]


# --- rebuild --------------------------------------------------------------------------------


def lock_raw_tables(connection: Connection, dialect: Dialect) -> None:
    """Hold off writers of the raw tables until the transaction ends; readers carry on.

    SHARE mode conflicts with the ROW EXCLUSIVE lock every INSERT, UPDATE and DELETE takes, so
    ingest waits for the rebuild to commit and the raw tables cannot change under it. Plain
    SELECTs are not blocked. On SQLite the write transaction (BEGIN IMMEDIATE) already excludes
    every other writer.
    """
    if dialect.name == "postgresql":
        connection.execute(
            text(
                "LOCK TABLE classification_events, classification_user_groups, comment_events "
                "IN SHARE MODE"
            )
        )


def rebuild_rollup(connection: Connection, dialect: Dialect, name: str) -> int:
    """Replace every row of rollup ``name`` with the rows computed from the raw tables.

    DELETE rather than TRUNCATE: TRUNCATE is not MVCC-safe and locks out readers, while DELETE
    lets every reader keep seeing the old rows until the transaction commits.
    """
    table = ROLLUP_TABLES[name]
    connection.execute(delete(table))
    columns = [*_key_columns(name), *_measure_columns(name)]
    result = connection.execute(table.insert().from_select(columns, expected_rollup(dialect, name)))
    return max(result.rowcount, 0)


def rebuild_rollups(
    connection: Connection,
    dialect: Dialect,
    *,
    on_table: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Recompute every rollup inside the caller's transaction; returns the rows per rollup.

    Readers see the old totals until the commit and the new ones after it, never a mixture.
    ``on_table(name, rows)`` is called after each rollup, for progress.
    """
    lock_raw_tables(connection, dialect)
    rows: dict[str, int] = {}
    for name in ROLLUP_NAMES:
        rows[name] = rebuild_rollup(connection, dialect, name)
        if on_table is not None:
            on_table(name, rows[name])
    return rows


# --- verify ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """A rollup row whose stored values differ from the ones computed from the raw tables.

    ``stored`` or ``expected`` is ``None`` when the row exists on one side only.
    """

    rollup: str
    key: tuple[tuple[str, Any], ...]  # (column, value) pairs: dimensions then day
    stored: tuple[int, ...] | None
    expected: tuple[int, ...] | None

    def describe(self) -> str:
        key = " ".join(f"{column}={_show(value)}" for column, value in self.key)
        names = _measure_columns(self.rollup)
        return (
            f"{self.rollup} {key}: stored {_measures(names, self.stored)}, "
            f"expected {_measures(names, self.expected)}"
        )


def _show(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _measures(names: Sequence[str], values: tuple[int, ...] | None) -> str:
    if values is None:
        return "no row"
    return " ".join(f"{name}={value}" for name, value in zip(names, values, strict=True))


def _difference_query(dialect: Dialect, name: str) -> Select[Any]:
    table = ROLLUP_TABLES[name]
    expected = expected_rollup(dialect, name).cte(f"expected_{name}")
    keys, measures = _key_columns(name), _measure_columns(name)
    same_key = and_(*(table.c[column] == expected.c[column] for column in keys))
    changed = or_(*(table.c[column] != expected.c[column] for column in measures))
    missing_or_changed = (
        select(
            *(expected.c[column] for column in keys),
            *(table.c[column].label(f"stored_{column}") for column in measures),
            *(expected.c[column].label(f"expected_{column}") for column in measures),
        )
        .select_from(expected.outerjoin(table, same_key))
        .where(or_(table.c.day.is_(None), changed))
    )
    extra = select(
        *(table.c[column] for column in keys),
        *(table.c[column].label(f"stored_{column}") for column in measures),
        *(null().label(f"expected_{column}") for column in measures),
    ).where(~exists().where(same_key))
    union = union_all(missing_or_changed, extra).subquery()
    return select(union).order_by(*(union.c[column] for column in keys))


def rollup_differences(connection: Connection, dialect: Dialect, name: str) -> Iterator[Difference]:
    """Every row where rollup ``name`` disagrees with the raw tables, in key order.

    One statement, so on PostgreSQL it compares both sides within a single snapshot even while
    ingest carries on.
    """
    keys, measures = _key_columns(name), _measure_columns(name)
    for row in connection.execute(_difference_query(dialect, name)):
        values = row._mapping
        stored = tuple(values[f"stored_{column}"] for column in measures)
        expected = tuple(values[f"expected_{column}"] for column in measures)
        yield Difference(
            rollup=name,
            key=tuple((column, values[column]) for column in keys),
            stored=None if stored[0] is None else tuple(int(value) for value in stored),
            expected=None if expected[0] is None else tuple(int(value) for value in expected),
        )

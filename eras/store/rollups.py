"""Rollups computed with set-based SQL: the sums the write path adds, the rebuild from the raw
tables, and their verification.

Every rollup row is a GROUP BY of one source (:class:`eras.domain.rollups.Source`):
``classification_*`` rollups over ``classification_events``, ``group_*`` rollups over
``classification_user_groups`` (its rows carry the project, workflow, user and session time they
count with, so no join is needed), ``comment_*`` rollups over ``comment_events``. The write path
(:mod:`eras.store.write`) applies its changes through the same :func:`grouped` query over its
contributions, so a write and a rebuild agree by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    and_,
    cast,
    delete,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from eras.domain.query import Period
from eras.domain.rollups import ROLLUPS, Level, Rollup
from eras.store.backend import Backend
from eras.store.schema import ROLLUP_TABLES, SOURCE_TABLES

ROLLUP_NAMES: Final = tuple(sorted(ROLLUPS))


def period_of(
    backend: Backend, rollup: Rollup, day: ColumnElement[Any]
) -> ColumnElement[Any] | None:
    """The value of ``rollup``'s period column for a row of ``day``: the day itself, the first
    day of its month, or nothing for all-time totals."""
    if rollup.level is Level.DAY:
        return day
    if rollup.level is Level.MONTH:
        return backend.bucket(Period.MONTH, day)
    return None


def grouped(
    rollup: Rollup,
    source: FromClause,
    *,
    period: ColumnElement[Any] | None,
    count: ColumnElement[Any],
    session_ms: ColumnElement[Any] | None,
    first_at: ColumnElement[Any] | None = None,
    last_at: ColumnElement[Any] | None = None,
) -> Select[Any]:
    """Rows of ``rollup`` summed from ``source``: its key, then count [, session_ms]
    [, first_at, last_at].

    ``source`` has the rollup's dimension columns under their rollup names; ``count`` and
    ``session_ms`` are what each of its rows counts for (1 and its milliseconds for a raw row,
    a signed sum for a row of contributions), ``first_at`` and ``last_at`` its earliest and
    latest classification time. Rows with a null dimension count toward no row of this rollup
    (an anonymous volunteer has no volunteer rollup).
    """
    dimensions = [source.c[dimension] for dimension in rollup.dimensions]
    keys: list[ColumnElement[Any]] = list(dimensions)
    if period is not None:
        assert rollup.period_column is not None
        keys.append(period.label(rollup.period_column))
    measures: list[ColumnElement[Any]] = [cast(func.sum(count), BigInteger).label("count")]
    if rollup.with_session:
        assert session_ms is not None
        measures.append(cast(func.sum(session_ms), BigInteger).label("session_ms"))
    if rollup.with_times:
        assert first_at is not None and last_at is not None
        measures.append(func.min(first_at).label("first_at"))
        measures.append(func.max(last_at).label("last_at"))
    # Always a WHERE clause: SQLite needs one between INSERT ... SELECT and ON CONFLICT.
    conditions: list[ColumnElement[bool]] = [dimension.is_not(None) for dimension in dimensions]
    if not conditions:
        conditions.append(true())
    grouping = [*dimensions] if period is None else [*dimensions, period]
    statement = select(*keys, *measures).where(*conditions)
    return statement.group_by(*grouping) if grouping else statement


def expected_rollup(backend: Backend, rollup: Rollup) -> Select[Any]:
    """What ``rollup`` holds when it agrees with the raw tables."""
    source = SOURCE_TABLES[rollup.source]
    return grouped(
        rollup,
        source,
        period=period_of(backend, rollup, backend.day_of(source.c.event_time)),
        count=literal(1, BigInteger),
        session_ms=backend.session_ms_of(source.c.session_time) if rollup.with_session else None,
        first_at=source.c.event_time,
        last_at=source.c.event_time,
    )


def refresh_times(
    connection: Connection, backend: Backend, rollup: Rollup, keys: Select[Any]
) -> None:
    """Read the first and latest classification time of the rows of ``rollup`` whose key
    ``keys`` selects again from what they count: the raw rows (through their time index) for
    days, and the days for months and totals when the family keeps days with times.

    A withdrawal can take away the very classification a row's first or latest time came
    from, and a minimum or maximum cannot be undone by subtraction.
    """
    table = ROLLUP_TABLES[rollup.name]
    day_rollup = ROLLUPS[f"{rollup.family.name}_{Level.DAY.value}"]
    if rollup.level is not Level.DAY and day_rollup.with_times:
        days = ROLLUP_TABLES[day_rollup.name]
        match = [days.c[name] == table.c[name] for name in rollup.dimensions]
        if rollup.level is Level.MONTH:
            match.append(backend.bucket(Period.MONTH, days.c.day) == table.c.month)
        first = select(func.min(days.c.first_at)).where(*match).scalar_subquery()
        last = select(func.max(days.c.last_at)).where(*match).scalar_subquery()
    else:
        raw = SOURCE_TABLES[rollup.source]
        match = [raw.c[name] == table.c[name] for name in rollup.dimensions]
        if rollup.level is Level.DAY:
            match.append(backend.within_day(raw.c.event_time, table.c.day))
        first = select(func.min(raw.c.event_time)).where(*match).scalar_subquery()
        last = select(func.max(raw.c.event_time)).where(*match).scalar_subquery()
    row_key = tuple_(*(table.c[name] for name in rollup.key))
    connection.execute(update(table).where(row_key.in_(keys)).values(first_at=first, last_at=last))


# --- rebuild --------------------------------------------------------------------------------


def rebuild_rollup(connection: Connection, backend: Backend, rollup: Rollup) -> int:
    """Replace every row of ``rollup`` with the rows computed from the raw tables.

    DELETE rather than TRUNCATE: TRUNCATE is not MVCC-safe and locks out readers, while DELETE
    lets every reader keep seeing the old rows until the transaction commits.
    """
    table = ROLLUP_TABLES[rollup.name]
    connection.execute(delete(table))
    columns = [*rollup.key, *rollup.measures, *rollup.times]
    result = connection.execute(
        table.insert().from_select(columns, expected_rollup(backend, rollup)),
        execution_options={"preserve_rowcount": True},
    )
    return max(result.rowcount, 0)


def rebuild_rollups(
    connection: Connection,
    backend: Backend,
    *,
    on_rollup: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Recompute every rollup inside the caller's transaction; returns the rows per rollup.

    Readers see the old totals until the commit and the new ones after it, never a mixture.
    The raw tables are locked against writers meanwhile. ``on_rollup(name, rows)`` is called
    after each rollup, for progress.
    """
    backend.lock_raw_tables(connection)
    rows: dict[str, int] = {}
    for name in ROLLUP_NAMES:
        rows[name] = rebuild_rollup(connection, backend, ROLLUPS[name])
        if on_rollup is not None:
            on_rollup(name, rows[name])
    return rows


# --- verify ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """A rollup row whose stored values differ from the ones computed from the raw tables.

    ``stored`` or ``expected`` is ``None`` when the row exists on one side only.
    """

    rollup: str
    key: tuple[tuple[str, Any], ...]  # (column, value) pairs: dimensions, then day or month
    stored: tuple[Any, ...] | None  # the rollup's measures, then its times
    expected: tuple[Any, ...] | None

    def describe(self) -> str:
        key = " ".join(f"{column}={_show(value)}" for column, value in self.key)
        rollup = ROLLUPS[self.rollup]
        names = (*rollup.measures, *rollup.times)
        return (
            f"{self.rollup} {key}: stored {_values(names, self.stored)}, "
            f"expected {_values(names, self.expected)}"
        )


def _show(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _values(names: Sequence[str], values: tuple[Any, ...] | None) -> str:
    if values is None:
        return "no row"
    return " ".join(f"{name}={_show(value)}" for name, value in zip(names, values, strict=True))


def _difference_query(backend: Backend, rollup: Rollup) -> Select[Any]:
    table = ROLLUP_TABLES[rollup.name]
    expected = expected_rollup(backend, rollup).cte(f"expected_{rollup.name}")
    keys, values = rollup.key, (*rollup.measures, *rollup.times)
    same_key = and_(*(table.c[column] == expected.c[column] for column in keys))
    changed = or_(*(table.c[column].is_distinct_from(expected.c[column]) for column in values))
    missing_or_changed = (
        select(
            *(expected.c[column] for column in keys),
            *(table.c[column].label(f"stored_{column}") for column in values),
            *(expected.c[column].label(f"expected_{column}") for column in values),
        )
        .select_from(expected.outerjoin(table, same_key))
        .where(or_(table.c[keys[0]].is_(None), changed))
    )
    extra = select(
        *(table.c[column] for column in keys),
        *(table.c[column].label(f"stored_{column}") for column in values),
        *(null().label(f"expected_{column}") for column in values),
    ).where(~exists().where(same_key))
    union = union_all(missing_or_changed, extra).subquery()
    return select(union).order_by(*(union.c[column] for column in keys))


def rollup_differences(
    connection: Connection, backend: Backend, rollup: Rollup
) -> Iterator[Difference]:
    """Every row where ``rollup`` disagrees with the raw tables, in key order.

    One statement, so on PostgreSQL it compares both sides within a single snapshot even while
    ingest carries on.
    """
    keys, values = rollup.key, (*rollup.measures, *rollup.times)
    for row in connection.execute(_difference_query(backend, rollup)):
        found = row._mapping
        stored = tuple(_plain(found[f"stored_{column}"]) for column in values)
        expected = tuple(_plain(found[f"expected_{column}"]) for column in values)
        yield Difference(
            rollup=rollup.name,
            key=tuple((column, found[column]) for column in keys),
            stored=None if stored[0] is None else stored,
            expected=None if expected[0] is None else expected,
        )


def _plain(value: Any) -> Any:
    # Sums come back as Decimal from some drivers; counts and milliseconds are whole numbers.
    return int(value) if isinstance(value, Decimal) else value

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
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from eras.domain.rollups import ROLLUPS, Rollup
from eras.store.backend import Backend
from eras.store.schema import ROLLUP_TABLES, SOURCE_TABLES

ROLLUP_NAMES: Final = tuple(sorted(ROLLUPS))


def grouped(
    rollup: Rollup,
    source: FromClause,
    *,
    day: ColumnElement[Any],
    count: ColumnElement[Any],
    session_ms: ColumnElement[Any] | None,
) -> Select[Any]:
    """Rows of ``rollup`` summed from ``source``: dimensions, day, count [, session_ms].

    ``source`` has the rollup's dimension columns under their rollup names; ``count`` and
    ``session_ms`` are what each of its rows counts for (1 and its milliseconds for a raw row,
    a signed sum for a row of contributions). Rows with a null dimension count toward no row
    of this rollup (an anonymous volunteer has no volunteer rollup).
    """
    dimensions = [source.c[dimension] for dimension in rollup.dimensions]
    measures: list[ColumnElement[Any]] = [cast(func.sum(count), BigInteger).label("count")]
    if rollup.with_session:
        assert session_ms is not None
        measures.append(cast(func.sum(session_ms), BigInteger).label("session_ms"))
    # Always a WHERE clause: SQLite needs one between INSERT ... SELECT and ON CONFLICT.
    conditions: list[ColumnElement[bool]] = [dimension.is_not(None) for dimension in dimensions]
    if not conditions:
        conditions.append(true())
    return (
        select(*dimensions, day.label("day"), *measures)
        .where(*conditions)
        .group_by(*dimensions, day)
    )


def expected_rollup(backend: Backend, rollup: Rollup) -> Select[Any]:
    """What ``rollup`` holds when it agrees with the raw tables."""
    source = SOURCE_TABLES[rollup.source]
    return grouped(
        rollup,
        source,
        day=backend.day_of(source.c.event_time),
        count=literal(1, BigInteger),
        session_ms=backend.session_ms_of(source.c.session_time) if rollup.with_session else None,
    )


# --- rebuild --------------------------------------------------------------------------------


def rebuild_rollup(connection: Connection, backend: Backend, rollup: Rollup) -> int:
    """Replace every row of ``rollup`` with the rows computed from the raw tables.

    DELETE rather than TRUNCATE: TRUNCATE is not MVCC-safe and locks out readers, while DELETE
    lets every reader keep seeing the old rows until the transaction commits.
    """
    table = ROLLUP_TABLES[rollup.name]
    connection.execute(delete(table))
    columns = [*rollup.key, *rollup.measures]
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
    key: tuple[tuple[str, Any], ...]  # (column, value) pairs: dimensions then day
    stored: tuple[int, ...] | None
    expected: tuple[int, ...] | None

    def describe(self) -> str:
        key = " ".join(f"{column}={_show(value)}" for column, value in self.key)
        names = ROLLUPS[self.rollup].measures
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


def _difference_query(backend: Backend, rollup: Rollup) -> Select[Any]:
    table = ROLLUP_TABLES[rollup.name]
    expected = expected_rollup(backend, rollup).cte(f"expected_{rollup.name}")
    keys, measures = rollup.key, rollup.measures
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


def rollup_differences(
    connection: Connection, backend: Backend, rollup: Rollup
) -> Iterator[Difference]:
    """Every row where ``rollup`` disagrees with the raw tables, in key order.

    One statement, so on PostgreSQL it compares both sides within a single snapshot even while
    ingest carries on.
    """
    keys, measures = rollup.key, rollup.measures
    for row in connection.execute(_difference_query(backend, rollup)):
        values = row._mapping
        stored = tuple(values[f"stored_{column}"] for column in measures)
        expected = tuple(values[f"expected_{column}"] for column in measures)
        yield Difference(
            rollup=rollup.name,
            key=tuple((column, values[column]) for column in keys),
            stored=None if stored[0] is None else tuple(int(value) for value in stored),
            expected=None if expected[0] is None else tuple(int(value) for value in expected),
        )

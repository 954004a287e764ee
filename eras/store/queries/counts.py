"""Counts over the rollups: one aggregate statement per answer, over the levels
:mod:`eras.store.levels` chooses, as :class:`~eras.store.reads.Plan` s the reader runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import (
    BigInteger,
    Select,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement, Label

from eras.domain.query import CountParams, DateRange, Period
from eras.domain.rollups import FAMILY, Family, Level, Source, rollup
from eras.domain.stats import (
    BrokenDown,
    Bucket,
    IdTotals,
    Totals,
    no_totals,
    summed_totals,
)
from eras.store.backend import Backend
from eras.store.levels import Part, choose
from eras.store.reads import Plan, Read, Rows, Shape, single
from eras.store.schema import ROLLUP_TABLES

# A filter without its values: the dimension and whether it lists several ids.
Filter = tuple[str, bool]
# The first and last instant of a range, which a total's times must lie between (levels, rule 4).
_INSIDE_FROM = "inside_from"
_INSIDE_UNTIL = "inside_until"


class PartShape(NamedTuple):
    """A part of a reading without its bounds' values."""

    rollup: str
    has_start: bool
    has_end: bool
    beside_totals: bool


@dataclass(frozen=True, slots=True)
class Reading:
    """What one statement reads: a family, its filters, the parts of its levels, what it
    groups by and whether it wants buckets. Everything but the bound values, so that statements
    are built once per reading and executed with the values bound."""

    family: str
    filters: tuple[Filter, ...]
    parts: tuple[PartShape, ...]
    by: tuple[str, ...]  # dimensions to group by, if any
    period: Period | None
    times: bool  # the latest classification time of each group too


def summed(column: ColumnElement[Any], name: str) -> Label[Any]:
    return cast(func.sum(column), BigInteger).label(name)


def _part_values(parts: Sequence[Part], backend: Backend) -> dict[str, Any]:
    """The bounds of each part, as the backend binds them."""
    values: dict[str, Any] = {}
    for index, part in enumerate(parts):
        if part.rollup.level is Level.TOTAL:
            # Bounds of a total are on its times: the range's first and last instant.
            if part.start is not None:
                values[_INSIDE_FROM] = backend.time_value(datetime.combine(part.start, time.min))
            if part.end is not None:
                values[_INSIDE_UNTIL] = backend.time_value(datetime.combine(part.end, time.max))
            continue
        if part.start is not None:
            values[f"start_{index}"] = backend.day_value(part.start)
        if part.end is not None:
            values[f"end_{index}"] = backend.day_value(part.end)
    return values


def _filtered(reading: Reading, backend: Backend, table: Any) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for dimension, many in reading.filters:
        column = table.c[dimension]
        if many:
            conditions.append(backend.one_of(column, dimension))
        else:
            conditions.append(column == bindparam(dimension))
    return conditions


def _parts_source(reading: Reading, backend: Backend) -> Any:
    """The rows of every part, under common names: the grouping dimension, ``period_day``,
    ``count``, ``session_ms``, ``last_at``."""
    family = FAMILY[reading.family]
    totals = (
        ROLLUP_TABLES[rollup(family.name, Level.TOTAL).name]
        if Level.TOTAL in family.levels
        else None
    )
    selects = []
    for index, (name, has_start, has_end, beside) in enumerate(reading.parts):
        table = ROLLUP_TABLES[name]
        rollup_period = next((column for column in ("day", "month") if column in table.c), None)
        columns: list[ColumnElement[Any]] = []
        columns.extend(table.c[name].label(name) for name in reading.by)
        if reading.period is not None:
            assert rollup_period is not None
            columns.append(table.c[rollup_period].label("period_day"))
        columns.append(table.c.count.label("count"))
        if family.source is not Source.COMMENTS:
            columns.append(table.c.session_ms.label("session_ms"))
        if reading.times:
            columns.append(table.c.last_at.label("last_at"))
        conditions = _filtered(reading, backend, table)
        if table is totals:
            # Rule 4 of the levels: the keys active only inside the range.
            if has_start:
                conditions.append(table.c.first_at >= bindparam(_INSIDE_FROM))
            if has_end:
                conditions.append(table.c.last_at <= bindparam(_INSIDE_UNTIL))
            selects.append(select(*columns).where(*conditions))
            continue
        if has_start:
            assert rollup_period is not None
            conditions.append(table.c[rollup_period] >= bindparam(f"start_{index}"))
        if has_end:
            assert rollup_period is not None
            conditions.append(table.c[rollup_period] <= bindparam(f"end_{index}"))
        part = select(*columns).where(*conditions)
        if beside:
            # Only the keys active outside the range as well, looked up from their totals, so
            # the days and months of the other keys are never read.
            assert totals is not None
            same_key = [table.c[name] == totals.c[name] for name in family.dimensions]
            part = backend.for_each(totals, part.where(*same_key)).where(
                *_filtered(reading, backend, totals), _outside(totals, reading.parts)
            )
        selects.append(part)
    if len(selects) == 1:
        return selects[0].subquery("parts")
    return union_all(*selects).subquery("parts")


def _outside(totals: Any, parts: Sequence[PartShape]) -> ColumnElement[bool]:
    """A total's key was active outside the range too (or its times are unknown)."""
    total_part = next(part for part in parts if part.rollup == totals.name)
    either = [totals.c.first_at.is_(None), totals.c.last_at.is_(None)]
    if total_part.has_start:
        either.append(totals.c.first_at < bindparam(_INSIDE_FROM))
    if total_part.has_end:
        either.append(totals.c.last_at > bindparam(_INSIDE_UNTIL))
    return or_(*either)


# Keyed by reading and backend: a few hundred statements at most.
_SHAPES: dict[tuple[Reading, type[Backend]], Shape] = {}


def _shape(reading: Reading, backend: Backend) -> Shape:
    key = (reading, type(backend))
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _SHAPES[key] = backend.compile_read(_build(reading, backend))
    return shape


def _build(reading: Reading, backend: Backend) -> Select[Any]:
    parts = _parts_source(reading, backend)
    has_session = "session_ms" in parts.c
    measures: list[ColumnElement[Any]] = [summed(parts.c.count, "total")]
    measures.append(
        summed(parts.c.session_ms, "session_ms") if has_session else literal(0).label("session_ms")
    )
    if reading.times:
        measures.append(func.max(parts.c.last_at).label("last_at"))
    if reading.by and reading.period is not None:
        grouping = [parts.c[name] for name in reading.by]
        bucket = backend.bucket(reading.period, parts.c.period_day).label("period")
        return (
            select(*grouping, bucket, *measures)
            .group_by(*grouping, bucket)
            .order_by(*grouping, bucket)
        )
    if reading.by:
        grouping = [parts.c[name] for name in reading.by]
        # Largest count first within the first dimensions; ties go to the lower id.
        return (
            select(*grouping, *measures)
            .group_by(*grouping)
            .order_by(*grouping[:-1], measures[0].desc(), grouping[-1])
        )
    if reading.period is None:
        return select(*measures)
    bucket = backend.bucket(reading.period, parts.c.period_day).label("period")
    return select(bucket, *measures).group_by(bucket).order_by(bucket)


class Group(msgspec.Struct, frozen=True, gc=False):
    """The sums of one value of the grouping dimension (a Struct: an answer makes one per
    project or member, and a frozen dataclass is several times slower to make)."""

    id: int
    count: int
    session_ms: int
    last_at: datetime | None


def read(
    backend: Backend,
    *,
    family: Family,
    filters: Mapping[str, Sequence[int]],
    dates: DateRange,
    period: Period | None = None,
    by: tuple[str, ...] = (),
    times: bool = False,
) -> Read:
    """The one statement of a reading, with its values."""
    filter_shape = tuple((dimension, len(ids) != 1) for dimension, ids in filters.items())
    shape, part_values = _statement(
        backend, family.name, dates.start, dates.end, filter_shape, by, period, times
    )
    values = dict(part_values)
    for dimension, ids in filters.items():
        values[dimension] = backend.ids_value(ids) if len(ids) != 1 else ids[0]
    return Read(shape, values)


# A front end asks the same few ranges all day: the statement and the bounds of a range are
# made once, and a request adds only its ids. Found by plain values: hashing the family and
# its parts (dataclasses of enums) cost more than the rest of making the read.
@lru_cache(maxsize=4096)
def _statement(
    backend: Backend,
    family: str,
    start: date | None,
    end: date | None,
    filters: tuple[Filter, ...],
    by: tuple[str, ...],
    period: Period | None,
    times: bool,
) -> tuple[Shape, Mapping[str, Any]]:
    parts = choose(FAMILY[family], DateRange(start, end), period)
    return _prepared(backend, family, filters, parts, by, period, times)


@lru_cache(maxsize=4096)
def _prepared(
    backend: Backend,
    family: str,
    filters: tuple[Filter, ...],
    parts: tuple[Part, ...],
    by: tuple[str, ...],
    period: Period | None,
    times: bool,
) -> tuple[Shape, Mapping[str, Any]]:
    reading = Reading(
        family=family,
        filters=filters,
        parts=tuple(
            PartShape(
                part.rollup.name, part.start is not None, part.end is not None, part.beside_totals
            )
            for part in parts
        ),
        by=by,
        period=period,
        times=times,
    )
    return _shape(reading, backend), MappingProxyType(_part_values(parts, backend))


def groups(
    backend: Backend,
    *,
    family: Family,
    filters: Mapping[str, Sequence[int]],
    dates: DateRange,
    by: str,
    times: bool = False,
) -> Plan[list[Group]]:
    """Sums per value of ``by`` over the range (no buckets), largest count first."""

    def answer(rows: Rows) -> list[Group]:
        return [
            Group(
                id=row[0],
                count=row.total,
                session_ms=row.session_ms or 0,
                last_at=_as_datetime(row.last_at) if times else None,
            )
            for row in rows
        ]

    return single(
        read(backend, family=family, filters=filters, dates=dates, by=(by,), times=times), answer
    )


def _as_datetime(value: datetime | str | None) -> datetime | None:
    # SQLite gives times back as the stored text.
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def totals(
    backend: Backend,
    *,
    family: Family,
    filters: Mapping[str, Sequence[int]],
    dates: DateRange,
    period: Period | None,
) -> Plan[Totals]:
    """Sum a family over the filters and dates, bucketed by ``period`` when one is given.

    Rows whose count reaches zero are deleted at ingest, so every bucket returned is non-empty.
    """

    def answer(rows: Rows) -> Totals:
        if period is None:
            row = rows[0]
            return Totals(count=row.total or 0, session_ms=row.session_ms or 0, buckets=None)
        buckets = tuple(
            Bucket(start=_as_date(row.period), count=row.total, session_ms=row.session_ms or 0)
            for row in rows
        )
        return Totals(
            count=sum(item.count for item in buckets),
            session_ms=sum(item.session_ms for item in buckets),
            buckets=buckets,
        )

    return single(read(backend, family=family, filters=filters, dates=dates, period=period), answer)


def broken_down(
    backend: Backend,
    *,
    family: Family,
    filters: Mapping[str, Sequence[int]],
    dates: DateRange,
    period: Period | None,
    by: str,
) -> Plan[dict[int, Totals]]:
    """:func:`totals` for each value of ``by`` that has any, from one statement."""

    def answer(rows: Rows) -> dict[int, Totals]:
        if period is None:
            return {
                row[0]: Totals(count=row.total, session_ms=row.session_ms or 0, buckets=None)
                for row in rows
            }
        # One pass: the rows come ordered by id, then bucket.
        found: dict[int, Totals] = {}
        key: int | None = None
        buckets: list[Bucket] = []
        count = session_ms = 0
        for row in rows:
            if row[0] != key:
                if key is not None:
                    found[key] = Totals(count=count, session_ms=session_ms, buckets=tuple(buckets))
                key, buckets, count, session_ms = row[0], [], 0, 0
            spent = row.session_ms or 0
            buckets.append(Bucket(start=_as_date(row.period), count=row.total, session_ms=spent))
            count += row.total
            session_ms += spent
        if key is not None:
            found[key] = Totals(count=count, session_ms=session_ms, buckets=tuple(buckets))
        return found

    return single(
        read(backend, family=family, filters=filters, dates=dates, period=period, by=(by,)),
        answer,
    )


def _as_date(value: date | str) -> date:
    # SQLite gives a union's DATE column back as the stored text.
    return value if isinstance(value, date) else date.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class Scoped:
    """The families answering one question, unfiltered or narrowed by project or workflow."""

    unfiltered: str
    by_project: str
    by_workflow: str

    def scoped(
        self, params: CountParams, fixed: Mapping[str, tuple[int, ...]] | None = None
    ) -> tuple[Family, dict[str, tuple[int, ...]]]:
        """The family to read and its filters: ``fixed`` ones plus the listed ids."""
        filters = dict(fixed or {})
        if params.workflow_ids:
            filters["workflow_id"] = params.workflow_ids
            return FAMILY[self.by_workflow], filters
        if params.project_ids:
            filters["project_id"] = params.project_ids
            return FAMILY[self.by_project], filters
        return FAMILY[self.unfiltered], filters


CLASSIFICATIONS = Scoped("classification", "classification_project", "classification_workflow")
USER_CLASSIFICATIONS = Scoped(
    "classification_user", "classification_user_project", "classification_user_workflow"
)
GROUP_CLASSIFICATIONS = Scoped("group", "group_project", "group_workflow")
GROUP_MEMBER_CLASSIFICATIONS = Scoped("group_user", "group_user_project", "group_user_workflow")


def family_totals(
    backend: Backend,
    scoped: Scoped,
    params: CountParams,
    fixed: Mapping[str, tuple[int, ...]] | None = None,
) -> Plan[Totals]:
    family, filters = scoped.scoped(params, fixed)
    return totals(
        backend,
        family=family,
        filters=filters,
        dates=params.dates,
        period=params.period,
    )


def classification_totals(backend: Backend, params: CountParams) -> Plan[Totals]:
    """All classifications, or those of the listed workflows or projects (summed)."""
    return family_totals(backend, CLASSIFICATIONS, params)


def comment_totals(
    backend: Backend, params: CountParams, *, user_ids: tuple[int, ...]
) -> Plan[Totals]:
    """Comments, optionally of the listed projects and/or users (summed)."""
    filters: dict[str, tuple[int, ...]] = {}
    if params.project_ids:
        filters["project_id"] = params.project_ids
    if user_ids:
        filters["user_id"] = user_ids
    family = {
        (): "comment",
        ("project_id",): "comment_project",
        ("user_id",): "comment_user",
        ("project_id", "user_id"): "comment_project_user",
    }[tuple(filters)]
    return totals(
        backend,
        family=FAMILY[family],
        filters=filters,
        dates=params.dates,
        period=params.period,
    )


def _breakdown(
    backend: Backend,
    *,
    family: Family,
    filters: dict[str, tuple[int, ...]],
    params: CountParams,
    by: str,
) -> Plan[BrokenDown]:
    ids = filters[by]
    bucketed = params.period is not None

    def answer(found: dict[int, Totals]) -> BrokenDown:
        entries = tuple(IdTotals(id, found.get(id, no_totals(bucketed))) for id in ids)
        return BrokenDown(
            by=by,
            totals=summed_totals([entry.totals for entry in entries], bucketed),
            entries=entries,
        )

    return broken_down(
        backend, family=family, filters=filters, dates=params.dates, period=params.period, by=by
    ).then(answer)


def classification_breakdown(backend: Backend, params: CountParams) -> Plan[BrokenDown]:
    """The classifications of each listed workflow or project, and their sum."""
    family, filters = CLASSIFICATIONS.scoped(params)
    by = "workflow_id" if params.workflow_ids else "project_id"
    return _breakdown(backend, family=family, filters=filters, params=params, by=by)


def comment_breakdown(
    backend: Backend, params: CountParams, *, user_ids: tuple[int, ...]
) -> Plan[BrokenDown]:
    """The comments of each listed project, or of each listed user, and their sum."""
    if user_ids:
        family, filters, by = FAMILY["comment_user"], {"user_id": user_ids}, "user_id"
    else:
        family, filters, by = (
            FAMILY["comment_project"],
            {"project_id": params.project_ids},
            "project_id",
        )
    return _breakdown(backend, family=family, filters=filters, params=params, by=by)

"""Counts over the rollups: one aggregate statement per answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Connection, Select, Table, bindparam, cast, func, select
from sqlalchemy.sql.elements import ColumnElement, Label

from eras.domain.query import CountParams, DateRange, Period
from eras.domain.stats import Bucket, Totals
from eras.store.backend import Backend
from eras.store.schema import ROLLUP_TABLES

# How a query is narrowed, without the values: each filtered dimension and whether it lists
# several ids, then whether the range has a start and an end. Statements are built once per
# shape and table, and executed with the values bound, which skips rebuilding and re-hashing
# the statement on every request.
Shape = tuple[tuple[tuple[str, bool], ...], bool, bool]


@dataclass(frozen=True, slots=True)
class Scope:
    shape: Shape
    values: dict[str, Any]


def scope_of(filters: Mapping[str, Sequence[int]], dates: DateRange) -> Scope:
    dimensions: list[tuple[str, bool]] = []
    values: dict[str, Any] = {}
    for dimension, ids in filters.items():
        many = len(ids) != 1
        dimensions.append((dimension, many))
        values[dimension] = list(ids) if many else ids[0]
    if dates.start is not None:
        values["start_day"] = dates.start
    if dates.end is not None:
        values["end_day"] = dates.end
    return Scope((tuple(dimensions), dates.start is not None, dates.end is not None), values)


def scope_conditions(table: Table, shape: Shape) -> list[ColumnElement[bool]]:
    """The WHERE clause of ``shape``, with a bound parameter for every value."""
    dimensions, has_start, has_end = shape
    conditions: list[ColumnElement[bool]] = []
    for dimension, many in dimensions:
        column = table.c[dimension]
        if many:
            conditions.append(column.in_(bindparam(dimension, expanding=True)))
        else:
            conditions.append(column == bindparam(dimension))
    if has_start:
        conditions.append(table.c.day >= bindparam("start_day"))
    if has_end:
        conditions.append(table.c.day <= bindparam("end_day"))
    return conditions


def summed(column: ColumnElement[Any], name: str) -> Label[Any]:
    return cast(func.sum(column), BigInteger).label(name)


# Keyed by table, shape, period and backend: a few hundred statements at most.
_TOTALS_STATEMENTS: dict[tuple[str, Shape, Period | None, type[Backend]], Select[Any]] = {}


def _totals_statement(
    table: Table, shape: Shape, period: Period | None, backend: Backend
) -> Select[Any]:
    key = (table.name, shape, period, type(backend))
    statement = _TOTALS_STATEMENTS.get(key)
    if statement is None:
        statement = _TOTALS_STATEMENTS[key] = _build_totals_statement(table, shape, period, backend)
    return statement


def _build_totals_statement(
    table: Table, shape: Shape, period: Period | None, backend: Backend
) -> Select[Any]:
    measures = [summed(table.c.count, "total")]
    if "session_ms" in table.c:
        measures.append(summed(table.c.session_ms, "session_ms"))
    conditions = scope_conditions(table, shape)
    if period is None:
        return select(*measures).where(*conditions)
    bucket = backend.bucket(period, table.c.day).label("period")
    return select(bucket, *measures).where(*conditions).group_by(bucket).order_by(bucket)


def rollup_totals(
    connection: Connection,
    backend: Backend,
    *,
    table: Table,
    filters: Mapping[str, Sequence[int]],
    dates: DateRange,
    period: Period | None,
) -> Totals:
    """Sum a rollup over the filters and dates, bucketed by ``period`` when one is given.

    Rows whose count reaches zero are deleted at ingest, so every bucket returned is non-empty.
    """
    has_session = "session_ms" in table.c
    scope = scope_of(filters, dates)
    statement = _totals_statement(table, scope.shape, period, backend)
    if period is None:
        row = connection.execute(statement, scope.values).one()
        return Totals(
            count=row.total or 0,
            session_ms=(row.session_ms or 0) if has_session else 0,
            buckets=None,
        )
    buckets = tuple(
        Bucket(
            start=row.period,
            count=row.total,
            session_ms=row.session_ms if has_session else 0,
        )
        for row in connection.execute(statement, scope.values)
    )
    return Totals(
        count=sum(item.count for item in buckets),
        session_ms=sum(item.session_ms for item in buckets),
        buckets=buckets,
    )


@dataclass(frozen=True, slots=True)
class RollupFamily:
    """The rollups answering one question, unfiltered or narrowed by project or workflow."""

    unfiltered: str
    by_project: str
    by_workflow: str

    def scoped(
        self, params: CountParams, fixed: Mapping[str, tuple[int, ...]] | None = None
    ) -> tuple[Table, dict[str, tuple[int, ...]]]:
        """The rollup table to read and its filters: ``fixed`` ones plus the listed ids."""
        filters = dict(fixed or {})
        if params.workflow_ids:
            filters["workflow_id"] = params.workflow_ids
            return ROLLUP_TABLES[self.by_workflow], filters
        if params.project_ids:
            filters["project_id"] = params.project_ids
            return ROLLUP_TABLES[self.by_project], filters
        return ROLLUP_TABLES[self.unfiltered], filters


CLASSIFICATIONS = RollupFamily(
    "classification_daily", "classification_project_daily", "classification_workflow_daily"
)
USER_CLASSIFICATIONS = RollupFamily(
    "classification_user_daily",
    "classification_user_project_daily",
    "classification_user_workflow_daily",
)
GROUP_CLASSIFICATIONS = RollupFamily("group_daily", "group_project_daily", "group_workflow_daily")
GROUP_MEMBER_CLASSIFICATIONS = RollupFamily(
    "group_user_daily", "group_user_project_daily", "group_user_workflow_daily"
)


def family_totals(
    connection: Connection,
    backend: Backend,
    family: RollupFamily,
    params: CountParams,
    fixed: Mapping[str, tuple[int, ...]] | None = None,
) -> Totals:
    table, filters = family.scoped(params, fixed)
    return rollup_totals(
        connection, backend, table=table, filters=filters, dates=params.dates, period=params.period
    )


def classification_totals(connection: Connection, backend: Backend, params: CountParams) -> Totals:
    """All classifications, or those of the listed workflows or projects (summed)."""
    return family_totals(connection, backend, CLASSIFICATIONS, params)


def comment_totals(
    connection: Connection,
    backend: Backend,
    params: CountParams,
    *,
    user_ids: tuple[int, ...],
) -> Totals:
    """Comments, optionally of the listed projects and/or users (summed)."""
    filters: dict[str, tuple[int, ...]] = {}
    if params.project_ids:
        filters["project_id"] = params.project_ids
    if user_ids:
        filters["user_id"] = user_ids
    table = {
        (): "comment_daily",
        ("project_id",): "comment_project_daily",
        ("user_id",): "comment_user_daily",
        ("project_id", "user_id"): "comment_project_user_daily",
    }[tuple(filters)]
    return rollup_totals(
        connection,
        backend,
        table=ROLLUP_TABLES[table],
        filters=filters,
        dates=params.dates,
        period=params.period,
    )

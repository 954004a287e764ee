"""A volunteer's own numbers, from the per-user rollups."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Select, func, select

from eras.domain.query import ContributionOrder, DateRange, Period, UserStatsParams, bucket_start
from eras.domain.stats import ProjectContribution, Totals, UserStats
from eras.store.backend import Backend
from eras.store.queries.counts import (
    USER_CLASSIFICATIONS,
    Shape,
    family_totals,
    scope_conditions,
    scope_of,
    summed,
)
from eras.store.schema import ROLLUP_TABLES


def user_totals(
    connection: Connection, backend: Backend, *, user_id: int, params: UserStatsParams
) -> Totals:
    return family_totals(
        connection, backend, USER_CLASSIFICATIONS, params.counts, {"user_id": (user_id,)}
    )


@lru_cache(maxsize=64)
def _contributions_statement(shape: Shape) -> Select[Any]:
    table = ROLLUP_TABLES["classification_user_project_daily"]
    return (
        select(
            table.c.project_id,
            summed(table.c.count, "total"),
            summed(table.c.session_ms, "session_ms"),
            func.max(table.c.day).label("last_day"),
        )
        .where(*scope_conditions(table, shape))
        .group_by(table.c.project_id)
    )


def project_contributions(
    connection: Connection, *, user_id: int, dates: DateRange
) -> list[ProjectContribution]:
    """Per project: classifications, session time and the last day with one, in the range."""
    scope = scope_of({"user_id": (user_id,)}, dates)
    return [
        ProjectContribution(
            project_id=row.project_id,
            count=row.total,
            session_ms=row.session_ms,
            last_day=_as_date(row.last_day),
        )
        for row in connection.execute(_contributions_statement(scope.shape), scope.values)
    ]


def _as_date(value: date | str) -> date:
    # SQLite's max() over a DATE column returns the stored text, not a date.
    return value if isinstance(value, date) else date.fromisoformat(value)


def order_contributions(
    contributions: list[ProjectContribution], order: ContributionOrder, period: Period | None
) -> list[ProjectContribution]:
    """Largest count first; or, for ``recents``, the project with the latest bucket first.

    Recency is judged by bucket, as the original does: with ``period=year`` (also the default)
    all projects of the latest year tie, and ties go to the larger count, then the lower id.
    """
    if order is ContributionOrder.COUNT:
        return sorted(contributions, key=lambda item: (-item.count, item.project_id))
    granularity = period or Period.YEAR
    return sorted(
        contributions,
        key=lambda item: (
            -bucket_start(item.last_day, granularity).toordinal(),
            -item.count,
            item.project_id,
        ),
    )


def user_stats(
    connection: Connection, backend: Backend, *, user_id: int, params: UserStatsParams
) -> UserStats:
    totals = user_totals(connection, backend, user_id=user_id, params=params)
    contributions = None
    if params.project_contributions:
        contributions = order_contributions(
            project_contributions(connection, user_id=user_id, dates=params.counts.dates),
            params.order_by,
            params.counts.period,
        )
    return UserStats(totals=totals, project_contributions=contributions)

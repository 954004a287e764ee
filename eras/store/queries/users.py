"""A volunteer's own numbers, from the per-user rollups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from eras.domain.query import DateRange, UserStatsParams
from eras.domain.rollups import FAMILY
from eras.domain.stats import (
    ProjectContribution,
    Totals,
    UserStats,
    order_contributions,
    to_millisecond,
)
from eras.store.backend import Backend
from eras.store.queries.counts import USER_CLASSIFICATIONS, family_totals, groups


def user_totals(
    connection: Connection, backend: Backend, *, user_id: int, params: UserStatsParams
) -> Totals:
    return family_totals(
        connection, backend, USER_CLASSIFICATIONS, params.counts, {"user_id": (user_id,)}
    )


def project_contributions(
    connection: Connection, backend: Backend, *, user_id: int, dates: DateRange
) -> list[ProjectContribution]:
    """Per project: classifications, session time and the latest classification, in the range."""
    return [
        ProjectContribution(
            project_id=group.id,
            count=group.count,
            session_ms=group.session_ms,
            last_at=to_millisecond(_latest(group.last_at)),
        )
        for group in groups(
            connection,
            backend,
            family=FAMILY["classification_user_project"],
            filters={"user_id": (user_id,)},
            dates=dates,
            by="project_id",
            times=True,
        )
    ]


def _latest(value: datetime | None) -> datetime:
    # Every row of the volunteer-by-project family carries its times.
    assert value is not None
    return value


def user_stats(
    connection: Connection, backend: Backend, *, user_id: int, params: UserStatsParams
) -> UserStats:
    totals = user_totals(connection, backend, user_id=user_id, params=params)
    contributions = None
    if params.project_contributions:
        contributions = order_contributions(
            project_contributions(connection, backend, user_id=user_id, dates=params.counts.dates),
            params.order_by,
        )
    return UserStats(totals=totals, project_contributions=contributions)

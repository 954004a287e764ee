"""The read side: each answer from one snapshot of the rollups, read by the database's reader."""

from __future__ import annotations

from datetime import UTC, datetime

from eras.domain.activity import BusiestProjects, ProjectWorkflows, RejectionSummary, recent_days
from eras.domain.query import CountParams, GroupStatsParams, UserStatsParams
from eras.domain.stats import BrokenDown, GroupAggregate, MemberStats, Totals, UserStats
from eras.store.database import Database
from eras.store.queries import activity
from eras.store.queries.counts import (
    classification_breakdown,
    classification_totals,
    comment_breakdown,
    comment_totals,
)
from eras.store.queries.groups import group_aggregate, member_breakdown
from eras.store.queries.users import user_stats


async def classification_counts(database: Database, params: CountParams) -> Totals:
    return await database.answer(classification_totals(database.backend, params))


async def classification_counts_by_id(database: Database, params: CountParams) -> BrokenDown:
    return await database.answer(classification_breakdown(database.backend, params))


async def comment_counts(
    database: Database, params: CountParams, user_ids: tuple[int, ...]
) -> Totals:
    return await database.answer(comment_totals(database.backend, params, user_ids=user_ids))


async def comment_counts_by_id(
    database: Database, params: CountParams, user_ids: tuple[int, ...]
) -> BrokenDown:
    return await database.answer(comment_breakdown(database.backend, params, user_ids=user_ids))


async def volunteer_stats(database: Database, user_id: int, params: UserStatsParams) -> UserStats:
    return await database.answer(user_stats(database.backend, user_id=user_id, params=params))


async def group_stats(
    database: Database, group_id: int, params: GroupStatsParams
) -> GroupAggregate:
    return await database.answer(
        group_aggregate(database.backend, group_id=group_id, params=params)
    )


async def group_member_stats(
    database: Database, group_id: int, params: GroupStatsParams
) -> list[MemberStats]:
    return await database.answer(
        member_breakdown(database.backend, group_id=group_id, dates=params.counts.dates)
    )


async def busiest_projects(database: Database, *, days: int, limit: int) -> BusiestProjects:
    """The projects with the most classifications over the last ``days`` UTC days, today's
    included."""
    dates = recent_days(datetime.now(UTC).date(), days)
    return await database.answer(
        activity.busiest_projects(database.backend, dates=dates, limit=limit)
    )


async def project_workflows(database: Database, project_id: int, *, days: int) -> ProjectWorkflows:
    """The workflows found in the project's classifications, with their last ``days`` days."""
    recent = recent_days(datetime.now(UTC).date(), days)
    return await database.answer(
        activity.project_workflows(
            database.backend, project_id=project_id, recent=recent, days=days
        )
    )


async def rejections(database: Database, *, latest: int) -> RejectionSummary:
    return await database.answer(activity.rejection_summary(database.backend, latest=latest))

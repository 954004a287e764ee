"""The read side: each answer from one read transaction (one snapshot) of the rollups."""

from __future__ import annotations

from eras.domain.query import CountParams, GroupStatsParams, UserStatsParams
from eras.domain.stats import BrokenDown, GroupAggregate, MemberStats, Totals, UserStats
from eras.store.database import Database
from eras.store.queries.counts import (
    classification_breakdown,
    classification_totals,
    comment_breakdown,
    comment_totals,
)
from eras.store.queries.groups import group_aggregate, member_breakdown
from eras.store.queries.users import user_stats


def classification_counts(database: Database, params: CountParams) -> Totals:
    with database.read() as connection:
        return classification_totals(connection, database.backend, params)


def classification_counts_by_id(database: Database, params: CountParams) -> BrokenDown:
    with database.read() as connection:
        return classification_breakdown(connection, database.backend, params)


def comment_counts_by_id(
    database: Database, params: CountParams, user_ids: tuple[int, ...]
) -> BrokenDown:
    with database.read() as connection:
        return comment_breakdown(connection, database.backend, params, user_ids=user_ids)


def comment_counts(database: Database, params: CountParams, user_ids: tuple[int, ...]) -> Totals:
    with database.read() as connection:
        return comment_totals(connection, database.backend, params, user_ids=user_ids)


def volunteer_stats(database: Database, user_id: int, params: UserStatsParams) -> UserStats:
    with database.read() as connection:
        return user_stats(connection, database.backend, user_id=user_id, params=params)


def group_stats(database: Database, group_id: int, params: GroupStatsParams) -> GroupAggregate:
    with database.read() as connection:
        return group_aggregate(connection, database.backend, group_id=group_id, params=params)


def group_member_stats(
    database: Database, group_id: int, params: GroupStatsParams
) -> list[MemberStats]:
    with database.read() as connection:
        return member_breakdown(
            connection, database.backend, group_id=group_id, dates=params.counts.dates
        )

"""A user group's numbers, from the group rollups only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Select, Table, select

from eras.domain.query import DateRange, GroupStatsParams
from eras.domain.stats import Contribution, GroupAggregate, MemberStats
from eras.store.backend import Backend
from eras.store.queries.counts import (
    GROUP_CLASSIFICATIONS,
    GROUP_MEMBER_CLASSIFICATIONS,
    Shape,
    family_totals,
    scope_conditions,
    scope_of,
    summed,
)
from eras.store.schema import ROLLUP_TABLES


@lru_cache(maxsize=256)
def _ranked_statement(table: Table, dimension: str, shape: Shape) -> Select[Any]:
    total = summed(table.c.count, "total")
    return (
        select(table.c[dimension].label("id"), total, summed(table.c.session_ms, "session_ms"))
        .where(*scope_conditions(table, shape))
        .group_by(table.c[dimension])
        .order_by(total.desc(), table.c[dimension])
    )


def _ranked(
    connection: Connection,
    table: Table,
    dimension: str,
    filters: Mapping[str, Sequence[int]],
    dates: DateRange,
) -> list[Contribution]:
    """Sum per ``dimension`` value, largest count first (ties: lowest id first)."""
    scope = scope_of(filters, dates)
    return [
        Contribution(id=row.id, count=row.total, session_ms=row.session_ms)
        for row in connection.execute(
            _ranked_statement(table, dimension, scope.shape), scope.values
        )
    ]


def group_aggregate(
    connection: Connection, backend: Backend, *, group_id: int, params: GroupStatsParams
) -> GroupAggregate:
    counts = params.counts
    group: dict[str, tuple[int, ...]] = {"user_group_id": (group_id,)}
    totals = family_totals(connection, backend, GROUP_CLASSIFICATIONS, counts, group)
    # Every member with a counted classification in scope, largest first: its length is the
    # number of active users, and its head the top contributors.
    members_table, scope = GROUP_MEMBER_CLASSIFICATIONS.scoped(counts, group)
    members = _ranked(connection, members_table, "user_id", scope, counts.dates)
    projects = None
    if not (counts.project_ids or counts.workflow_ids):
        projects = _ranked(
            connection, ROLLUP_TABLES["group_project_daily"], "project_id", group, counts.dates
        )
    top = None if params.top_contributors is None else members[: params.top_contributors]
    return GroupAggregate(
        totals=totals,
        active_users=len(members),
        project_contributions=projects,
        top_contributors=top,
    )


@lru_cache(maxsize=16)
def _member_projects_statement(shape: Shape) -> Select[Any]:
    table = ROLLUP_TABLES["group_user_project_daily"]
    total = summed(table.c.count, "total")
    return (
        select(table.c.user_id, table.c.project_id, total, summed(table.c.session_ms, "session_ms"))
        .where(*scope_conditions(table, shape))
        .group_by(table.c.user_id, table.c.project_id)
        .order_by(table.c.user_id, total.desc(), table.c.project_id)
    )


def member_breakdown(
    connection: Connection, *, group_id: int, dates: DateRange
) -> list[MemberStats]:
    """Each member's totals and projects, members and projects largest first."""
    group = {"user_group_id": (group_id,)}
    members = _ranked(connection, ROLLUP_TABLES["group_user_daily"], "user_id", group, dates)
    scope = scope_of(group, dates)
    statement = _member_projects_statement(scope.shape)
    projects: dict[int, list[Contribution]] = defaultdict(list)
    for row in connection.execute(statement, scope.values):
        projects[row.user_id].append(
            Contribution(id=row.project_id, count=row.total, session_ms=row.session_ms)
        )
    return [
        MemberStats(
            user_id=member.id,
            count=member.count,
            session_ms=member.session_ms,
            projects=projects[member.id],
        )
        for member in members
    ]

"""A user group's numbers, from the group rollups only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection

from eras.domain.query import DateRange, GroupStatsParams
from eras.domain.rollups import FAMILY, Family
from eras.domain.stats import Contribution, GroupAggregate, MemberStats
from eras.store.backend import Backend
from eras.store.queries.counts import (
    GROUP_CLASSIFICATIONS,
    GROUP_MEMBER_CLASSIFICATIONS,
    family_totals,
    groups,
    read,
)


def _ranked(
    connection: Connection,
    backend: Backend,
    family: Family,
    dimension: str,
    filters: Mapping[str, Sequence[int]],
    dates: DateRange,
) -> list[Contribution]:
    """Sum per ``dimension`` value, largest count first (ties: lowest id first)."""
    return [
        Contribution(id=group.id, count=group.count, session_ms=group.session_ms)
        for group in groups(
            connection, backend, family=family, filters=filters, dates=dates, by=dimension
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
    members_family, scope = GROUP_MEMBER_CLASSIFICATIONS.scoped(counts, group)
    members = _ranked(connection, backend, members_family, "user_id", scope, counts.dates)
    projects = None
    if not (counts.project_ids or counts.workflow_ids):
        projects = _ranked(
            connection, backend, FAMILY["group_project"], "project_id", group, counts.dates
        )
    top = None if params.top_contributors is None else members[: params.top_contributors]
    return GroupAggregate(
        totals=totals,
        active_users=len(members),
        project_contributions=projects,
        top_contributors=top,
    )


def member_breakdown(
    connection: Connection, backend: Backend, *, group_id: int, dates: DateRange
) -> list[MemberStats]:
    """Each member's totals and projects, members and projects largest first."""
    group = {"user_group_id": (group_id,)}
    members = _ranked(connection, backend, FAMILY["group_user"], "user_id", group, dates)
    projects: dict[int, list[Contribution]] = defaultdict(list)
    rows = read(
        connection,
        backend,
        family=FAMILY["group_user_project"],
        filters=group,
        dates=dates,
        by=("user_id", "project_id"),
    )
    for row in rows:
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

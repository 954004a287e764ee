"""A user group's numbers, from the group rollups only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from eras.domain.query import DateRange, GroupStatsParams
from eras.domain.rollups import FAMILY, Family
from eras.domain.stats import Contribution, GroupAggregate, MemberStats, Totals
from eras.store.backend import Backend
from eras.store.queries.counts import (
    GROUP_CLASSIFICATIONS,
    GROUP_MEMBER_CLASSIFICATIONS,
    Group,
    family_totals,
    groups,
    read,
)
from eras.store.reads import Plan, Rows, combined, nothing, single


def _ranked(
    backend: Backend,
    family: Family,
    dimension: str,
    filters: Mapping[str, Sequence[int]],
    dates: DateRange,
) -> Plan[list[Contribution]]:
    """Sum per ``dimension`` value, largest count first (ties: lowest id first)."""

    def answer(found: list[Group]) -> list[Contribution]:
        return [
            Contribution(id=group.id, count=group.count, session_ms=group.session_ms)
            for group in found
        ]

    return groups(backend, family=family, filters=filters, dates=dates, by=dimension).then(answer)


def group_aggregate(
    backend: Backend, *, group_id: int, params: GroupStatsParams
) -> Plan[GroupAggregate]:
    counts = params.counts
    group: dict[str, tuple[int, ...]] = {"user_group_id": (group_id,)}
    totals = family_totals(backend, GROUP_CLASSIFICATIONS, counts, group)
    # Every member with a counted classification in scope, largest first: its length is the
    # number of active users, and its head the top contributors.
    members_family, scope = GROUP_MEMBER_CLASSIFICATIONS.scoped(counts, group)
    members = _ranked(backend, members_family, "user_id", scope, counts.dates)
    projects: Plan[list[Contribution] | None] = nothing(None)
    if not (counts.project_ids or counts.workflow_ids):
        projects = _ranked(backend, FAMILY["group_project"], "project_id", group, counts.dates)

    def answer(
        found: tuple[tuple[Totals, list[Contribution]], list[Contribution] | None],
    ) -> GroupAggregate:
        (summed, ranked), listed = found
        top = None if params.top_contributors is None else ranked[: params.top_contributors]
        return GroupAggregate(
            totals=summed,
            active_users=len(ranked),
            project_contributions=listed,
            top_contributors=top,
        )

    return combined(combined(totals, members), projects).then(answer)


def member_breakdown(
    backend: Backend, *, group_id: int, dates: DateRange
) -> Plan[list[MemberStats]]:
    """Each member's totals and projects, members and projects largest first."""
    group = {"user_group_id": (group_id,)}
    members = _ranked(backend, FAMILY["group_user"], "user_id", group, dates)

    def by_member(rows: Rows) -> dict[int, list[Contribution]]:
        projects: dict[int, list[Contribution]] = defaultdict(list)
        for row in rows:
            projects[row.user_id].append(
                Contribution(id=row.project_id, count=row.total, session_ms=row.session_ms)
            )
        return projects

    projects = single(
        read(
            backend,
            family=FAMILY["group_user_project"],
            filters=group,
            dates=dates,
            by=("user_id", "project_id"),
        ),
        by_member,
    )

    def answer(
        found: tuple[list[Contribution], dict[int, list[Contribution]]],
    ) -> list[MemberStats]:
        ranked, of_member = found
        return [
            MemberStats(
                user_id=member.id,
                count=member.count,
                session_ms=member.session_ms,
                projects=of_member.get(member.id, []),
            )
            for member in ranked
        ]

    return combined(members, projects).then(answer)

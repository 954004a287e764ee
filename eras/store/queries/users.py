"""A volunteer's own numbers, from the per-user rollups."""

from __future__ import annotations

from datetime import datetime

from eras.domain.query import ContributionOrder, DateRange, UserStatsParams
from eras.domain.rollups import FAMILY
from eras.domain.stats import (
    ProjectContribution,
    UserStats,
    order_contributions,
    to_millisecond,
)
from eras.store.backend import Backend
from eras.store.queries.counts import USER_CLASSIFICATIONS, Group, family_totals, groups
from eras.store.reads import Plan, combined, nothing


def project_contributions(
    backend: Backend, *, user_id: int, dates: DateRange, times: bool
) -> Plan[list[ProjectContribution]]:
    """Per project: classifications and session time in the range, and with ``times`` the
    latest classification too (parsing a time per project is most of what a busy volunteer's
    list costs in Python, and only the recents order uses it)."""

    def answer(found: list[Group]) -> list[ProjectContribution]:
        return [
            ProjectContribution(
                project_id=group.id,
                count=group.count,
                session_ms=group.session_ms,
                last_at=to_millisecond(_latest(group.last_at)) if times else None,
            )
            for group in found
        ]

    return groups(
        backend,
        family=FAMILY["classification_user_project"],
        filters={"user_id": (user_id,)},
        dates=dates,
        by="project_id",
        times=times,
    ).then(answer)


def _latest(value: datetime | None) -> datetime:
    # Every row of the volunteer-by-project family carries its times.
    assert value is not None
    return value


def user_stats(backend: Backend, *, user_id: int, params: UserStatsParams) -> Plan[UserStats]:
    totals = family_totals(backend, USER_CLASSIFICATIONS, params.counts, {"user_id": (user_id,)})
    contributions: Plan[list[ProjectContribution] | None] = nothing(None)
    if params.project_contributions:
        contributions = project_contributions(
            backend,
            user_id=user_id,
            dates=params.counts.dates,
            times=params.order_by is ContributionOrder.RECENTS,
        ).then(lambda found: order_contributions(found, params.order_by))
    return combined(totals, contributions).then(
        lambda both: UserStats(totals=both[0], project_contributions=both[1])
    )

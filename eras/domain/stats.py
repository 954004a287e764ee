"""What the read queries answer, before it is written out as JSON.

Structs rather than dataclasses: an answer builds one per row it reads (a broken-down answer
hundreds), and a frozen Struct is made about ten times faster than a frozen dataclass."""

from __future__ import annotations

from datetime import UTC, date, datetime

import msgspec

from eras.domain.query import ContributionOrder


class Bucket(msgspec.Struct, frozen=True, gc=False):
    start: date
    count: int
    session_ms: int = 0


class Totals(msgspec.Struct, frozen=True, gc=False):
    count: int
    session_ms: int
    buckets: tuple[Bucket, ...] | None  # None when no period was asked for


class ProjectContribution(msgspec.Struct, frozen=True, gc=False):
    project_id: int
    count: int
    session_ms: int
    # The latest classification of the range, UTC, to the millisecond: read only for the
    # recents order, the one answer that shows it or orders by it.
    last_at: datetime | None = None

    def latest(self) -> datetime:
        if self.last_at is None:
            raise ValueError(f"project {self.project_id}: its latest time was not read")
        return self.last_at


def to_millisecond(moment: datetime) -> datetime:
    """``moment`` in naive UTC, to the millisecond: what the answers show of a time, so what
    orders by it too."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def order_contributions(
    contributions: list[ProjectContribution], order: ContributionOrder
) -> list[ProjectContribution]:
    """Largest count first; or, for ``recents``, the latest classification first. Ties go to
    the larger count, then the lower id."""
    ranked = sorted(contributions, key=lambda item: (-item.count, item.project_id))
    if order is ContributionOrder.RECENTS:
        # Stable, also in reverse: equal times keep the count order.
        ranked.sort(key=ProjectContribution.latest, reverse=True)
    return ranked


class UserStats(msgspec.Struct, frozen=True, gc=False):
    totals: Totals
    project_contributions: list[ProjectContribution] | None


class Contribution(msgspec.Struct, frozen=True, gc=False):
    """Classifications and session time of one project or one member."""

    id: int
    count: int
    session_ms: int


class GroupAggregate(msgspec.Struct, frozen=True, gc=False):
    totals: Totals
    active_users: int
    project_contributions: list[Contribution] | None
    top_contributors: list[Contribution] | None


class MemberStats(msgspec.Struct, frozen=True, gc=False):
    user_id: int
    count: int
    session_ms: int
    projects: list[Contribution]


class IdTotals(msgspec.Struct, frozen=True, gc=False):
    """One listed id's share of a broken-down answer."""

    id: int
    totals: Totals


class BrokenDown(msgspec.Struct, frozen=True, gc=False):
    """An answer summed over the listed ids (``totals``) and given for each of them, in the
    order they were listed."""

    by: str  # the parameter the ids came in: project_id, workflow_id or user_id
    totals: Totals
    entries: tuple[IdTotals, ...]


_NONE_BUCKETED = Totals(count=0, session_ms=0, buckets=())
_NONE = Totals(count=0, session_ms=0, buckets=None)


def no_totals(bucketed: bool) -> Totals:
    return _NONE_BUCKETED if bucketed else _NONE


def summed_totals(parts: list[Totals], bucketed: bool) -> Totals:
    """What ``parts`` add up to, bucket by bucket."""
    if not bucketed:
        return Totals(
            count=sum(part.count for part in parts),
            session_ms=sum(part.session_ms for part in parts),
            buckets=None,
        )
    by_start: dict[date, list[int]] = {}
    for part in parts:
        for bucket in part.buckets or ():
            sums = by_start.setdefault(bucket.start, [0, 0])
            sums[0] += bucket.count
            sums[1] += bucket.session_ms
    buckets = tuple(
        Bucket(start=start, count=sums[0], session_ms=sums[1])
        for start, sums in sorted(by_start.items())
    )
    return Totals(
        count=sum(bucket.count for bucket in buckets),
        session_ms=sum(bucket.session_ms for bucket in buckets),
        buckets=buckets,
    )

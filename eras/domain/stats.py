"""What the read queries answer, before it is written out as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class Bucket:
    start: date
    count: int
    session_ms: int = 0


@dataclass(frozen=True, slots=True)
class Totals:
    count: int
    session_ms: int
    buckets: tuple[Bucket, ...] | None  # None when no period was asked for


@dataclass(frozen=True, slots=True)
class ProjectContribution:
    project_id: int
    count: int
    session_ms: int
    last_at: datetime  # the latest classification of the range


@dataclass(frozen=True, slots=True)
class UserStats:
    totals: Totals
    project_contributions: list[ProjectContribution] | None


@dataclass(frozen=True, slots=True)
class Contribution:
    """Classifications and session time of one project or one member."""

    id: int
    count: int
    session_ms: int


@dataclass(frozen=True, slots=True)
class GroupAggregate:
    totals: Totals
    active_users: int
    project_contributions: list[Contribution] | None
    top_contributors: list[Contribution] | None


@dataclass(frozen=True, slots=True)
class MemberStats:
    user_id: int
    count: int
    session_ms: int
    projects: list[Contribution]

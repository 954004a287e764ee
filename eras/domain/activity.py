"""What the dashboard's own reads answer: the busiest projects of recent days, the workflows a
project has in the data, and the rejected events an operator looks at."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from eras.domain.query import DateRange


def recent_days(today: date, days: int) -> DateRange:
    """The ``days`` UTC days ending with ``today``, both included."""
    return DateRange(date.fromordinal(today.toordinal() - days + 1), today)


@dataclass(frozen=True, slots=True)
class ProjectActivity:
    project_id: int
    count: int
    session_ms: int


@dataclass(frozen=True, slots=True)
class BusiestProjects:
    dates: DateRange
    projects: tuple[ProjectActivity, ...]


@dataclass(frozen=True, slots=True)
class WorkflowActivity:
    """One workflow of a project: all its classifications, and those of the recent days."""

    workflow_id: int
    count: int
    session_ms: int
    recent_count: int


@dataclass(frozen=True, slots=True)
class ProjectWorkflows:
    project_id: int
    recent: DateRange
    days: int
    workflows: tuple[WorkflowActivity, ...]


@dataclass(frozen=True, slots=True)
class RecentRejection:
    id: int
    received_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class RejectionSummary:
    count: int
    latest: tuple[RecentRejection, ...]

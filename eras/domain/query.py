"""What a read asks for, once its parameters are validated."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, timedelta


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


def bucket_start(day: date, period: Period) -> date:
    """The first day of the calendar bucket holding ``day``: Monday weeks, calendar months and
    years, as the store's SQL buckets them."""
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return day.replace(month=1, day=1)


@dataclass(frozen=True, slots=True)
class DateRange:
    """UTC days, both ends included; ``None`` is open."""

    start: date | None = None
    end: date | None = None


@dataclass(frozen=True, slots=True)
class CountParams:
    """The common parameters; an empty tuple means the filter is absent."""

    project_ids: tuple[int, ...] = ()
    workflow_ids: tuple[int, ...] = ()
    dates: DateRange = field(default_factory=DateRange)
    period: Period | None = None


class ContributionOrder(enum.StrEnum):
    COUNT = "count"
    RECENTS = "recents"


@dataclass(frozen=True, slots=True)
class UserStatsParams:
    counts: CountParams
    time_spent: bool = False
    project_contributions: bool = False
    order_by: ContributionOrder = ContributionOrder.COUNT


@dataclass(frozen=True, slots=True)
class GroupStatsParams:
    counts: CountParams
    top_contributors: int | None = None
    individual_stats_breakdown: bool = False

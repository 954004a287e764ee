"""Query parameters validated with the original service's messages, into the domain's
request types."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Final

from eras.domain.query import (
    ContributionOrder,
    CountParams,
    DateRange,
    GroupStatsParams,
    Period,
    UserStatsParams,
)
from eras.errors import BadRequest

MAX_IDS_PER_LIST: Final = 1000
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_ID_DIGITS: Final = 18  # every 18-digit number fits in a signed 64-bit integer

INVALID_DATE: Final = "Invalid date."
INVALID_RANGE: Final = "Date range entered is not valid"
INVALID_PERIOD: Final = (
    "Invalid bucket option. Valid options for period is day, week, month, or year"
)
PROJECT_AND_WORKFLOW: Final = (
    "Cannot query by workflow and project. Either query by one or the other"
)


def present(value: str | None) -> str | None:
    """Clients send ``start_date=`` for "no start date": an empty value counts as absent."""
    if value is None or value.strip() == "":
        return None
    return value.strip()


def parse_date(value: str | None) -> date | None:
    text = present(value)
    if text is None:
        return None
    if not _DATE.fullmatch(text):
        raise BadRequest(INVALID_DATE)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(INVALID_DATE) from None


def parse_date_range(start_date: str | None, end_date: str | None) -> DateRange:
    dates = DateRange(parse_date(start_date), parse_date(end_date))
    if dates.start and dates.end and dates.start > dates.end:
        raise BadRequest(INVALID_RANGE)
    return dates


def parse_period(value: str | None) -> Period | None:
    text = present(value)
    if text is None:
        return None
    try:
        return Period(text.lower())
    except ValueError:
        raise BadRequest(INVALID_PERIOD) from None


def parse_ids(value: str | None, name: str) -> tuple[int, ...]:
    """``"1,2,3"`` to ``(1, 2, 3)``, in the order given, repeats dropped; the counts of all
    listed ids are summed by the caller (and broken down in this order, when asked)."""
    text = present(value)
    if text is None:
        return ()
    pieces = [piece.strip() for piece in text.split(",")]
    ids = []
    for piece in pieces:
        if piece == "":
            continue
        if not (piece.isascii() and piece.isdigit()) or len(piece) > _MAX_ID_DIGITS:
            raise BadRequest(
                f"Invalid {name}: expected numeric ids separated by commas, got {piece[:32]!r}"
            )
        ids.append(int(piece))
    if not ids:
        raise BadRequest(f"Invalid {name}: expected numeric ids separated by commas")
    distinct = tuple(dict.fromkeys(ids))
    if len(distinct) > MAX_IDS_PER_LIST:
        raise BadRequest(f"Too many ids in {name}: at most {MAX_IDS_PER_LIST} are allowed")
    return distinct


def parse_count_params(
    *,
    project_id: str | None,
    workflow_id: str | None,
    start_date: str | None,
    end_date: str | None,
    period: str | None,
) -> CountParams:
    """Validate in the original's order: dates, date range, period, project with workflow."""
    dates = parse_date_range(start_date, end_date)
    parsed_period = parse_period(period)
    if present(project_id) is not None and present(workflow_id) is not None:
        raise BadRequest(PROJECT_AND_WORKFLOW)
    return CountParams(
        project_ids=parse_ids(project_id, "project_id"),
        workflow_ids=parse_ids(workflow_id, "workflow_id"),
        dates=dates,
        period=parsed_period,
    )


@dataclass(frozen=True, slots=True)
class RawCountParams:
    """The common parameters as received, before validation."""

    project_id: str | None = None
    workflow_id: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    period: str | None = None

    def parse(self) -> CountParams:
        return parse_count_params(
            project_id=self.project_id,
            workflow_id=self.workflow_id,
            start_date=self.start_date,
            end_date=self.end_date,
            period=self.period,
        )


@lru_cache(maxsize=8192)  # an answer repeats its buckets' starts, once per listed id
def format_period(bucket_start: date) -> str:
    """The original's timestamp form for a bucket: ``2023-09-18T00:00:00.000Z``."""
    return f"{bucket_start.isoformat()}T00:00:00.000Z"


def format_instant(moment: datetime) -> str:
    """A naive UTC time in the same form, to the millisecond: ``2024-11-28T10:11:12.345Z``."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


# --- personal stats ------------------------------------------------------------------------

CONTRIBUTIONS_WITH_FILTER: Final = (
    "Cannot query for project contributions and query by project/workflow"
)
INVALID_CONTRIBUTION_ORDER: Final = (
    "Can only order project contributions by recents or count. Default behavior is count"
)


def parse_flag(value: str | None) -> bool:
    """``true`` in any case is true; every other value, or none, is false."""
    text = present(value)
    return text is not None and text.lower() == "true"


def parse_user_stats_params(
    counts: CountParams,
    *,
    time_spent: str | None,
    project_contributions: str | None,
    order_project_contributions_by: str | None,
) -> UserStatsParams:
    """The personal-stats parameters, checked after the common ones (``counts``)."""
    if present(project_contributions) is not None and (counts.project_ids or counts.workflow_ids):
        raise BadRequest(CONTRIBUTIONS_WITH_FILTER)
    order_text = present(order_project_contributions_by)
    try:
        order = ContributionOrder((order_text or "count").lower())
    except ValueError:
        raise BadRequest(INVALID_CONTRIBUTION_ORDER) from None
    return UserStatsParams(
        counts=counts,
        time_spent=parse_flag(time_spent),
        project_contributions=parse_flag(project_contributions),
        order_by=order,
    )


# --- group stats ---------------------------------------------------------------------------

BREAKDOWN_WITH_OTHERS: Final = (
    "Cannot query individual stats breakdown with anything else EXCEPT start_date and end_date"
)
MAX_TOP_CONTRIBUTORS: Final = 1000


def parse_top_contributors(value: str | None) -> int | None:
    text = present(value)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(
            f"Invalid top_contributors: expected a whole number from 0 to {MAX_TOP_CONTRIBUTORS}"
        )
    number = int(text)
    if number > MAX_TOP_CONTRIBUTORS:
        raise BadRequest(f"top_contributors can be at most {MAX_TOP_CONTRIBUTORS}")
    return number


def parse_group_stats_params(
    raw: RawCountParams,
    *,
    top_contributors: str | None,
    individual_stats_breakdown: str | None,
) -> GroupStatsParams:
    breakdown = parse_flag(individual_stats_breakdown)
    others = (raw.project_id, raw.workflow_id, raw.period, top_contributors)
    if breakdown and any(present(value) is not None for value in others):
        raise BadRequest(BREAKDOWN_WITH_OTHERS)
    return GroupStatsParams(
        counts=raw.parse(),
        top_contributors=parse_top_contributors(top_contributors),
        individual_stats_breakdown=breakdown,
    )

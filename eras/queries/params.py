"""Request parameters shared by the count routes, validated with the original service's messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Final

from eras.errors import BadRequest
from eras.store.dialect import Period

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


@dataclass(frozen=True, slots=True)
class DateRange:
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True, slots=True)
class CountParams:
    """Validated common parameters; an empty tuple means the filter is absent."""

    project_ids: tuple[int, ...] = ()
    workflow_ids: tuple[int, ...] = ()
    dates: DateRange = field(default_factory=DateRange)
    period: Period | None = None


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
    """``"1,2,3"`` to ``(1, 2, 3)``; the counts of all listed ids are summed by the caller."""
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
    distinct = tuple(sorted(set(ids)))
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


def format_period(bucket_start: date) -> str:
    """The original's timestamp form for a bucket: ``2023-09-18T00:00:00.000Z``."""
    return f"{bucket_start.isoformat()}T00:00:00.000Z"

"""Which level of a rollup family a read takes its rows from.

Every family is kept by the day and by the month; a few also as all-time totals (see
:mod:`eras.domain.rollups`). The rules, in order:

1. **Totals** when the family has them and the question covers all time with no buckets
   (no ``start_date``, no ``end_date``, no ``period``): one row per key, however long the key
   has been active. This is a volunteer's projects, a group's members and projects, all time.
2. **Days** when the answer is bucketed by day or by week: a week does not begin on the first
   of a month, so months cannot make it.
3. Otherwise, **months for every whole month inside the range, days for the ragged edges**:
   the days from ``start_date`` to the end of its month (unless it is the 1st), the whole
   months, then the days from the start of ``end_date``'s month (unless it is the last day of
   its month). An open start or end has no edge on that side. A range that holds no whole month
   reads days only. Month and year buckets are made of whole months and whole days alike, so
   the sums are the same to the millisecond.

4. **Totals beside months** when the family has totals, the answer has no buckets and the
   range holds at least one whole month (rule 3 takes months): a key whose first and latest
   classification both lie inside the range counts exactly its total, so it is read from its
   one total row; the months and days of rule 3 are read only for the other keys (those whose
   total says they were active outside the range too). A volunteer's projects over six years
   then read one row per project, plus the months of the few projects active before or after
   the range. A range of days only reads days: most keys a week's rows touch were active
   before it, and checking their totals would cost more than the days.

Each part becomes one SELECT over its table, and the parts are read together in one statement
(``UNION ALL``), so a six-year page reads about seventy month rows per key instead of two
thousand days.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import lru_cache

from eras.domain.query import DateRange, Period
from eras.domain.rollups import Family, Level, Rollup, rollup


@dataclass(frozen=True, slots=True)
class Part:
    """Rows of one rollup, between two values of its period column (both included; ``None``
    is open).

    Totals have no period column: with bounds they are the keys whose first and latest
    classification both lie between ``start`` and ``end`` (rule 4), and ``beside_totals``
    marks the day and month parts read for every other key."""

    rollup: Rollup
    start: date | None = None
    end: date | None = None
    beside_totals: bool = False


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


# The last month a date can have: there is no next month to write.
_LAST_MONTH = date.max.replace(day=1)


# A front end asks the same few ranges all day (all time, this week, since launch).
@lru_cache(maxsize=4096)
def choose(family: Family, dates: DateRange, period: Period | None) -> tuple[Part, ...]:
    """The parts a read of ``family`` over ``dates``, bucketed by ``period``, takes."""
    start, end = dates.start, dates.end
    with_totals = Level.TOTAL in family.levels and not period
    if with_totals and start is None and end is None:
        return (Part(rollup(family.name, Level.TOTAL)),)
    parts = _days_and_months(family, dates, period)
    if with_totals and any(part.rollup.level is Level.MONTH for part in parts):
        beside = tuple(replace(part, beside_totals=True) for part in parts)
        return (Part(rollup(family.name, Level.TOTAL), start, end), *beside)
    return parts


def _days_and_months(family: Family, dates: DateRange, period: Period | None) -> tuple[Part, ...]:
    """Rules 2 and 3."""
    start, end = dates.start, dates.end
    days = rollup(family.name, Level.DAY)
    if period in (Period.DAY, Period.WEEK) or (start is not None and start >= _LAST_MONTH):
        return (Part(days, start, end),)
    months = rollup(family.name, Level.MONTH)
    first_month = None if start is None else (start if start.day == 1 else _next_month(start))
    # The month after the last whole one: end's own month unless end is its last day.
    after_months = None
    if end is not None:
        after_months = (
            _month_start(end)
            if end >= _LAST_MONTH or (end + timedelta(days=1)).day != 1
            else _next_month(end)
        )
    if first_month is not None and after_months is not None and first_month >= after_months:
        return (Part(days, start, end),)
    parts = []
    if start is not None and first_month != start:
        assert first_month is not None
        parts.append(Part(days, start, first_month - timedelta(days=1)))
    last_month = None if after_months is None else after_months - timedelta(days=1)
    parts.append(
        Part(months, first_month, None if last_month is None else _month_start(last_month))
    )
    if end is not None and after_months is not None and after_months <= end:
        parts.append(Part(days, after_months, end))
    return tuple(parts)

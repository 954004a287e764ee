"""The spurious-classification report: the rules, over daily counts.

The report looks at the seven UTC days before a day (``until``, itself excluded) and names

1. **flagged projects**: for every pair of days d1 < d2 whose counts c1 and c2 are both over
   ``project_min_count``, the change ``|c2 - c1|`` per day apart (the rate) and as a percentage
   of c1 (the difference). A pair whose rate reaches ``project_min_rate`` and whose difference
   reaches ``project_min_difference`` flags its day with more classifications (none if c1 = c2);
2. **flagged volunteers**, on each flagged project and flagged day, in three tiers (see
   :func:`volunteer_tiers`);
3. the same tiers on **any project**: every volunteer, project and day of the window, flagged
   or not, so that a scripted volunteer on a project without a day-to-day jump is seen too.

The arithmetic is exact (integers and fractions), so a count or a rate exactly on a threshold
is always judged the same way. Only what the rules need comes in: one count per project and
day (anonymous classifications included), and one count and session time per volunteer,
project and day.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from itertools import combinations
from typing import Final

WINDOW_DAYS: Final = 7
# The earliest ``until`` whose window has days in the calendar.
EARLIEST_UNTIL: Final = date.min + timedelta(days=WINDOW_DAYS)


@dataclass(frozen=True, slots=True)
class Window:
    """UTC days, both ends included."""

    start: date
    end: date

    @classmethod
    def before(cls, until: date) -> Window:
        """The seven days before ``until``; ``until`` itself is not in it."""
        if until < EARLIEST_UNTIL:
            raise ValueError("the window would start before the first day of the calendar")
        return cls(until - timedelta(days=WINDOW_DAYS), until - timedelta(days=1))

    def holds(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every threshold of the rules, with the original service's values as defaults."""

    # Both days of a pair must have more classifications than this.
    project_min_count: int = 1_000
    # Classifications per day between the two days of a pair, at least.
    project_min_rate: Fraction = Fraction(5_000)
    # The change as a percentage of the earlier day's count, at least.
    project_min_difference: Fraction = Fraction(50)
    # A volunteer's day on a project is looked at only with more classifications than this
    # (and some session time).
    volunteer_min_count: int = 1_000
    # Tier I and the duty-of-care tier: from tier_min to tier_max classifications, both included.
    tier_min: int = 1_200
    tier_max: int = 5_000
    # Tier I: more classifications per second of session time than this; duty of care: at most.
    tier_one_rate: Fraction = Fraction(1)
    # Duty of care: more session seconds in the day than this.
    duty_of_care_seconds: Fraction = Fraction(21_600)
    # Tier II: at least this many classifications.
    tier_two_min: int = 5_000


class ThresholdKind(enum.Enum):
    COUNT = "a whole number"
    NUMBER = "a number, such as 1 or 0.5"


@dataclass(frozen=True, slots=True)
class ThresholdOption:
    """One threshold as the command line and the route take it (the same name for both)."""

    name: str
    kind: ThresholdKind
    help: str


THRESHOLD_OPTIONS: Final = (
    ThresholdOption(
        "project_min_count",
        ThresholdKind.COUNT,
        "compare two days of a project only when both have more classifications than this",
    ),
    ThresholdOption(
        "project_min_rate",
        ThresholdKind.NUMBER,
        "flag a pair of days whose count changes by at least this many classifications per "
        "day apart",
    ),
    ThresholdOption(
        "project_min_difference",
        ThresholdKind.NUMBER,
        "... and by at least this percentage of the earlier day's count",
    ),
    ThresholdOption(
        "volunteer_min_count",
        ThresholdKind.COUNT,
        "look at a volunteer's day on a project only with more classifications than this",
    ),
    ThresholdOption(
        "tier_min",
        ThresholdKind.COUNT,
        "tier I and duty of care: at least this many classifications in the day",
    ),
    ThresholdOption(
        "tier_max",
        ThresholdKind.COUNT,
        "tier I and duty of care: at most this many classifications in the day",
    ),
    ThresholdOption(
        "tier_one_rate",
        ThresholdKind.NUMBER,
        "tier I: more classifications per second of session time than this; "
        "duty of care: at most this many",
    ),
    ThresholdOption(
        "duty_of_care_seconds",
        ThresholdKind.NUMBER,
        "duty of care: more session seconds in the day than this",
    ),
    ThresholdOption(
        "tier_two_min",
        ThresholdKind.COUNT,
        "tier II: at least this many classifications in the day",
    ),
)

_COUNT_TEXT = re.compile(r"\d{1,18}")
_NUMBER_TEXT = re.compile(r"\d{1,18}(\.\d{1,18})?")


class InvalidThreshold(ValueError):
    """A threshold's text is not a value of its kind."""

    def __init__(self, option: ThresholdOption) -> None:
        self.option = option
        self.expected = f"expected {option.kind.value}"
        super().__init__(f"Invalid {option.name}: {self.expected}")


def parse_threshold(option: ThresholdOption, text: str) -> int | Fraction:
    """``text`` as the option's kind: a whole number, or a decimal number read exactly."""
    text = text.strip()
    if option.kind is ThresholdKind.COUNT:
        if not _COUNT_TEXT.fullmatch(text):
            raise InvalidThreshold(option)
        return int(text)
    if not _NUMBER_TEXT.fullmatch(text):
        raise InvalidThreshold(option)
    return Fraction(text)


def thresholds_from(texts: Mapping[str, str | None]) -> Thresholds:
    """Thresholds from option texts by name; a missing or empty one keeps its default."""
    options = {option.name: option for option in THRESHOLD_OPTIONS}
    defaults = Thresholds()

    def value(name: str) -> int | Fraction | None:
        text = texts.get(name)
        if text is None or not text.strip():
            return None
        return parse_threshold(options[name], text)

    def count(name: str, default: int) -> int:
        parsed = value(name)
        return default if parsed is None else int(parsed)

    def number(name: str, default: Fraction) -> Fraction:
        parsed = value(name)
        return default if parsed is None else Fraction(parsed)

    return Thresholds(
        project_min_count=count("project_min_count", defaults.project_min_count),
        project_min_rate=number("project_min_rate", defaults.project_min_rate),
        project_min_difference=number("project_min_difference", defaults.project_min_difference),
        volunteer_min_count=count("volunteer_min_count", defaults.volunteer_min_count),
        tier_min=count("tier_min", defaults.tier_min),
        tier_max=count("tier_max", defaults.tier_max),
        tier_one_rate=number("tier_one_rate", defaults.tier_one_rate),
        duty_of_care_seconds=number("duty_of_care_seconds", defaults.duty_of_care_seconds),
        tier_two_min=count("tier_two_min", defaults.tier_two_min),
    )


# --- what the rules read --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectDay:
    """A project's classifications on one UTC day, anonymous ones included."""

    project_id: int
    day: date
    count: int


@dataclass(frozen=True, slots=True)
class VolunteerDay:
    """One logged-in volunteer's classifications on one project and UTC day."""

    user_id: int
    project_id: int
    day: date
    count: int
    session_ms: int


# --- what they answer -----------------------------------------------------------------------


class Tier(enum.Enum):
    TIER_ONE = "tier_one"
    DUTY_OF_CARE = "duty_of_care"
    TIER_TWO = "tier_two"


@dataclass(frozen=True, slots=True)
class FlaggedProject:
    project_id: int
    dates: tuple[date, ...]  # ascending, each once


@dataclass(frozen=True, slots=True)
class FlaggedVolunteers:
    project_id: int
    user_ids: tuple[int, ...]  # ascending, each once


@dataclass(frozen=True, slots=True)
class TierLists:
    """The volunteers of each tier, by project (ascending); a project appears only in the
    tiers where it has someone."""

    tier_one: tuple[FlaggedVolunteers, ...]
    duty_of_care: tuple[FlaggedVolunteers, ...]
    tier_two: tuple[FlaggedVolunteers, ...]

    def of(self, tier: Tier) -> tuple[FlaggedVolunteers, ...]:
        lists: tuple[FlaggedVolunteers, ...] = getattr(self, tier.value)
        return lists


@dataclass(frozen=True, slots=True)
class SpuriousReport:
    window: Window
    projects: tuple[FlaggedProject, ...]  # by project id
    flagged: TierLists  # on the flagged projects' flagged days (rules 1 and 2)
    any_project: TierLists  # on every project and day of the window (rule 3)


# --- the rules ------------------------------------------------------------------------------


def flagged_day(first: ProjectDay, second: ProjectDay, thresholds: Thresholds) -> date | None:
    """The day a pair of days of one project flags, ``first`` being the earlier; or None."""
    if first.count <= thresholds.project_min_count or second.count <= thresholds.project_min_count:
        return None
    change = abs(second.count - first.count)
    if change == 0:
        return None
    rate = Fraction(change, (second.day - first.day).days)
    difference = Fraction(change * 100, first.count)
    if rate < thresholds.project_min_rate or difference < thresholds.project_min_difference:
        return None
    return first.day if first.count > second.count else second.day


def flagged_projects(
    window: Window, project_days: Iterable[ProjectDay], thresholds: Thresholds
) -> tuple[FlaggedProject, ...]:
    """Rule 1: every pair of days of each project inside the window."""
    by_project: dict[int, dict[date, int]] = defaultdict(dict)
    for row in project_days:
        if window.holds(row.day):
            counts = by_project[row.project_id]
            counts[row.day] = counts.get(row.day, 0) + row.count
    flagged = []
    for project_id in sorted(by_project):
        counts = by_project[project_id]
        days = [ProjectDay(project_id, day, counts[day]) for day in sorted(counts)]
        dates = {
            day
            for first, second in combinations(days, 2)
            if (day := flagged_day(first, second, thresholds)) is not None
        }
        if dates:
            flagged.append(FlaggedProject(project_id, tuple(sorted(dates))))
    return tuple(flagged)


def volunteer_tiers(volunteer_day: VolunteerDay, thresholds: Thresholds) -> frozenset[Tier]:
    """The tiers of one volunteer's day on one project.

    Looked at only with more than ``volunteer_min_count`` classifications and some session
    time; the rate is classifications per second of session time.

    - Tier I: from ``tier_min`` to ``tier_max`` classifications and a rate over
      ``tier_one_rate``.
    - Duty of care: from ``tier_min`` to ``tier_max`` classifications, a rate of at most
      ``tier_one_rate``, and more than ``duty_of_care_seconds`` of session time.
    - Tier II: at least ``tier_two_min`` classifications.

    With the defaults, a day of exactly 5,000 classifications can be in tier I and tier II at
    once, as in the original service.
    """
    count, session_ms = volunteer_day.count, volunteer_day.session_ms
    if count <= thresholds.volunteer_min_count or session_ms <= 0:
        return frozenset()
    seconds = Fraction(session_ms, 1000)
    rate = count / seconds
    tiers = set()
    if thresholds.tier_min <= count <= thresholds.tier_max:
        if rate > thresholds.tier_one_rate:
            tiers.add(Tier.TIER_ONE)
        elif seconds > thresholds.duty_of_care_seconds:
            tiers.add(Tier.DUTY_OF_CARE)
    if count >= thresholds.tier_two_min:
        tiers.add(Tier.TIER_TWO)
    return frozenset(tiers)


def tier_lists(
    volunteer_days: Iterable[VolunteerDay],
    thresholds: Thresholds,
    include: Callable[[VolunteerDay], bool],
) -> TierLists:
    """Rule 2 or 3: the volunteers of each tier, over the volunteer days ``include`` accepts."""
    found: dict[Tier, dict[int, set[int]]] = {tier: defaultdict(set) for tier in Tier}
    for volunteer_day in volunteer_days:
        if not include(volunteer_day):
            continue
        for tier in volunteer_tiers(volunteer_day, thresholds):
            found[tier][volunteer_day.project_id].add(volunteer_day.user_id)

    def listed(tier: Tier) -> tuple[FlaggedVolunteers, ...]:
        projects = found[tier]
        return tuple(
            FlaggedVolunteers(project_id, tuple(sorted(projects[project_id])))
            for project_id in sorted(projects)
        )

    return TierLists(
        tier_one=listed(Tier.TIER_ONE),
        duty_of_care=listed(Tier.DUTY_OF_CARE),
        tier_two=listed(Tier.TIER_TWO),
    )


def spurious_report(
    window: Window,
    project_days: Iterable[ProjectDay],
    volunteer_days: Iterable[VolunteerDay],
    thresholds: Thresholds,
) -> SpuriousReport:
    """The whole report; rows outside the window are ignored."""
    projects = flagged_projects(window, project_days, thresholds)
    flagged_days = {(project.project_id, day) for project in projects for day in project.dates}
    in_window = [row for row in volunteer_days if window.holds(row.day)]
    return SpuriousReport(
        window=window,
        projects=projects,
        flagged=tier_lists(
            in_window, thresholds, lambda row: (row.project_id, row.day) in flagged_days
        ),
        any_project=tier_lists(in_window, thresholds, lambda _row: True),
    )

"""The rollup catalogue: every rollup table, what it counts, its key, and the order in which
writers lock them.

A **family** is a question the rollups answer: classifications per project, per volunteer and
project, per group member, comments per user... Each family is kept at one or more **levels**:

- ``DAY``: one row per key and UTC day (every family);
- ``MONTH``: one row per key and calendar month, so that a long range reads months, not days
  (every family);
- ``TOTAL``: one row per key for all time, with the first and the latest classification time,
  where all-time answers are common (a volunteer's projects, a group's members and projects).

Every row holds a count and, for classifications, the summed session time in whole
milliseconds; the volunteer-by-project family keeps the first and latest classification time
at every level too (``recents`` orders projects by it). All levels are maintained from the same
contributions in the same transaction, and the schema, the write path, the rebuild and the
verification are all generated from this list.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class Source(enum.Enum):
    """The raw rows a rollup counts."""

    CLASSIFICATIONS = "classification_events"
    # One row per group a classification counts toward, carrying the values it counts with.
    MEMBERSHIPS = "classification_user_groups"
    COMMENTS = "comment_events"


class Level(enum.Enum):
    DAY = "daily"
    MONTH = "monthly"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    source: Source
    # The leading one is what a sharded PostgreSQL would distribute on.
    dimensions: tuple[str, ...]
    levels: tuple[Level, ...] = (Level.DAY, Level.MONTH)
    # Keeps the first and the latest classification time at every level.
    timed: bool = False


@dataclass(frozen=True, slots=True)
class Rollup:
    family: Family
    level: Level

    @property
    def name(self) -> str:
        return f"{self.family.name}_{self.level.value}"

    @property
    def source(self) -> Source:
        return self.family.source

    @property
    def dimensions(self) -> tuple[str, ...]:
        return self.family.dimensions

    @property
    def period_column(self) -> str | None:
        """The column after the dimensions in the key: the day, the month (its first day), or
        none for all-time totals."""
        return {Level.DAY: "day", Level.MONTH: "month", Level.TOTAL: None}[self.level]

    @property
    def key(self) -> tuple[str, ...]:
        column = self.period_column
        return self.dimensions if column is None else (*self.dimensions, column)

    @property
    def with_session(self) -> bool:
        return self.source is not Source.COMMENTS

    @property
    def with_times(self) -> bool:
        """First and latest classification time: on the timed family, and on every total."""
        return self.family.timed or (self.level is Level.TOTAL and self.with_session)

    @property
    def measures(self) -> tuple[str, ...]:
        """The summed columns."""
        return ("count", "session_ms") if self.with_session else ("count",)

    @property
    def times(self) -> tuple[str, ...]:
        return ("first_at", "last_at") if self.with_times else ()


_C, _G, _M = Source.CLASSIFICATIONS, Source.MEMBERSHIPS, Source.COMMENTS
_ALL = (Level.DAY, Level.MONTH, Level.TOTAL)
FAMILIES: Final = (
    Family("classification", _C, ()),
    Family("classification_project", _C, ("project_id",)),
    Family("classification_workflow", _C, ("workflow_id",)),
    # Which workflows a project has in the data, and their counts: the dashboard's project page.
    Family("classification_project_workflow", _C, ("project_id", "workflow_id")),
    Family("classification_user", _C, ("user_id",)),
    Family("classification_user_project", _C, ("user_id", "project_id"), _ALL, timed=True),
    Family("classification_user_workflow", _C, ("user_id", "workflow_id")),
    Family("group", _G, ("user_group_id",)),
    Family("group_project", _G, ("user_group_id", "project_id"), _ALL),
    Family("group_workflow", _G, ("user_group_id", "workflow_id")),
    Family("group_user", _G, ("user_group_id", "user_id"), _ALL),
    Family("group_user_project", _G, ("user_group_id", "user_id", "project_id"), _ALL),
    Family("group_user_workflow", _G, ("user_group_id", "user_id", "workflow_id")),
    Family("comment", _M, ()),
    Family("comment_project", _M, ("project_id",)),
    Family("comment_user", _M, ("user_id",)),
    Family("comment_project_user", _M, ("project_id", "user_id")),
)
FAMILY: Final[dict[str, Family]] = {family.name: family for family in FAMILIES}

_DEFINITIONS: Final = tuple(Rollup(family, level) for family in FAMILIES for level in family.levels)

# The one order in which every writer (POST /kinesis, eras ingest, replay) touches rollup
# rows, keys sorted within each table, so concurrent writers queue instead of deadlocking.
# The most specific families come first and the global ones last: every batch of a day updates
# the same global rows, and locking them last holds those locks for the shortest time. Within
# a family the days come before the months and the totals, which are computed from them when
# a withdrawal moves a first or latest time.
LOCK_ORDER: Final[tuple[Rollup, ...]] = tuple(
    sorted(
        _DEFINITIONS,
        key=lambda rollup: (
            -len(rollup.dimensions),
            rollup.family.name,
            list(Level).index(rollup.level),
        ),
    )
)
ROLLUPS: Final[dict[str, Rollup]] = {rollup.name: rollup for rollup in _DEFINITIONS}


def rollup(family: str, level: Level) -> Rollup:
    return ROLLUPS[f"{family}_{level.value}"]

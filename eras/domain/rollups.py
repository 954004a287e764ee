"""The rollup catalogue: every rollup table, what it counts, its key, and the order in which
writers lock them.

A rollup holds one row per key (its dimensions, then the UTC day) with a count and, for
classifications, the summed session time in whole milliseconds. The schema, the write path,
the rebuild and the verification are all generated from this list, so a rollup added here is
maintained everywhere.
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


@dataclass(frozen=True, slots=True)
class Rollup:
    name: str
    source: Source
    # Ahead of the day in the key. The leading one is what a sharded PostgreSQL would
    # distribute on.
    dimensions: tuple[str, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return (*self.dimensions, "day")

    @property
    def with_session(self) -> bool:
        return self.source is not Source.COMMENTS

    @property
    def measures(self) -> tuple[str, ...]:
        return ("count", "session_ms") if self.with_session else ("count",)


_CLASSIFICATIONS, _MEMBERSHIPS, _COMMENTS = Source
_DEFINITIONS: Final = (
    Rollup("classification_daily", _CLASSIFICATIONS, ()),
    Rollup("classification_project_daily", _CLASSIFICATIONS, ("project_id",)),
    Rollup("classification_workflow_daily", _CLASSIFICATIONS, ("workflow_id",)),
    Rollup("classification_user_daily", _CLASSIFICATIONS, ("user_id",)),
    Rollup("classification_user_project_daily", _CLASSIFICATIONS, ("user_id", "project_id")),
    Rollup("classification_user_workflow_daily", _CLASSIFICATIONS, ("user_id", "workflow_id")),
    Rollup("group_daily", _MEMBERSHIPS, ("user_group_id",)),
    Rollup("group_project_daily", _MEMBERSHIPS, ("user_group_id", "project_id")),
    Rollup("group_workflow_daily", _MEMBERSHIPS, ("user_group_id", "workflow_id")),
    Rollup("group_user_daily", _MEMBERSHIPS, ("user_group_id", "user_id")),
    Rollup("group_user_project_daily", _MEMBERSHIPS, ("user_group_id", "user_id", "project_id")),
    Rollup("group_user_workflow_daily", _MEMBERSHIPS, ("user_group_id", "user_id", "workflow_id")),
    Rollup("comment_daily", _COMMENTS, ()),
    Rollup("comment_project_daily", _COMMENTS, ("project_id",)),
    Rollup("comment_user_daily", _COMMENTS, ("user_id",)),
    Rollup("comment_project_user_daily", _COMMENTS, ("project_id", "user_id")),
)

# The one order in which every writer (POST /kinesis, eras ingest, replay) touches rollup
# rows, keys sorted within each table, so concurrent writers queue instead of deadlocking.
# The most specific rollups come first and the global ones last: every batch of a day updates
# the same global row, and locking it last holds that lock for the shortest time.
LOCK_ORDER: Final[tuple[Rollup, ...]] = tuple(
    sorted(_DEFINITIONS, key=lambda rollup: (-len(rollup.dimensions), rollup.name))
)
ROLLUPS: Final[dict[str, Rollup]] = {rollup.name: rollup for rollup in _DEFINITIONS}

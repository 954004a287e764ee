"""Table definitions. Raw tables keep every event; rollup tables, at every level, come from the
catalogue (:mod:`eras.domain.rollups`).

The migrations in ``migrations/versions`` create these tables; this module is what the code
queries against, and a test checks the two agree.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from eras.domain.rollups import ROLLUPS, Rollup, Source

metadata = MetaData()

classification_events = Table(
    "classification_events",
    metadata,
    Column("classification_id", BigInteger, primary_key=True, autoincrement=False),
    Column("event_time", DateTime, primary_key=True),
    Column("classification_updated_at", DateTime, nullable=True),
    Column("started_at", DateTime, nullable=True),
    Column("finished_at", DateTime, nullable=True),
    Column("project_id", BigInteger, nullable=False),
    Column("workflow_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=True),
    Column("user_group_ids", JSON(none_as_null=True), nullable=True),
    Column("session_time", Float, nullable=False),
    Column("already_seen", Boolean, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# What a re-published classification may change; its key and bookkeeping columns stay.
REPLACEABLE_CLASSIFICATION_COLUMNS: Final = (
    "classification_updated_at",
    "started_at",
    "finished_at",
    "project_id",
    "workflow_id",
    "user_id",
    "user_group_ids",
    "session_time",
    "already_seen",
)

classification_user_groups = Table(
    "classification_user_groups",
    metadata,
    Column("classification_id", BigInteger, primary_key=True, autoincrement=False),
    Column("event_time", DateTime, primary_key=True),
    Column("user_group_id", BigInteger, primary_key=True, autoincrement=False),
    Column("session_time", Float, nullable=False),
    Column("project_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("workflow_id", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

comment_events = Table(
    "comment_events",
    metadata,
    Column("comment_id", BigInteger, primary_key=True, autoincrement=False),
    Column("event_time", DateTime, primary_key=True),
    Column("comment_updated_at", DateTime, nullable=True),
    Column("project_id", BigInteger, nullable=True),
    Column("user_id", BigInteger, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

rejected_events = Table(
    "rejected_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # A hash of the raw event, so a batch retried by the stream does not store its bad events twice.
    Column("payload_sha256", String(64), nullable=False, unique=True),
    Column("received_at", DateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
)

RAW_TABLES: Final = (classification_events, classification_user_groups, comment_events)
SOURCE_TABLES: Final[dict[Source, Table]] = {
    Source.CLASSIFICATIONS: classification_events,
    Source.MEMBERSHIPS: classification_user_groups,
    Source.COMMENTS: comment_events,
}


# Where a withdrawal moves the first or latest classification time of a rollup row, it is read
# again from the raw rows of that key: these indexes make that a short range scan.
Index(
    "ix_classification_events_user_project_time",
    classification_events.c.user_id,
    classification_events.c.project_id,
    classification_events.c.event_time,
    sqlite_where=classification_events.c.user_id.is_not(None),
    postgresql_where=classification_events.c.user_id.is_not(None),
)
Index(
    "ix_classification_user_groups_group_user_project_time",
    classification_user_groups.c.user_group_id,
    classification_user_groups.c.user_id,
    classification_user_groups.c.project_id,
    classification_user_groups.c.event_time,
)


def _rollup_table(rollup: Rollup) -> Table:
    columns: list[Column[Any]] = [
        Column(dimension, BigInteger, primary_key=True, autoincrement=False)
        for dimension in rollup.dimensions
    ]
    if rollup.period_column is not None:
        columns.append(Column(rollup.period_column, Date, primary_key=True))
    columns.extend(Column(measure, BigInteger, nullable=False) for measure in rollup.measures)
    columns.extend(Column(time, DateTime, nullable=True) for time in rollup.times)
    # SQLite: clustered on the key, so one volunteer's or project's days are read in one pass.
    return Table(rollup.name, metadata, *columns, sqlite_with_rowid=False)


ROLLUP_TABLES: Final[dict[str, Table]] = {
    name: _rollup_table(rollup) for name, rollup in ROLLUPS.items()
}

"""Table definitions. Raw tables keep every event; rollup tables hold one row per key and UTC day.

The migrations in ``migrations/versions`` create these tables; this module is what the code
queries against, and a test checks the two agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from eras.ingest.events import CLASSIFICATION_ROLLUPS, COMMENT_ROLLUPS

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
    Column("user_group_ids", JSON, nullable=True),
    Column("session_time", Float, nullable=False),
    Column("already_seen", Boolean, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# What a re-published classification may change; its key and bookkeeping columns stay.
REPLACEABLE_CLASSIFICATION_COLUMNS = (
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


def _rollup(name: str, dimensions: tuple[str, ...], *, with_session: bool) -> Table:
    columns: list[Column[Any]] = [
        Column(dimension, BigInteger, primary_key=True, autoincrement=False)
        for dimension in dimensions
    ]
    columns.append(Column("day", Date, primary_key=True))
    columns.append(Column("count", BigInteger, nullable=False))
    if with_session:
        columns.append(Column("session_ms", BigInteger, nullable=False))
    # SQLite: clustered on the key, so one volunteer's or project's days are read in one pass.
    return Table(name, metadata, *columns, sqlite_with_rowid=False)


ROLLUP_TABLES: dict[str, Table] = {
    **{
        name: _rollup(name, dimensions, with_session=True)
        for name, dimensions in CLASSIFICATION_ROLLUPS.items()
    },
    **{
        name: _rollup(name, dimensions, with_session=False)
        for name, dimensions in COMMENT_ROLLUPS.items()
    },
}

RAW_TABLES = (classification_events, classification_user_groups, comment_events, rejected_events)

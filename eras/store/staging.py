"""Staging tables: where a batch waits, inside its transaction, for the set-based write.

They are temporary tables that every database connection creates once, when it opens (see
the backends), so a write costs no DDL. PostgreSQL empties them at every commit
(``ON COMMIT DELETE ROWS``); the SQLite backend empties the ones a write used before it
commits. A rollback empties them on both.
"""

from __future__ import annotations

import enum
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    MetaData,
    SmallInteger,
    Table,
    text,
)

from eras.store.schema import classification_events, classification_user_groups, comment_events

metadata = MetaData()

# Not staged: bookkeeping the write fills in itself.
_BOOKKEEPING: Final = frozenset({"created_at", "updated_at", "comment_updated_at"})


class State(enum.IntEnum):
    """What became of a staged row."""

    DUPLICATE = 0  # stored already, and not by an older version: changes nothing
    NEW = 1  # inserted
    NEWER = 2  # replaces the stored version, which had an earlier updated_at


def _temporary(name: str, *columns: Column[Any], **options: Any) -> Table:
    return Table(
        name,
        metadata,
        *columns,
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
        **options,
    )


def _staged(name: str, raw: Table, *extra: Column[Any]) -> Table:
    """A staging copy of a raw table: its columns without the bookkeeping, plus ``state``."""
    columns = [
        Column(column.name, column.type, primary_key=column.primary_key, nullable=column.nullable)
        for column in raw.columns
        if column.name not in _BOOKKEEPING
    ]
    state = Column("state", SmallInteger, nullable=False, server_default=text("0"))
    # When some staged rows were stored already, every row has its state updated: room left in
    # each page keeps those updates on the page (HOT) instead of writing every row again
    # elsewhere and into the key's index.
    return _temporary(name, *columns, *extra, state, postgresql_with={"fillfactor": 50})


stage_classifications = _staged(
    "eras_stage_classifications",
    classification_events,
    # False for rows of the original's classification_events: their group rows are kept in
    # that service's own table and are neither written nor replaced with the classification.
    Column("own_groups", Boolean, nullable=False),
)
# The group rows staged classifications bring with them (rules.group_memberships).
stage_groups = _staged("eras_stage_groups", classification_user_groups)
# Rows of the original's classification_user_groups table, each a membership of its own.
stage_memberships = _staged("eras_stage_memberships", classification_user_groups)
stage_comments = _staged("eras_stage_comments", comment_events)

# Contributions: what the rows that arrive (positive) and leave (negative) count for, summed
# per key and day, with their earliest and latest classification time. A rollup row's change is
# then the sum of a few rows, not of one per event.
classification_deltas = _temporary(
    "eras_classification_deltas",
    Column("project_id", BigInteger, nullable=False),
    Column("workflow_id", BigInteger, nullable=False),
    Column("user_id", BigInteger),
    Column("day", Date, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("session_ms", BigInteger, nullable=False),
    Column("first_at", DateTime, nullable=False),
    Column("last_at", DateTime, nullable=False),
)
group_deltas = _temporary(
    "eras_group_deltas",
    Column("user_group_id", BigInteger, nullable=False),
    Column("project_id", BigInteger, nullable=False),
    Column("workflow_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("day", Date, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("session_ms", BigInteger, nullable=False),
    Column("first_at", DateTime, nullable=False),
    Column("last_at", DateTime, nullable=False),
)
comment_deltas = _temporary(
    "eras_comment_deltas",
    Column("project_id", BigInteger),
    Column("user_id", BigInteger),
    Column("day", Date, nullable=False),
    Column("count", BigInteger, nullable=False),
)

STAGED_ROWS: Final = (stage_classifications, stage_groups, stage_memberships, stage_comments)
DELTAS: Final = (classification_deltas, group_deltas, comment_deltas)
ALL: Final = (*STAGED_ROWS, *DELTAS)


def staged_columns(table: Table) -> list[str]:
    """The columns a staged row gives values for, in order: all but ``state``."""
    return [column.name for column in table.columns if column.name != "state"]

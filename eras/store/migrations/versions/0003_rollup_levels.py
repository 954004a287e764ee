"""Monthly rollups for every family, all-time totals for a volunteer's projects and a group's
members and projects, first and latest classification times, and the raw-row indexes that keep
those times exact; filled in place from what the database already holds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copy of the rollup layout as of this revision: family -> (dimensions, has session).
_FAMILIES: dict[str, tuple[tuple[str, ...], bool]] = {
    "classification": ((), True),
    "classification_project": (("project_id",), True),
    "classification_workflow": (("workflow_id",), True),
    "classification_user": (("user_id",), True),
    "classification_user_project": (("user_id", "project_id"), True),
    "classification_user_workflow": (("user_id", "workflow_id"), True),
    "group": (("user_group_id",), True),
    "group_project": (("user_group_id", "project_id"), True),
    "group_workflow": (("user_group_id", "workflow_id"), True),
    "group_user": (("user_group_id", "user_id"), True),
    "group_user_project": (("user_group_id", "user_id", "project_id"), True),
    "group_user_workflow": (("user_group_id", "user_id", "workflow_id"), True),
    "comment": ((), False),
    "comment_project": (("project_id",), False),
    "comment_user": (("user_id",), False),
    "comment_project_user": (("project_id", "user_id"), False),
}
_TOTALS = ("classification_user_project", "group_project", "group_user", "group_user_project")
_TIMED = "classification_user_project"


def _month(day: str) -> str:
    """The first day of the month of a DATE column, as each database writes a DATE."""
    if op.get_bind().dialect.name == "sqlite":
        return f"substr({day}, 1, 8) || '01'"  # days are 'YYYY-MM-DD' text there
    return f"CAST(date_trunc('month', CAST({day} AS timestamp)) AS date)"


def _day(timestamp: str) -> str:
    if op.get_bind().dialect.name == "sqlite":
        return f"date({timestamp})"
    return f"CAST({timestamp} AS date)"


def _table(
    name: str, dimensions: tuple[str, ...], period: str | None, session: bool, times: bool
) -> None:
    columns: list[sa.Column[Any]] = [
        sa.Column(dimension, sa.BigInteger, primary_key=True, autoincrement=False)
        for dimension in dimensions
    ]
    if period is not None:
        columns.append(sa.Column(period, sa.Date, primary_key=True))
    columns.append(sa.Column("count", sa.BigInteger, nullable=False))
    if session:
        columns.append(sa.Column("session_ms", sa.BigInteger, nullable=False))
    if times:
        columns.append(sa.Column("first_at", sa.DateTime, nullable=True))
        columns.append(sa.Column("last_at", sa.DateTime, nullable=True))
    op.create_table(name, *columns, sqlite_with_rowid=False)


def upgrade() -> None:
    op.create_index(
        "ix_classification_events_user_project_time",
        "classification_events",
        ["user_id", "project_id", "event_time"],
        sqlite_where=sa.text("user_id IS NOT NULL"),
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.create_index(
        "ix_classification_user_groups_group_user_project_time",
        "classification_user_groups",
        ["user_group_id", "user_id", "project_id", "event_time"],
    )
    # The volunteer's days of a project gain their first and latest classification time.
    op.add_column(f"{_TIMED}_daily", sa.Column("first_at", sa.DateTime, nullable=True))
    op.add_column(f"{_TIMED}_daily", sa.Column("last_at", sa.DateTime, nullable=True))
    day = _day("event_time")
    op.execute(
        f"UPDATE {_TIMED}_daily SET first_at = times.first_at, last_at = times.last_at "
        f"FROM (SELECT user_id, project_id, {day} AS day, min(event_time) AS first_at, "
        "max(event_time) AS last_at FROM classification_events WHERE user_id IS NOT NULL "
        f"GROUP BY user_id, project_id, {day}) AS times "
        f"WHERE {_TIMED}_daily.user_id = times.user_id "
        f"AND {_TIMED}_daily.project_id = times.project_id AND {_TIMED}_daily.day = times.day"
    )
    for family, (dimensions, session) in _FAMILIES.items():
        timed = family == _TIMED
        _table(f"{family}_monthly", dimensions, "month", session, timed)
        keys = ", ".join(dimensions)
        keys_comma = f"{keys}, " if keys else ""
        sums = "sum(count)" + (", sum(session_ms)" if session else "")
        times = ", min(first_at), max(last_at)" if timed else ""
        columns = "count" + (", session_ms" if session else "")
        columns += ", first_at, last_at" if timed else ""
        month = _month("day")
        op.execute(
            f'INSERT INTO "{family}_monthly" ({keys_comma}month, {columns}) '
            f'SELECT {keys_comma}{month}, {sums}{times} FROM "{family}_daily" '
            f"GROUP BY {keys_comma}{month}"
        )
    for family in _TOTALS:
        dimensions, _session = _FAMILIES[family]
        _table(f"{family}_total", dimensions, None, True, True)
        keys = ", ".join(dimensions)
        if family == _TIMED:
            source = (
                f"SELECT {keys}, sum(count), sum(session_ms), min(first_at), max(last_at) "
                f"FROM {family}_daily GROUP BY {keys}"
            )
        else:
            # Times from the group rows themselves: the group rollups keep none by the day.
            counts = (
                f"SELECT {keys}, sum(count) AS count, sum(session_ms) AS session_ms "
                f'FROM "{family}_daily" GROUP BY {keys}'
            )
            times = (
                f"SELECT {keys}, min(event_time) AS first_at, max(event_time) AS last_at "
                f"FROM classification_user_groups GROUP BY {keys}"
            )
            match = " AND ".join(f"c.{d} = t.{d}" for d in dimensions)
            source = (
                f"SELECT {', '.join(f'c.{d}' for d in dimensions)}, c.count, c.session_ms, "
                f"t.first_at, t.last_at FROM ({counts}) AS c JOIN ({times}) AS t ON {match}"
            )
        columns = f"{keys}, count, session_ms, first_at, last_at"
        op.execute(f'INSERT INTO "{family}_total" ({columns}) {source}')


def downgrade() -> None:
    for family in _TOTALS:
        op.drop_table(f"{family}_total")
    for family in _FAMILIES:
        op.drop_table(f"{family}_monthly")
    op.drop_column(f"{_TIMED}_daily", "last_at")
    op.drop_column(f"{_TIMED}_daily", "first_at")
    op.drop_index(
        "ix_classification_user_groups_group_user_project_time", "classification_user_groups"
    )
    op.drop_index("ix_classification_events_user_project_time", "classification_events")

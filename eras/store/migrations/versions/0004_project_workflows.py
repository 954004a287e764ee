"""Classifications per project and workflow, by the day and by the month: which workflows a
project has in the data, and their counts, read from rollups instead of the raw rows; filled in
place from what the database already holds.

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_FAMILY = "classification_project_workflow"


def _table(name: str, period: str) -> None:
    op.create_table(
        name,
        sa.Column("project_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("workflow_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column(period, sa.Date, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("session_ms", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    _table(f"{_FAMILY}_daily", "day")
    _table(f"{_FAMILY}_monthly", "month")
    if op.get_bind().dialect.name == "sqlite":
        day = "date(event_time)"
        month = "substr(day, 1, 8) || '01'"  # days are 'YYYY-MM-DD' text there
        # Whole milliseconds rounded half to even, as the write path rounds them.
        ms = "session_time * 1000.0"
        session = (
            f"CAST(CASE WHEN {ms} - CAST({ms} AS INTEGER) = 0.5 "
            f"THEN 2 * round({ms} / 2.0) ELSE round({ms}) END AS INTEGER)"
        )
    else:
        day = "CAST(event_time AS date)"
        month = "CAST(date_trunc('month', CAST(day AS timestamp)) AS date)"
        session = "CAST(round(session_time * 1000.0) AS BIGINT)"
    op.execute(
        f"INSERT INTO {_FAMILY}_daily (project_id, workflow_id, day, count, session_ms) "
        f"SELECT project_id, workflow_id, {day}, count(*), sum({session}) "
        f"FROM classification_events GROUP BY project_id, workflow_id, {day}"
    )
    op.execute(
        f"INSERT INTO {_FAMILY}_monthly (project_id, workflow_id, month, count, session_ms) "
        f"SELECT project_id, workflow_id, {month}, sum(count), sum(session_ms) "
        f"FROM {_FAMILY}_daily GROUP BY project_id, workflow_id, {month}"
    )


def downgrade() -> None:
    op.drop_table(f"{_FAMILY}_monthly")
    op.drop_table(f"{_FAMILY}_daily")

"""Raw event tables, rejected events, and the daily rollups.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copy of the rollup layout as of this revision; later revisions change it with ALTERs.
_CLASSIFICATION_ROLLUPS = {
    "classification_daily": (),
    "classification_project_daily": ("project_id",),
    "classification_workflow_daily": ("workflow_id",),
    "classification_user_daily": ("user_id",),
    "classification_user_project_daily": ("user_id", "project_id"),
    "classification_user_workflow_daily": ("user_id", "workflow_id"),
    "group_daily": ("user_group_id",),
    "group_project_daily": ("user_group_id", "project_id"),
    "group_workflow_daily": ("user_group_id", "workflow_id"),
    "group_user_daily": ("user_group_id", "user_id"),
    "group_user_project_daily": ("user_group_id", "user_id", "project_id"),
    "group_user_workflow_daily": ("user_group_id", "user_id", "workflow_id"),
}
_COMMENT_ROLLUPS = {
    "comment_daily": (),
    "comment_project_daily": ("project_id",),
    "comment_user_daily": ("user_id",),
    "comment_project_user_daily": ("project_id", "user_id"),
}


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "classification_events",
        sa.Column("classification_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_time", sa.DateTime, primary_key=True),
        sa.Column("classification_updated_at", sa.DateTime),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("project_id", sa.BigInteger, nullable=False),
        sa.Column("workflow_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger),
        sa.Column("user_group_ids", sa.JSON),
        sa.Column("session_time", sa.Float, nullable=False),
        sa.Column("already_seen", sa.Boolean),
        *_timestamps(),
    )
    op.create_table(
        "classification_user_groups",
        sa.Column("classification_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_time", sa.DateTime, primary_key=True),
        sa.Column("user_group_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("session_time", sa.Float, nullable=False),
        sa.Column("project_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("workflow_id", sa.BigInteger, nullable=False),
        *_timestamps(),
    )
    op.create_table(
        "comment_events",
        sa.Column("comment_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_time", sa.DateTime, primary_key=True),
        sa.Column("comment_updated_at", sa.DateTime),
        sa.Column("project_id", sa.BigInteger),
        sa.Column("user_id", sa.BigInteger),
        *_timestamps(),
    )
    op.create_table(
        "rejected_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("payload_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    for rollups, with_session in ((_CLASSIFICATION_ROLLUPS, True), (_COMMENT_ROLLUPS, False)):
        for name, dimensions in rollups.items():
            columns: list[sa.Column[Any]] = [
                sa.Column(dimension, sa.BigInteger, primary_key=True, autoincrement=False)
                for dimension in dimensions
            ]
            columns.append(sa.Column("day", sa.Date, primary_key=True))
            columns.append(sa.Column("count", sa.BigInteger, nullable=False))
            if with_session:
                columns.append(sa.Column("session_ms", sa.BigInteger, nullable=False))
            op.create_table(name, *columns)


def downgrade() -> None:
    for name in (*_COMMENT_ROLLUPS, *_CLASSIFICATION_ROLLUPS):
        op.drop_table(name)
    for name in (
        "rejected_events",
        "comment_events",
        "classification_user_groups",
        "classification_events",
    ):
        op.drop_table(name)

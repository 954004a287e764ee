"""On SQLite, store each rollup in its primary-key order (WITHOUT ROWID).

A rowid table keeps its composite key in a separate index, so reading a volunteer's days meant
one index lookup and one table lookup per row, and every upsert wrote two b-trees. Clustered on
the key, a volunteer's or a project's days sit next to each other. PostgreSQL is unchanged.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copy of the rollup layout as of this revision.
_ROLLUPS: dict[str, tuple[tuple[str, ...], bool]] = {
    "classification_daily": ((), True),
    "classification_project_daily": (("project_id",), True),
    "classification_workflow_daily": (("workflow_id",), True),
    "classification_user_daily": (("user_id",), True),
    "classification_user_project_daily": (("user_id", "project_id"), True),
    "classification_user_workflow_daily": (("user_id", "workflow_id"), True),
    "group_daily": (("user_group_id",), True),
    "group_project_daily": (("user_group_id", "project_id"), True),
    "group_workflow_daily": (("user_group_id", "workflow_id"), True),
    "group_user_daily": (("user_group_id", "user_id"), True),
    "group_user_project_daily": (("user_group_id", "user_id", "project_id"), True),
    "group_user_workflow_daily": (("user_group_id", "user_id", "workflow_id"), True),
    "comment_daily": ((), False),
    "comment_project_daily": (("project_id",), False),
    "comment_user_daily": (("user_id",), False),
    "comment_project_user_daily": (("project_id", "user_id"), False),
}


def _columns(dimensions: tuple[str, ...], with_session: bool) -> list[sa.Column[Any]]:
    columns: list[sa.Column[Any]] = [
        sa.Column(dimension, sa.BigInteger, primary_key=True, autoincrement=False)
        for dimension in dimensions
    ]
    columns.append(sa.Column("day", sa.Date, primary_key=True))
    columns.append(sa.Column("count", sa.BigInteger, nullable=False))
    if with_session:
        columns.append(sa.Column("session_ms", sa.BigInteger, nullable=False))
    return columns


def _rebuild(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, (dimensions, with_session) in _ROLLUPS.items():
        staging = f"{name}_rebuilt"
        columns = _columns(dimensions, with_session)
        names = [column.name for column in columns]
        target = op.create_table(staging, *columns, sqlite_with_rowid=with_rowid)
        source = sa.table(name, *(sa.column(column) for column in names))
        op.execute(sa.insert(target).from_select(names, sa.select(*source.c)))
        op.drop_table(name)
        op.rename_table(staging, name)


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)

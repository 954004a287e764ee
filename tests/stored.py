"""Read stored rows straight from the database, for assertions about what ingest wrote."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from eras.store.database import Database
from eras.store.schema import (
    ROLLUP_TABLES,
    classification_events,
    classification_user_groups,
    rejected_events,
)


def rollup(database: Database, name: str) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """``{(dimensions..., day): (count, session_ms)}``; comment rollups give ``(count,)``."""
    table = ROLLUP_TABLES[name]
    keys = [column for column in table.primary_key.columns]
    measures = [table.c.count] + ([table.c.session_ms] if "session_ms" in table.c else [])
    with database.read() as connection:
        rows = connection.execute(select(*keys, *measures)).all()
    width = len(keys)
    return {tuple(row[:width]): tuple(row[width:]) for row in rows}


def all_rollups(database: Database) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    return {name: rollup(database, name) for name in ROLLUP_TABLES}


def classifications(database: Database) -> dict[int, Any]:
    with database.read() as connection:
        rows = connection.execute(select(classification_events)).all()
    return {row.classification_id: row for row in rows}


def group_rows(database: Database) -> set[tuple[int, int]]:
    table = classification_user_groups
    with database.read() as connection:
        rows = connection.execute(select(table.c.classification_id, table.c.user_group_id)).all()
    return {(row[0], row[1]) for row in rows}


def rejections(database: Database) -> list[Any]:
    with database.read() as connection:
        return list(connection.execute(select(rejected_events).order_by(rejected_events.c.id)))

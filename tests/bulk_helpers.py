"""Helpers for the bulk-loading and rollup-maintenance tests: the CLI as a real process, a
second empty database, and a dump of a database in the original service's CSV layout."""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from eras.store.backend import driver_url
from eras.store.database import Database
from eras.store.migrate import migrate
from eras.store.schema import classification_events, classification_user_groups, comment_events
from tests.conftest import POSTGRES_SERVER_URL
from tests.environment import child_environment

ERAS = Path(sys.executable).with_name("eras")


def run_eras(
    database_url: str,
    *arguments: str,
    cwd: Path | None = None,
    environment: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``eras ARGUMENTS`` as a separate process against ``database_url``."""
    return subprocess.run(
        [str(ERAS), *arguments],
        env=child_environment(ERAS_DATABASE_URL=database_url, **(environment or {})),
        # Not the repository: a default rejects file is written to the working directory.
        cwd=cwd or tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ingest(
    database_url: str, *arguments: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run_eras(database_url, "ingest", "--no-progress", *map(str, arguments), cwd=cwd)


@contextmanager
def another_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / f'other-{uuid.uuid4().hex[:8]}.db'}"
        _migrate(url)
        yield url
        return
    name = f"eras_other_{uuid.uuid4().hex[:10]}"
    admin = create_engine(driver_url(POSTGRES_SERVER_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str) -> None:
    database = Database(url)
    migrate(database)
    database.dispose()


# --- the original service's dump -----------------------------------------------------------

CLASSIFICATION_EVENTS_COLUMNS = [
    "classification_id",
    "event_time",
    "classification_updated_at",
    "started_at",
    "finished_at",
    "project_id",
    "workflow_id",
    "user_id",
    "user_group_ids",
    "session_time",
    "created_at",
    "updated_at",
]
COMMENT_EVENTS_COLUMNS = [
    "comment_id",
    "event_time",
    "comment_updated_at",
    "project_id",
    "user_id",
    "created_at",
    "updated_at",
]
CLASSIFICATION_USER_GROUPS_COLUMNS = [
    "classification_id",
    "event_time",
    "user_group_id",
    "session_time",
    "project_id",
    "user_id",
    "workflow_id",
    "created_at",
    "updated_at",
]


def _copy_text(value: object) -> str:
    """A value as PostgreSQL's ``COPY ... WITH CSV`` writes it: NULL empty, timestamps without
    a zone and with trailing zeros of the fraction dropped, arrays as ``{1,2}``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        text_value = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            text_value += f".{value.microsecond:06d}".rstrip("0")
        return text_value
    if isinstance(value, list):
        return "{" + ",".join(str(item) for item in value) + "}"
    return str(value)


def dump_original_tables(database: Database, directory: Path) -> list[Path]:
    """The three raw tables as the original service's ``COPY ... TO STDOUT WITH CSV HEADER``
    dump would hold them (our ``already_seen`` column is not part of that layout)."""
    dumps = [
        (classification_events, CLASSIFICATION_EVENTS_COLUMNS),
        (comment_events, COMMENT_EVENTS_COLUMNS),
        (classification_user_groups, CLASSIFICATION_USER_GROUPS_COLUMNS),
    ]
    paths = []
    with database.read() as connection:
        for table, columns in dumps:
            path = directory / f"{table.name}.csv"
            rows = connection.execute(select(*(table.c[column] for column in columns)))
            with path.open("w", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(columns)
                writer.writerows([_copy_text(value) for value in row] for row in rows)
            paths.append(path)
    return paths

"""The Alembic migrations build exactly the schema the code uses, on both databases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from eras.store.database import Database
from eras.store.migrate import current_revision, head_revision, migrate
from eras.store.schema import metadata

ERAS = Path(sys.executable).with_name("eras")


def test_migrations_match_the_schema_module(empty_database_url):
    database = Database(empty_database_url)
    try:
        migrate(database)
        with database.read() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
        assert current_revision(database) == head_revision()
    finally:
        database.dispose()


def test_migrating_twice_changes_nothing(empty_database_url):
    database = Database(empty_database_url)
    try:
        migrate(database)
        with database.read() as connection:
            before = sorted(inspect(connection).get_table_names())
        migrate(database)
        with database.read() as connection:
            assert sorted(inspect(connection).get_table_names()) == before
        assert "classification_events" in before and "group_user_workflow_daily" in before
    finally:
        database.dispose()


def test_eras_migrate_command(empty_database_url):
    result = subprocess.run(
        [str(ERAS), "migrate"],
        env={"ERAS_DATABASE_URL": empty_database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"schema at revision {head_revision()}" in result.stdout
    database = Database(empty_database_url)
    try:
        assert current_revision(database) == head_revision()
    finally:
        database.dispose()

"""The Alembic migrations build exactly the schema the code uses, on both databases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from eras.app import create_app
from eras.store.database import Database
from eras.store.migrate import SchemaOutOfDate, current_revision, head_revision, migrate
from eras.store.schema import metadata
from tests.conftest import make_settings

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


async def test_service_without_auto_migrate_refuses_an_old_schema(empty_database_url):
    app = create_app(make_settings(empty_database_url, auto_migrate=False))
    try:
        with pytest.raises(SchemaOutOfDate, match="run `eras migrate`"):
            async with app.router.lifespan_context(app):
                pass
    finally:
        await app.state.close()


async def test_service_migrates_at_start_by_default(empty_database_url):
    app = create_app(make_settings(empty_database_url, auto_migrate=True))
    try:
        async with app.router.lifespan_context(app):
            assert current_revision(app.state.database) == head_revision()
    finally:
        await app.state.close()

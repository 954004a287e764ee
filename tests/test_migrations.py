"""The Alembic migrations build exactly the schema the code uses, on both databases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, inspect, select, text

from eras.app import create_app
from eras.store.database import Database
from eras.store.migrate import SchemaOutOfDate, current_revision, head_revision, migrate
from eras.store.schema import RAW_TABLES, ROLLUP_TABLES, metadata
from tests.conftest import make_settings
from tests.environment import child_environment

TIMES = ("first_at", "last_at")
ADDED_AFTER_0002 = {"classification_project_workflow_daily"}

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
        env=child_environment(ERAS_DATABASE_URL=empty_database_url),
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


def _rollup_rows(database: Database) -> list[tuple[object, ...]]:
    with database.read() as connection:
        user_project = connection.execute(
            text(
                "SELECT user_id, project_id, day, count, session_ms "
                "FROM classification_user_project_daily ORDER BY user_id, project_id, day"
            )
        ).all()
        comments = connection.execute(text("SELECT day, count FROM comment_daily")).all()
    return [tuple(row) for row in (*user_project, *comments)]


def _without_rowid(database: Database) -> dict[str, bool]:
    with database.read() as connection:
        tables = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type='table'"))
        return {name: "WITHOUT ROWID" in sql.upper() for name, sql in tables}


def test_upgrading_from_0001_keeps_rollup_rows(empty_database_url):
    database = Database(empty_database_url)
    try:
        migrate(database, revision="0001")
        with database.write() as connection:
            connection.execute(
                text(
                    "INSERT INTO classification_user_project_daily "
                    "(user_id, project_id, day, count, session_ms) VALUES "
                    "(7, 3, '2024-01-02', 5, 1200), (7, 1, '2024-01-01', 2, 10)"
                )
            )
            connection.execute(
                text("INSERT INTO comment_daily (day, count) VALUES ('2024-01-01', 4)")
            )
        before = _rollup_rows(database)
        assert len(before) == 3
        migrate(database)
        assert _rollup_rows(database) == before
        if database.backend.name == "sqlite":
            clustered = _without_rowid(database)
            assert all(clustered[name] for name in ROLLUP_TABLES)
            assert all(name in clustered for name in ROLLUP_TABLES)
            assert not clustered["classification_events"]
    finally:
        database.dispose()


def test_downgrading_to_0001_keeps_rollup_rows(empty_database_url):
    database = Database(empty_database_url)
    try:
        migrate(database)
        with database.write() as connection:
            connection.execute(
                text(
                    "INSERT INTO classification_user_project_daily "
                    "(user_id, project_id, day, count, session_ms) "
                    "VALUES (9, 2, '2023-05-06', 1, 7)"
                )
            )
        before = _rollup_rows(database)
        config = Config()
        config.set_main_option(
            "script_location", str(Path(__file__).parent.parent / "eras" / "store" / "migrations")
        )
        with database.write() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        assert current_revision(database) == "0001"
        assert _rollup_rows(database) == before
        if database.backend.name == "sqlite":
            clustered = _without_rowid(database)
            assert not any(
                clustered.get(name, False) for name in ROLLUP_TABLES if name.endswith("_daily")
            )
    finally:
        database.dispose()


def _copy_rows(source: Database, target: Database, table: Table, columns: list[str]) -> None:
    with source.read() as connection:
        rows = [
            dict(row._mapping)
            for row in connection.execute(select(*(table.c[name] for name in columns)))
        ]
    if rows:
        with target.write() as connection:
            connection.execute(table.insert(), rows)


LEVEL_QUERIES = [
    ("/classifications", {"period": "month"}),
    ("/classifications", {"project_id": "1", "start_date": "2023-08-15", "end_date": "2024-02-10"}),
    ("/classifications", {"workflow_id": "10,20", "period": "year", "end_date": "2024-01-31"}),
    ("/comments", {"user_id": "100", "period": "month"}),
]


async def test_a_database_at_0002_is_upgraded_in_place_and_answers_as_before(
    database_url, tmp_path
):
    """Rows written by the previous version (raw tables and daily rollups only) gain every
    new level from the migration, equal to what the current version writes itself."""
    from tests.bulk_helpers import another_database
    from tests.conftest import client_for
    from tests.factories import classification, comment, post_events
    from tests.stored import all_rollups

    events = [
        classification(
            n,
            created_at=f"202{3 + n % 2}-{1 + n % 12:02d}-{1 + n % 27:02d}T1{n % 10}:00:00.{n:03d}Z",
            project=1 + n % 2,
            workflow=10 * (1 + n % 2),
            user=None if n % 5 == 0 else 100 + n % 3,
            groups=[[], [7], [7, 8]][n % 3],
        )
        for n in range(1, 60)
    ] + [comment(n, project_id=n % 2 or None, user_id=100 + n % 2) for n in range(1, 20)]
    current = Database(database_url)
    async with client_for(make_settings(database_url)) as client:
        await post_events(client, events)
        answers = [(await client.get(path, params=params)).json() for path, params in LEVEL_QUERIES]
    expected = all_rollups(current)
    try:
        with another_database(database_url, tmp_path) as previous_url:
            previous = Database(previous_url)
            try:
                # Rebuilt at revision 0002 with what that version wrote.
                with previous.write() as connection:
                    for table in reversed(metadata.sorted_tables):
                        connection.execute(text(f'DROP TABLE IF EXISTS "{table.name}"'))
                    connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
                migrate(previous, revision="0002")
                for raw in RAW_TABLES:
                    _copy_rows(current, previous, raw, [column.name for column in raw.columns])
                for name, table in ROLLUP_TABLES.items():
                    # Those added since (0004) are filled from the raw rows by their migration.
                    if name.endswith("_daily") and name not in ADDED_AFTER_0002:
                        columns = [c.name for c in table.columns if c.name not in TIMES]
                        _copy_rows(current, previous, table, columns)
                migrate(previous)
                assert current_revision(previous) == head_revision()
                assert all_rollups(previous) == expected
                async with client_for(make_settings(previous_url)) as client:
                    for (path, params), answer in zip(LEVEL_QUERIES, answers, strict=True):
                        assert (await client.get(path, params=params)).json() == answer
                verify = subprocess.run(
                    [str(ERAS), "verify", "--no-progress"],
                    env={"ERAS_DATABASE_URL": previous_url, "PATH": "/usr/bin:/bin"},
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                assert verify.returncode == 0, verify.stdout
            finally:
                previous.dispose()
    finally:
        current.dispose()

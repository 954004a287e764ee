"""Bring a database's schema to the newest revision (Alembic, run in-process)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from eras.store.database import Database

_MIGRATIONS = Path(__file__).with_name("migrations")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(database: Database) -> str | None:
    with database.read() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class SchemaOutOfDate(RuntimeError):
    """The database was not migrated to the revision this code needs."""


def ensure_current(database: Database) -> None:
    current, head = current_revision(database), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database schema is at revision {current or 'none'} but this version of eras "
            f"needs {head}: run `eras migrate`, or let the service do it (ERAS_AUTO_MIGRATE=true)"
        )


def migrate(database: Database, revision: str = "head") -> None:
    """Upgrade to ``revision`` inside one transaction, serialised against other processes."""
    config = _config()
    with database.write() as connection:
        database.backend.lock_migrations(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

"""Every behavioural test runs on both SQLite (a file) and a real PostgreSQL server.

PostgreSQL is required: if it cannot be reached the PostgreSQL half of the suite errors out with
the reason, it is never skipped. Point ``ERAS_TEST_POSTGRES_URL`` at another server if needed.

No test sees the service's settings from the environment the suite was started in: they are
removed before the service is imported, and again around every test (see
``tests/environment.py``).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.environment import remove_settings, settings_in

# Before anything else is imported: prometheus_client chooses where metrics live from the
# environment when it is first imported, and test modules build apps when they are imported.
remove_settings()

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from eras.app import create_app
from eras.config import Settings
from eras.store.backend import driver_url
from eras.store.database import Database
from eras.store.migrate import migrate
from eras.store.schema import metadata
from tests.factories import INGEST_PASSWORD, INGEST_USER
from tests.fake_panoptes import FakePanoptes

POSTGRES_SERVER_URL = os.environ.get(
    "ERAS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without the service's settings in the environment; whatever a test
    sets is undone after it."""
    for name in settings_in(os.environ):
        monkeypatch.delenv(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database on the PostgreSQL server, dropped after the session."""
    name = f"eras_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(driver_url(POSTGRES_SERVER_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is required for the test suite and is not reachable at "
            f"{POSTGRES_SERVER_URL}: {error}",
            pytrace=False,
        )
    url = make_url(POSTGRES_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    migrate(database)
    database.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_postgres(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    engine = create_engine(driver_url(url))
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'eras.db'}"
        database = Database(url)
        migrate(database)
        database.dispose()
        return url
    url = str(request.getfixturevalue("postgres_url"))
    _empty_postgres(url)
    return url


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "kinesis_username": INGEST_USER,
        "kinesis_password": INGEST_PASSWORD,
        "env": "production",
        "auto_migrate": False,
        "revision": "test-revision",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client driving an app built from ``settings``, in process."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://eras.test") as http:
            yield http
    finally:
        await app.state.close()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings) as http:
        yield http


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """Direct access for assertions on stored rows."""
    db = Database(settings.database_url)
    yield db
    db.dispose()


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each kind with no schema at all, for migration tests."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"eras_empty_{uuid.uuid4().hex[:10]}"
    admin = create_engine(driver_url(POSTGRES_SERVER_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def panoptes() -> Iterator[FakePanoptes]:
    """A fake Panoptes API listening on loopback for this test."""
    fake = FakePanoptes().start()
    yield fake
    fake.stop()
    # A scripted failure must come from the script, never from a bug of the fake itself.
    assert fake.errors == [], "the fake Panoptes failed:\n" + "\n".join(fake.errors)


@pytest.fixture
def unreachable_url() -> str:
    """A loopback URL with nothing listening: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"

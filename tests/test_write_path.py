"""One write path: POST /kinesis and eras ingest store exactly the same rows, on both databases.

The same random streams as ``test_properties`` (repeats, re-publications with later and earlier
``updated_at``, anonymous volunteers, group ids listed twice, comments, other event types) go
once through ``POST /kinesis``, batch after batch, and once through the loader ``eras ingest``
runs, as an ndjson file cut into transactions of a random size, into a second empty database.
Every row of every raw table and every rollup must be the same in both.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio.from_thread
import orjson
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import DateTime, literal, select

from eras.domain.rules import is_newer
from eras.services.loading.loader import LoadOptions, load, open_inputs
from eras.store.database import Database
from eras.store.schema import RAW_TABLES, ROLLUP_TABLES
from eras.store.write import replaces
from tests.bulk_helpers import another_database
from tests.conftest import client_for, make_settings
from tests.test_properties import EXAMPLES, Stream, clear, ingest, streams

_BOOKKEEPING = {"created_at", "updated_at"}


def snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every raw table and rollup, without the columns saying when it was stored."""
    tables = [*RAW_TABLES, *ROLLUP_TABLES.values()]
    with database.read() as connection:
        rows = {}
        for table in tables:
            columns = [column for column in table.columns if column.name not in _BOOKKEEPING]
            rows[table.name] = sorted(
                tuple(repr(value) for value in row)
                for row in connection.execute(select(*columns)).all()
            )
    return rows


def write_file(path: Path, batches: list[list[dict[str, Any]]], shape: str) -> Path:
    """The stream as ndjson: one event per line, or one ``{"payload": [...]}`` per batch."""
    if shape == "events":
        lines = [event for batch in batches for event in batch]
    else:
        lines = [{"payload": batch} for batch in batches]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def test_stream_and_files_store_the_same_rows(database_url, database, tmp_path):
    with (
        another_database(database_url, tmp_path) as loaded_url,
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(client_for(make_settings(database_url))) as client,
    ):
        loaded = Database(loaded_url)
        examples = itertools.count()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(
            stream=streams(),
            batch_size=st.integers(1, 40),
            shape=st.sampled_from(["events", "bodies"]),
        )
        def store_both_ways(stream: Stream, batch_size: int, shape: str) -> None:
            note(repr(stream))
            clear(database)
            clear(loaded)
            portal.call(partial(ingest, client, stream.batches, concurrently=False))

            path = write_file(tmp_path / f"stream-{next(examples)}.ndjson", stream.batches, shape)
            options = LoadOptions(
                batch_size=batch_size, rejects_path=tmp_path / "rejects.ndjson", jobs=1
            )
            report = load(loaded, open_inputs([path], options), options)
            assert report.total.rejected == 0

            assert snapshot(loaded) == snapshot(database)

        try:
            store_both_ways()
        finally:
            loaded.dispose()


MOMENTS = [None, datetime(2024, 1, 1, 12), datetime(2024, 1, 1, 12, 0, 0, 1)]


@pytest.mark.parametrize(
    ("incoming", "stored"), list(itertools.product(MOMENTS, MOMENTS)), ids=repr
)
def test_the_sql_form_of_the_newer_rule_is_the_rule(database, incoming, stored):
    """The store compares staged and stored versions in SQL; it must agree with the domain."""
    expression = replaces(literal(incoming, DateTime), literal(stored, DateTime))
    with database.read() as connection:
        answer = connection.execute(select(expression)).scalar_one()
    assert bool(answer) is is_newer(incoming, stored)

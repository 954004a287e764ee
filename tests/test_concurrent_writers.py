"""``eras ingest`` of a large file while the stream keeps arriving: exact, and no deadlock.

A live ``eras serve`` with two workers takes batches from four senders while ``eras ingest``
loads a file in small transactions. The senders post copies of events in the file, later
versions of them (another project, volunteer and groups) and events of their own, so the load
and the stream keep meeting on the same raw rows and the same rollup rows. Afterwards every
rollup equals the independent model of the final versions, ``eras verify`` passes, and on
PostgreSQL the server counted no deadlock at all (a retried deadlock would be hidden by the
retry; the counter is not).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from eras.store.database import Database
from tests import stored
from tests.factories import INGEST_PASSWORD, INGEST_USER, basic_auth, classification
from tests.model import expected_classification_rollups
from tests.test_serve import free_port

ERAS = Path(sys.executable).with_name("eras")
FILE_EVENTS = 12_000
SENDERS = 4
BATCHES_PER_SENDER = 15
BATCH = 150


def file_event(number: int) -> dict[str, Any]:
    return classification(
        number,
        created_at=f"2024-03-{1 + number % 28:02d}T{number % 24:02d}:00:00.{number % 1000:03d}Z",
        updated_at=f"2024-03-{1 + number % 28:02d}T{number % 24:02d}:00:00.{number % 1000:03d}Z",
        project=1 + number % 5,
        workflow=10 + number % 11,
        user=None if number % 9 == 0 else 100 + number % 37,
        groups=[1 + number % 4, 1 + number % 4] if number % 3 == 0 else None,
    )


def later_version(event: dict[str, Any], rng: random.Random, sequence: int) -> dict[str, Any]:
    """The same classification re-published with other values and a later updated_at, one of
    its own: whichever version arrives first, the latest one wins."""
    data = event["data"]
    updated = datetime(2024, 4, 1, tzinfo=UTC) + timedelta(milliseconds=sequence)
    return classification(
        int(data["id"]),
        created_at=data["created_at"],
        updated_at=updated.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        project=1 + rng.randrange(5),
        workflow=10 + rng.randrange(11),
        user=100 + rng.randrange(37),
        groups=[1 + rng.randrange(4)],
    )


def sender_batches(sender: int, file_events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    rng = random.Random(sender)
    batches = []
    for number in range(BATCHES_PER_SENDER):
        batch = []
        for offset in range(BATCH):
            roll = rng.random()
            sequence = (sender * BATCHES_PER_SENDER + number) * BATCH + offset
            if roll < 0.4:
                batch.append(rng.choice(file_events))  # a copy of an event in the file
            elif roll < 0.7:
                batch.append(later_version(rng.choice(file_events), rng, sequence))
            else:
                batch.append(file_event(1_000_000 + sequence))
        batches.append(batch)
    return batches


def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    environment = {
        "PATH": "/usr/bin:/bin",
        "ERAS_DATABASE_URL": database_url,
        "ERAS_KINESIS_USERNAME": INGEST_USER,
        "ERAS_KINESIS_PASSWORD": INGEST_PASSWORD,
    }
    process = subprocess.Popen(
        [str(ERAS), "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "eras serve exited early"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("eras serve did not answer within 30 s")


def deadlocks(database: Database) -> int:
    with database.read() as connection:
        return int(
            connection.execute(
                text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
        )


async def send_all(port: int, batches: list[list[list[dict[str, Any]]]]) -> list[int]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:

        async def send(mine: list[list[dict[str, Any]]]) -> list[int]:
            statuses = []
            for batch in mine:
                response = await http.post(
                    "/kinesis", json={"payload": batch}, headers=basic_auth()
                )
                statuses.append(response.status_code)
            return statuses

        results = await asyncio.gather(*(send(mine) for mine in batches))
    return [status for statuses in results for status in statuses]


async def test_a_load_beside_the_stream_is_exact_and_never_deadlocks(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    postgres = database.backend.name == "postgresql"
    file_events = [file_event(number) for number in range(1, FILE_EVENTS + 1)]
    path = tmp_path / "history.ndjson"
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in file_events))
    batches = [sender_batches(sender, file_events) for sender in range(SENDERS)]
    before = deadlocks(database) if postgres else 0

    port = free_port()
    server = start_server(database_url, port)
    try:
        loader = subprocess.Popen(
            [str(ERAS), "ingest", "--no-progress", "--batch-size", "500", str(path)],
            env={"PATH": "/usr/bin:/bin", "ERAS_DATABASE_URL": database_url},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        statuses = await send_all(port, batches)
        _, err = loader.communicate(timeout=300)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert loader.returncode == 0, err.decode()
    assert statuses == [200] * (SENDERS * BATCHES_PER_SENDER)
    posted = [event for mine in batches for batch in mine for event in batch]

    expected = expected_classification_rollups(file_events + posted)
    for name in stored.ROLLUP_TABLES:
        if not name.startswith("comment"):
            assert stored.rollup(database, name) == expected.get(name, {}), name
    verify = subprocess.run(
        [str(ERAS), "verify", "--no-progress"],
        env={"PATH": "/usr/bin:/bin", "ERAS_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout
    if postgres:
        assert deadlocks(database) == before

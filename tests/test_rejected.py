"""Events set aside at ingest can be listed and, once they parse, replayed into the counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
from sqlalchemy import update

from eras.store.schema import rejected_events
from tests import stored
from tests.environment import child_environment
from tests.factories import classification, post_events

ERAS = Path(sys.executable).with_name("eras")


def eras(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ERAS), *arguments],
        env=child_environment(ERAS_DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_list_prints_reason_and_event(client, database_url):
    bad = classification(7, created_at="not a time")
    await post_events(client, [bad, classification(1)])
    result = eras(database_url, "rejected", "list")
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    listed = json.loads(line)
    assert listed["reason"] == "data.created_at is not an ISO 8601 timestamp: 'not a time'"
    assert listed["event"] == bad


async def test_replay_ingests_what_parses_and_keeps_the_rest(client, database_url, database):
    fixable = classification(7, created_at="not a time")
    hopeless = classification(8)
    hopeless["data"]["id"] = "eight"
    await post_events(client, [fixable, hopeless])
    assert (await client.get("/classifications")).json() == {"total_count": 0}

    # An operator corrects the stored event, as they would after finding the cause.
    corrected = classification(7, created_at="2023-09-18T12:00:00.000Z")
    with database.write() as connection:
        connection.execute(
            update(rejected_events)
            .where(rejected_events.c.payload.contains('"7"'))
            .values(payload=orjson.dumps(corrected).decode())
        )

    result = eras(database_url, "rejected", "replay")
    assert result.returncode == 1, result.stderr  # one event is still rejected
    assert "inserted 1" in result.stdout and "still rejected: 1" in result.stdout
    assert (await client.get("/classifications")).json() == {"total_count": 1}
    [remaining] = stored.rejections(database)
    assert remaining.reason == "data.id is not a numeric id: 'eight'"

    again = eras(database_url, "rejected", "replay")
    assert "inserted 0" in again.stdout
    assert (await client.get("/classifications")).json() == {"total_count": 1}

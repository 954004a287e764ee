"""POST /kinesis: credentials, bodies, idempotency, updates, session time, groups, bad events."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import httpx
import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
)

from eras.store.database import Database
from tests import stored
from tests.conftest import client_for, make_settings
from tests.factories import (
    INGEST_PASSWORD,
    INGEST_USER,
    basic_auth,
    classification,
    comment,
    fixture_event,
    post_events,
)
from tests.model import expected_classification_rollups

CLASSIFICATION_ROLLUPS = [
    "classification_daily",
    "classification_project_daily",
    "classification_workflow_daily",
    "classification_project_workflow_daily",
    "classification_user_daily",
    "classification_user_project_daily",
    "classification_user_workflow_daily",
    "group_daily",
    "group_project_daily",
    "group_workflow_daily",
    "group_user_daily",
    "group_user_project_daily",
    "group_user_workflow_daily",
]


def assert_rollups_match(database, events) -> None:
    """Every classification rollup equals the independent model of the posted events."""
    expected = expected_classification_rollups(events)
    for name in CLASSIFICATION_ROLLUPS:
        assert stored.rollup(database, name) == expected.get(name, {}), name


async def total(client: httpx.AsyncClient, **params: str) -> int:
    response = await client.get("/classifications", params=params)
    assert response.status_code == 200, response.text
    count: int = response.json()["total_count"]
    return count


class TestCredentials:
    async def test_correct_credentials_are_accepted(self, client):
        response = await client.post(
            "/kinesis", json={"payload": [classification()]}, headers=basic_auth()
        )
        assert response.status_code == 200
        assert await total(client) == 1

    async def test_missing_credentials_are_refused(self, client):
        response = await client.post("/kinesis", json={"payload": [classification()]})
        assert response.status_code == 403
        assert await total(client) == 0

    @pytest.mark.parametrize(
        ("username", "password"),
        [
            (INGEST_USER, "x" * len(INGEST_PASSWORD)),  # wrong password of the same length
            (INGEST_USER, INGEST_PASSWORD + "x"),
            (INGEST_USER, ""),
            ("someone-else", INGEST_PASSWORD),
        ],
    )
    async def test_wrong_credentials_are_refused(self, client, username, password):
        response = await client.post(
            "/kinesis",
            json={"payload": [classification()]},
            headers=basic_auth(username, password),
        )
        assert response.status_code == 403
        assert response.json() == {"error": "Invalid or missing ingest credentials"}
        assert await total(client) == 0

    @pytest.mark.parametrize(
        "header", ["Basic not-base64!", "Basic " + "dXNlcg==", "Bearer abc", "Basic"]
    )
    async def test_malformed_authorization_is_refused(self, client, header):
        response = await client.post(
            "/kinesis", json={"payload": [classification()]}, headers={"Authorization": header}
        )
        assert response.status_code == 403

    async def test_unconfigured_credentials_refuse_everything_in_production(self, database_url):
        settings = make_settings(database_url, kinesis_username=None, kinesis_password=None)
        async with client_for(settings) as unconfigured:
            response = await unconfigured.post(
                "/kinesis", json={"payload": [classification()]}, headers=basic_auth()
            )
            assert response.status_code == 403
            assert "not configured" in response.json()["error"]
            assert await total(unconfigured) == 0

    async def test_unconfigured_credentials_accept_everything_in_development(self, database_url):
        settings = make_settings(
            database_url, kinesis_username=None, kinesis_password=None, env="development"
        )
        async with client_for(settings) as development:
            response = await development.post("/kinesis", json={"payload": [classification()]})
            assert response.status_code == 200
            assert await total(development) == 1

    async def test_configured_credentials_are_checked_in_development_too(self, database_url):
        settings = make_settings(database_url, env="development")
        async with client_for(settings) as development:
            response = await development.post("/kinesis", json={"payload": [classification()]})
            assert response.status_code == 403


class TestBodies:
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not json", "Request body is not valid JSON"),
            (b'{"payload": ', "Request body is not valid JSON"),
            (b"[1, 2]", 'Request body must be a JSON object with a "payload" list of events'),
            (
                b'{"events": []}',
                'Request body must be a JSON object with a "payload" list of events',
            ),
            (b'{"payload": {"source": "panoptes"}}', '"payload" must be a list of events'),
            (b'{"payload": null}', '"payload" must be a list of events'),
        ],
    )
    async def test_bad_body_is_a_400_naming_the_problem(self, client, body, message):
        headers = {**basic_auth(), "Content-Type": "application/json"}
        response = await client.post("/kinesis", content=body, headers=headers)
        assert response.status_code == 400
        assert response.json() == {"error": message}

    async def test_bad_body_stores_nothing(self, client, database):
        headers = {**basic_auth(), "Content-Type": "application/json"}
        body = b'{"events": [' + b"{}" + b"]}"
        await client.post("/kinesis", content=body, headers=headers)
        assert stored.classifications(database) == {}
        assert stored.rejections(database) == []

    async def test_empty_payload_is_accepted(self, client):
        assert await post_events(client, []) == {
            "inserted": 0,
            "duplicates": 0,
            "updated": 0,
            "ignored": 0,
            "rejected": 0,
        }


class TestRepeats:
    async def test_repeat_in_one_batch_counts_once(self, client, database):
        event = classification(1)
        summary = await post_events(client, [event, event])
        assert summary["inserted"] == 1 and summary["duplicates"] == 1
        assert await total(client) == 1
        assert_rollups_match(database, [event])

    async def test_repeat_in_a_later_batch_counts_once(self, client, database):
        events = [classification(1), classification(2, user=None), comment(1)]
        first = await post_events(client, events)
        second = await post_events(client, events)
        assert first["inserted"] == 3
        assert second == {"inserted": 0, "duplicates": 3, "updated": 0, "ignored": 0, "rejected": 0}
        assert await total(client) == 2
        assert (await client.get("/comments")).json() == {"total_count": 1}
        assert_rollups_match(database, events)

    async def test_same_id_at_another_time_is_another_event(self, client):
        await post_events(
            client,
            [
                classification(1, created_at="2023-09-18T12:00:00.000Z"),
                classification(1, created_at="2023-09-19T12:00:00.000Z"),
            ],
        )
        assert await total(client) == 2

    async def test_concurrent_requests_with_the_same_events_count_once(self, client, database):
        events = [
            classification(i, user=100 + i % 3, groups=[7] if i % 2 else None) for i in range(1, 41)
        ] + [comment(i) for i in range(1, 11)]
        summaries = await asyncio.gather(*(post_events(client, events) for _ in range(8)))
        assert sum(summary["inserted"] for summary in summaries) == 50
        assert sum(summary["duplicates"] for summary in summaries) == 7 * 50
        assert await total(client) == 40
        assert (await client.get("/comments")).json() == {"total_count": 10}
        assert_rollups_match(database, events)

    async def test_concurrent_overlapping_batches_are_exact(self, client, database):
        events = [classification(i, user=100 + i % 5, groups=[i % 3]) for i in range(1, 121)]
        batches = [events[start : start + 40] for start in range(0, 120, 20)]
        await asyncio.gather(*(post_events(client, batch) for batch in batches))
        assert await total(client) == 120
        assert_rollups_match(database, events)


class TestUpdates:
    async def test_later_update_replaces_session_time_everywhere(self, client, database):
        original = classification(1, groups=[5], updated_at="2023-09-18T12:00:01.000Z")
        updated = classification(
            1,
            groups=[5],
            updated_at="2023-09-18T13:00:00.000Z",
            finished_at="2023-09-18T12:00:20.000Z",
        )
        await post_events(client, [original])
        summary = await post_events(client, [updated])
        assert summary["updated"] == 1 and summary["inserted"] == 0
        day = date(2023, 9, 18)
        assert stored.rollup(database, "classification_user_daily") == {(100, day): (1, 30_000)}
        assert stored.rollup(database, "group_user_daily") == {(5, 100, day): (1, 30_000)}
        assert stored.classifications(database)[1].session_time == 30.0
        assert_rollups_match(database, [original, updated])

    async def test_older_version_does_not_replace_a_newer_one(self, client, database):
        newer = classification(
            1, updated_at="2023-09-18T13:00:00.000Z", finished_at="2023-09-18T12:00:20.000Z"
        )
        older = classification(1, updated_at="2023-09-18T12:00:01.000Z")
        await post_events(client, [newer])
        summary = await post_events(client, [older])
        assert summary["duplicates"] == 1 and summary["updated"] == 0
        assert stored.classifications(database)[1].session_time == 30.0
        assert_rollups_match(database, [newer, older])

    async def test_update_moving_project_workflow_and_groups_moves_every_count(
        self, client, database
    ):
        original = classification(
            1, project=1, workflow=10, groups=[5, 6], updated_at="2023-09-18T12:00:01.000Z"
        )
        moved = classification(
            1, project=2, workflow=20, groups=[6, 7], updated_at="2023-09-18T12:05:00.000Z"
        )
        await post_events(client, [original])
        await post_events(client, [moved])
        assert await total(client, project_id="1") == 0
        assert await total(client, project_id="2") == 1
        assert await total(client, workflow_id="10") == 0
        assert (
            await client.get("/classifications", params={"project_id": "1", "period": "day"})
        ).json() == {
            "total_count": 0,
            "data": [],
        }
        assert stored.group_rows(database) == {(1, 6), (1, 7)}
        assert_rollups_match(database, [original, moved])

    async def test_update_in_the_same_batch_keeps_the_latest(self, client, database):
        versions = [
            classification(1, updated_at="2023-09-18T12:00:05.000Z", project=3),
            classification(1, updated_at="2023-09-18T12:00:09.000Z", project=4),
            classification(1, updated_at="2023-09-18T12:00:01.000Z", project=5),
        ]
        summary = await post_events(client, versions)
        assert summary["inserted"] == 1 and summary["duplicates"] == 2
        assert await total(client, project_id="4") == 1
        assert await total(client, project_id="3,5") == 0
        assert_rollups_match(database, versions)

    async def test_concurrent_updates_of_one_classification_count_once(self, client, database):
        versions = [
            classification(
                1,
                updated_at=f"2023-09-18T12:{minute:02d}:00.000Z",
                finished_at=f"2023-09-18T12:00:{minute:02d}.000Z",
                groups=[minute % 3],
            )
            for minute in range(1, 13)
        ]
        await asyncio.gather(*(post_events(client, [version]) for version in versions))
        assert await total(client) == 1
        assert_rollups_match(database, versions)


class TestSessionTime:
    @pytest.mark.parametrize(
        ("started_at", "finished_at", "seconds"),
        [
            ("2023-09-18T11:59:50.000Z", "2023-09-18T12:00:00.250Z", 10.25),
            (None, "2023-09-18T12:00:00.000Z", 0.0),
            ("2023-09-18T11:59:50.000Z", None, 0.0),
            ("yesterday", "2023-09-18T12:00:00.000Z", 0.0),
            ("2023-09-18T11:59:50.000Z", "2023-13-45T99:00:00Z", 0.0),
            ("2023-09-18T12:00:10.000Z", "2023-09-18T12:00:00.000Z", 0.0),  # negative
            ("2023-09-18T08:00:00.000Z", "2023-09-18T12:00:00.000Z", 10_800.0),  # 4 h, capped
            ("2023-09-18T09:00:00.000Z", "2023-09-18T12:00:00.000Z", 10_800.0),  # exactly 3 h
        ],
    )
    async def test_session_time(self, client, database, started_at, finished_at, seconds):
        event = classification(1, started_at=started_at, finished_at=finished_at)
        assert (await post_events(client, [event]))["inserted"] == 1
        assert stored.classifications(database)[1].session_time == seconds
        assert stored.rollup(database, "classification_user_daily") == {
            (100, date(2023, 9, 18)): (1, round(seconds * 1000))
        }

    async def test_session_time_across_time_zones(self, client, database):
        event = classification(
            1, started_at="2023-09-18T13:59:50.000+02:00", finished_at="2023-09-18T12:00:00.000Z"
        )
        await post_events(client, [event])
        assert stored.classifications(database)[1].session_time == 10.0


class TestUserGroups:
    async def test_group_listed_twice_counts_once(self, client, database):
        await post_events(client, [classification(1, groups=[5, 5, 6])])
        day = date(2023, 9, 18)
        assert stored.rollup(database, "group_daily") == {
            (5, day): (1, 10_000),
            (6, day): (1, 10_000),
        }
        assert stored.group_rows(database) == {(1, 5), (1, 6)}
        assert stored.classifications(database)[1].user_group_ids == [5, 5, 6]

    async def test_anonymous_classification_with_groups_counts_for_no_group(self, client, database):
        event = classification(1, user=None, groups=[5])
        await post_events(client, [event])
        assert await total(client) == 1
        assert await total(client, project_id="1") == 1
        assert stored.group_rows(database) == set()
        for name in CLASSIFICATION_ROLLUPS[4:]:
            assert stored.rollup(database, name) == {}, name

    async def test_group_ids_given_as_digit_strings(self, client, database):
        await post_events(client, [classification(1, groups=["5", 6])])
        assert stored.group_rows(database) == {(1, 5), (1, 6)}

    async def test_empty_group_list_counts_for_no_group(self, client, database):
        await post_events(client, [classification(1, groups=[])])
        assert stored.group_rows(database) == set()
        assert await total(client) == 1


class TestEventTypes:
    async def test_other_event_types_are_ignored(self, client, database):
        events = [
            {"source": "panoptes", "type": "subject", "data": {"id": "1"}},
            {"source": "talk", "type": "discussion", "data": {"id": 1}},
            {"source": "caesar", "type": "classification", "data": {}},
            classification(1),
        ]
        summary = await post_events(client, events)
        assert summary == {
            "inserted": 1,
            "duplicates": 0,
            "updated": 0,
            "ignored": 3,
            "rejected": 0,
        }
        assert stored.rejections(database) == []

    @pytest.mark.parametrize(
        ("mutate", "reason"),
        [
            (lambda e: e["data"].pop("id"), "missing data.id"),
            (lambda e: e["data"].pop("created_at"), "missing data.created_at"),
            (lambda e: e["data"].update(id="12ab"), "data.id is not a numeric id: '12ab'"),
            (lambda e: e["data"].update(id=-4), "data.id is out of range: -4"),
            (lambda e: e["data"].update(id=True), "data.id is not a numeric id: True"),
            (
                lambda e: e["data"].update(created_at="last tuesday"),
                "data.created_at is not an ISO 8601 timestamp: 'last tuesday'",
            ),
            (lambda e: e["data"]["links"].update(project=None), "missing data.links.project"),
            (
                lambda e: e["data"]["links"].update(workflow="wf"),
                "data.links.workflow is not a numeric id: 'wf'",
            ),
            (
                lambda e: e["data"]["links"].update(user="bob"),
                "data.links.user is not a numeric id: 'bob'",
            ),
            (lambda e: e["data"].pop("links"), "data.links is not an object"),
            (
                lambda e: e["data"]["metadata"].update(user_group_ids="5"),
                "metadata.user_group_ids is not a list",
            ),
            (lambda e: e.update(data="oops"), "data is not an object"),
        ],
    )
    async def test_bad_classification_is_kept_aside_and_the_rest_stored(
        self, client, database, mutate, reason
    ):
        bad = classification(99)
        mutate(bad)
        summary = await post_events(client, [classification(1), bad, comment(1)])
        assert summary == {
            "inserted": 2,
            "duplicates": 0,
            "updated": 0,
            "ignored": 0,
            "rejected": 1,
        }
        [rejection] = stored.rejections(database)
        assert rejection.reason == reason
        assert rejection.payload.startswith("{") and '"classification"' in rejection.payload
        assert await total(client) == 1

    @pytest.mark.parametrize("event", ["a string", 42, None, ["list"]])
    async def test_event_that_is_not_an_object_is_kept_aside(self, client, database, event):
        summary = await post_events(client, [event, classification(1)])
        assert summary["rejected"] == 1 and summary["inserted"] == 1
        [rejection] = stored.rejections(database)
        assert rejection.reason == "event is not an object"

    async def test_bad_comment_is_kept_aside(self, client, database):
        bad = comment(5)
        bad["data"]["id"] = "five"
        summary = await post_events(client, [bad, comment(6)])
        assert summary["rejected"] == 1 and summary["inserted"] == 1
        assert stored.rejections(database)[0].reason == "data.id is not a numeric id: 'five'"

    async def test_retried_batch_does_not_store_its_bad_events_twice(self, client, database):
        bad = classification(99)
        bad["data"]["id"] = "x"
        await post_events(client, [bad])
        await post_events(client, [bad])
        assert len(stored.rejections(database)) == 1


class TestRealEvents:
    async def test_real_classification_event(self, client, database):
        event = fixture_event("kinesis-classification-event.json")
        assert (await post_events(client, [event]))["inserted"] == 1
        row = stored.classifications(database)[601519919]
        assert row.project_id == 24779 and row.workflow_id == 27623 and row.user_id == 2791238
        assert row.session_time == pytest.approx(3.146)
        assert row.already_seen is False
        assert row.user_group_ids == [2655766, 12345]
        day = date(2024, 11, 27)
        assert stored.rollup(database, "group_user_workflow_daily") == {
            (2655766, 2791238, 27623, day): (1, 3146),
            (12345, 2791238, 27623, day): (1, 3146),
        }
        for params in ({}, {"project_id": "24779"}, {"workflow_id": "27623"}):
            assert await total(client, **params) == 1
        response = await client.get(
            "/classifications", params={"project_id": "24779", "period": "week"}
        )
        assert response.json() == {
            "total_count": 1,
            "data": [{"period": "2024-11-25T00:00:00.000Z", "count": 1}],
        }
        assert_rollups_match(database, [event])

    async def test_real_comment_event(self, client):
        event = fixture_event("kinesis-comment-event.json")
        assert (await post_events(client, [event]))["inserted"] == 1
        for params in ({}, {"project_id": "1874"}, {"user_id": "1326056"}):
            response = await client.get("/comments", params={**params, "period": "day"})
            assert response.json() == {
                "total_count": 1,
                "data": [{"period": "2023-04-20T00:00:00.000Z", "count": 1}],
            }


EDGE_ROWS = (
    {
        "id": 1,
        "number": 2**63 - 1,
        "moment": datetime(2024, 1, 2, 3, 4, 5),
        "day": date(2024, 2, 29),
        "flag": True,
        "seconds": 0.1,
        "text": 'say "hi" \\ {a,b} NULL',
        "document": [1, 2],
    },
    {
        "id": 2,
        "number": None,
        "moment": None,
        "day": None,
        "flag": None,
        "seconds": None,
        "text": None,
        "document": {"a": '\u00e9 "q"'},
    },
    {
        "id": 3,
        "number": 0,
        "moment": datetime(1999, 12, 31, 23, 59, 59, 999999),
        "day": date(1, 1, 1),
        "flag": False,
        "seconds": 10800.0,
        "text": "",
        "document": "NULL",
    },
    {
        "id": 4,
        "number": 7,
        "moment": datetime(2024, 11, 27, 16, 59, 58, 483000),
        "day": date(2024, 11, 27),
        "flag": True,
        "seconds": 3.146,
        "text": "NULL",
        "document": [],
    },
    {
        "id": 5,
        "number": 8,
        "moment": datetime(2024, 11, 27),
        "day": date(2024, 11, 28),
        "flag": False,
        "seconds": 1e-7,
        "text": "line\nbreak, tab\t, \u00fc\U0001f600 'quoted'",
        "document": None,
    },
)


class TestStaging:
    """Rows the backend stages (COPY, executemany) are stored as binding each row stores them."""

    def test_same_rows_as_binding_each(self, database_url):
        database = Database(database_url)
        metadata = MetaData()
        tables = [
            Table(
                name,
                metadata,
                Column("id", Integer, primary_key=True, autoincrement=False),
                Column("number", BigInteger),
                Column("moment", DateTime),
                Column("day", Date),
                Column("flag", Boolean),
                Column("seconds", Float),
                Column("text", Text),
                Column("document", JSON(none_as_null=True)),
            )
            for name in ("rows_bound", "rows_staged")
        ]
        bound, staged = tables
        rows = list(EDGE_ROWS)
        columns = list(rows[0])
        with database.write() as connection:
            metadata.create_all(connection)
        try:
            with database.write() as connection:
                connection.execute(bound.insert(), rows)
                values = [tuple(row[name] for name in columns) for row in rows]
                database.backend.stage(connection, staged, database.backend.prepare(staged, values))
            if database.backend.name == "sqlite":
                shown = ", ".join(f"typeof({name}), {name}" for name in columns)
            else:
                # json keeps its text as written, and the two ways write it with different spacing.
                shown = ", ".join(
                    f"{name}::jsonb::text" if name == "document" else f"{name}::text"
                    for name in columns
                )
            with database.read() as connection:
                stored = [
                    connection.exec_driver_sql(f"SELECT {shown} FROM {table} ORDER BY id").all()
                    for table in ("rows_bound", "rows_staged")
                ]
            assert len(stored[0]) == len(rows)
            assert stored[0] == stored[1]
        finally:
            with database.write() as connection:
                metadata.drop_all(connection)
            database.dispose()

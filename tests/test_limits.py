"""Abuse limits: each answered with a clear 4xx naming what was wrong, nothing stored."""

from __future__ import annotations

import pytest

from tests.conftest import client_for, make_settings
from tests.factories import basic_auth, classification, post_events

READ_ROUTES = ["/classifications", "/comments"]


class TestQueryStrings:
    @pytest.mark.parametrize("route", READ_ROUTES)
    async def test_repeated_parameter(self, client, route):
        response = await client.get(f"{route}?project_id=1&project_id=2")
        assert response.status_code == 400
        assert response.json() == {
            "error": "Parameter 'project_id' is given more than once; "
            "list several ids in one comma-separated value"
        }

    @pytest.mark.parametrize(
        "value", ["0000-01-01", "99999-01-01", "-001-01-01", "2023-00-10", "10000-01-01"]
    )
    async def test_absurd_dates(self, client, value):
        response = await client.get("/classifications", params={"start_date": value})
        assert response.status_code == 400
        assert response.json() == {"error": "Invalid date."}

    async def test_far_but_valid_dates_answer_zero(self, client):
        await post_events(client, [classification(1)])
        response = await client.get(
            "/classifications",
            params={"start_date": "0001-01-01", "end_date": "9999-12-31", "period": "year"},
        )
        assert response.json() == {
            "total_count": 1,
            "data": [{"period": "2023-01-01T00:00:00.000Z", "count": 1}],
        }

    async def test_ids_per_list(self, client):
        at_limit = ",".join(str(i) for i in range(1, 1001))
        assert (
            await client.get("/classifications", params={"project_id": at_limit})
        ).status_code == 200
        over = at_limit + ",1001"
        response = await client.get("/comments", params={"user_id": over})
        assert response.status_code == 400
        assert response.json() == {"error": "Too many ids in user_id: at most 1000 are allowed"}

    async def test_very_long_query_string_is_refused_not_crashing(self, client):
        response = await client.get("/classifications", params={"project_id": "1" * 60_000})
        assert response.status_code == 400


class TestIngestLimits:
    async def test_body_size(self, database_url):
        async with client_for(make_settings(database_url, max_body_bytes=2_000)) as http:
            events = [classification(i) for i in range(1, 20)]
            response = await http.post("/kinesis", json={"payload": events}, headers=basic_auth())
            assert response.status_code == 413
            assert response.json() == {
                "error": "Request body is larger than the limit of 2000 bytes"
            }
            assert (await http.get("/classifications")).json() == {"total_count": 0}

    async def test_events_per_batch(self, database_url):
        async with client_for(make_settings(database_url, max_events_per_batch=5)) as http:
            events = [classification(i) for i in range(1, 7)]
            response = await http.post("/kinesis", json={"payload": events}, headers=basic_auth())
            assert response.status_code == 413
            assert response.json() == {"error": "Too many events in one batch: 6, the limit is 5"}
            assert (await http.get("/classifications")).json() == {"total_count": 0}

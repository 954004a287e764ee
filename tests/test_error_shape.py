"""Every error the service answers has one JSON body: exactly ``{"error": "<message>"}``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.conftest import client_for, make_settings

BODY_LIMIT = 1000
EVENT_LIMIT = 3


def assert_error(response: httpx.Response, status_code: int) -> str:
    """The response is ``status_code`` with a JSON body holding one non-empty ``error`` string."""
    assert response.status_code == status_code, response.text
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type == "application/json", response.headers.get("content-type")
    body: Any = response.json()
    assert isinstance(body, dict), body
    assert list(body) == ["error"], body
    message = body["error"]
    assert isinstance(message, str), body
    assert message.strip(), body
    return message


@pytest.fixture
async def small_body_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(database_url, max_body_bytes=BODY_LIMIT)) as http:
        yield http


@pytest.fixture
async def small_batch_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(database_url, max_events_per_batch=EVENT_LIMIT)) as http:
        yield http


def json_body_of_size(size: int) -> bytes:
    """A valid ``{"payload": []}`` document padded with whitespace to exactly ``size`` bytes."""
    head, tail = b'{"payload": [', b"]}"
    body = head + b" " * (size - len(head) - len(tail)) + tail
    assert len(body) == size
    return body


class TestErrorShape:
    @pytest.mark.parametrize(
        "path",
        [
            "/no-such-route",
            "/comments/extra",
            "/status",
            "/dashboard/no-such-page",
            "/dashboard/static/no-such-file.js",
            "/dashboard/data/no-such-data",
        ],
    )
    async def test_unknown_route_is_404(self, client: httpx.AsyncClient, path: str) -> None:
        assert_error(await client.get(path), 404)

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/classifications"),
            ("DELETE", "/classifications"),
            ("PUT", "/comments"),
            ("GET", "/kinesis"),
            ("POST", "/dashboard/"),
            ("DELETE", "/dashboard/data/busiest_projects"),
        ],
    )
    async def test_wrong_method_is_405(
        self, client: httpx.AsyncClient, method: str, path: str
    ) -> None:
        assert_error(await client.request(method, path), 405)

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("start_date=2023-02-30", "Invalid date."),
            ("start_date=2023-09-21&end_date=2023-09-20", "Date range entered is not valid"),
            (
                "period=fortnight",
                "Invalid bucket option. Valid options for period is day, week, month, or year",
            ),
            (
                "project_id=1&workflow_id=2",
                "Cannot query by workflow and project. Either query by one or the other",
            ),
            ("workflow_id=1,two", None),
        ],
    )
    async def test_invalid_classification_query_is_400(
        self, client: httpx.AsyncClient, query: str, message: str | None
    ) -> None:
        answered = assert_error(await client.get(f"/classifications?{query}"), 400)
        if message is not None:
            assert answered == message

    @pytest.mark.parametrize(
        "path",
        [
            "/dashboard/data/busiest_projects?days=0",
            "/dashboard/data/busiest_projects?limit=many",
            "/dashboard/data/busiest_projects?days=1&days=2",
            "/dashboard/data/project_workflows",
            "/dashboard/data/project_workflows?project_id=1;2",
        ],
    )
    async def test_invalid_dashboard_data_query_is_400(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        assert_error(await client.get(path), 400)

    async def test_operator_data_without_a_token_is_401(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/dashboard/data/operator"), 401)

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            factories.basic_auth(password="wrong"),
            factories.basic_auth(username="someone-else"),
            {"Authorization": "Bearer abc"},
            {"Authorization": "Basic not-base64!"},
        ],
        ids=["none", "wrong-password", "wrong-user", "bearer", "garbled"],
    )
    async def test_ingest_without_good_credentials_is_403(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        events = [factories.comment()]
        response = await client.post("/kinesis", json={"payload": events}, headers=headers)

        assert_error(response, 403)
        # Nothing was counted.
        assert (await client.get("/comments")).json() == {"total_count": 0}

    @pytest.mark.parametrize(
        "body",
        [b"this is not json", b'{"payload": [', b"", b'{"events": []}', b'{"payload": {}}', b"[]"],
        ids=["text", "truncated", "empty", "no-payload", "payload-not-list", "array"],
    )
    async def test_ingest_body_that_is_not_a_payload_is_400(
        self, client: httpx.AsyncClient, body: bytes
    ) -> None:
        response = await client.post(
            "/kinesis",
            content=body,
            headers={**factories.basic_auth(), "Content-Type": "application/json"},
        )

        assert_error(response, 400)

    async def test_body_under_the_limit_is_accepted(
        self, small_body_client: httpx.AsyncClient
    ) -> None:
        response = await small_body_client.post(
            "/kinesis", content=json_body_of_size(BODY_LIMIT), headers=factories.basic_auth()
        )

        assert response.status_code == 200, response.text

    async def test_body_over_the_limit_is_413(self, small_body_client: httpx.AsyncClient) -> None:
        response = await small_body_client.post(
            "/kinesis", content=json_body_of_size(BODY_LIMIT + 1), headers=factories.basic_auth()
        )

        assert_error(response, 413)

    async def test_streamed_body_over_the_limit_is_413(
        self, small_body_client: httpx.AsyncClient
    ) -> None:
        body = json_body_of_size(BODY_LIMIT * 3)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
            for start in range(0, len(body), 100):
                yield body[start : start + 100]

        response = await small_body_client.post(
            "/kinesis", content=chunks(), headers=factories.basic_auth()
        )

        assert "content-length" not in response.request.headers
        assert_error(response, 413)

    async def test_too_many_events_is_413(self, small_batch_client: httpx.AsyncClient) -> None:
        events = [factories.comment(number) for number in range(1, EVENT_LIMIT + 2)]
        response = await small_batch_client.post(
            "/kinesis", json={"payload": events}, headers=factories.basic_auth()
        )

        assert_error(response, 413)
        # The batch was refused whole.
        assert (await small_batch_client.get("/comments")).json() == {"total_count": 0}

    async def test_batch_at_the_event_limit_is_accepted(
        self, small_batch_client: httpx.AsyncClient
    ) -> None:
        events = [factories.comment(number) for number in range(1, EVENT_LIMIT + 1)]
        await factories.post_events(small_batch_client, events)

        assert (await small_batch_client.get("/comments")).json() == {"total_count": EVENT_LIMIT}

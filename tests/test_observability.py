"""GET /metrics, request ids, and structured logs that never hold secrets."""

from __future__ import annotations

import json
import logging
import re

import pytest

from eras.api.observability import JsonFormatter
from tests import tokens
from tests.conftest import client_for, make_settings
from tests.factories import INGEST_PASSWORD, basic_auth, classification, comment, post_events


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one Prometheus sample, or None when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


class TestMetrics:
    async def test_ingest_counters(self, client):
        bad = classification(3)
        bad["data"]["id"] = "x"
        await post_events(client, [classification(1), classification(1), comment(1), bad])
        await post_events(client, [{"source": "talk", "type": "like"}, classification(1)])
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        expected = {"inserted": 2, "duplicates": 2, "ignored": 1, "rejected": 1}
        for outcome, count in expected.items():
            assert sample(text, "eras_ingested_events_total", outcome=outcome) == count, outcome
        assert sample(text, "eras_ingested_events_total", outcome="updated") is None

    async def test_latency_histogram_per_route_template(self, database_url):
        settings = make_settings(database_url, panoptes_public_key=tokens.key_pair().public_pem)
        async with client_for(settings) as http:
            for _ in range(3):
                await http.get("/classifications")
            await http.get("/classifications?period=bad")
            await http.get("/classifications/users/100", headers=tokens.bearer(100))
            await http.get("/no/such/route")
            text = (await http.get("/metrics")).text
        name = "eras_http_request_duration_seconds_count"
        assert sample(text, name, method="GET", route="/classifications", status="200") == 3
        assert sample(text, name, method="GET", route="/classifications", status="400") == 1
        assert (
            sample(text, name, method="GET", route="/classifications/users/{user_id}", status="200")
            == 1
        )
        assert sample(text, name, route="unmatched", status="404") == 1
        assert "/classifications/users/100" not in text
        bucket = sample(
            text,
            "eras_http_request_duration_seconds_bucket",
            route="/classifications",
            status="200",
            le="+Inf",
        )
        assert bucket == 3

    async def test_metrics_token(self, database_url):
        settings = make_settings(database_url, metrics_token="scrape-me")
        async with client_for(settings) as http:
            assert (await http.get("/metrics")).status_code == 401
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer scrape-mf"})
            assert wrong.status_code == 401
            assert wrong.json() == {"error": "A valid metrics token is required"}
            right = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
            assert right.status_code == 200
            assert "eras_http_request_duration_seconds" in right.text


class TestRequestIds:
    async def test_generated_when_absent(self, client):
        response = await client.get("/")
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
        assert response.headers["x-request-id"] != (await client.get("/")).headers["x-request-id"]

    async def test_valid_incoming_id_is_kept(self, client):
        response = await client.get("/", headers={"X-Request-ID": "lb-7f3a.01"})
        assert response.headers["x-request-id"] == "lb-7f3a.01"

    @pytest.mark.parametrize("value", ["has spaces", "x" * 65, 'quote"s', "ü", "a\tb"])
    async def test_unsafe_incoming_id_is_replaced(self, client, value):
        response = await client.get("/", headers={"X-Request-ID": value.encode()})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])

    async def test_errors_carry_the_id_too(self, client):
        response = await client.get("/classifications?period=bad")
        assert response.status_code == 400
        assert response.headers["x-request-id"]


class TestLogs:
    async def test_json_lines_with_request_id_and_no_secrets(self, database_url, caplog):
        secret_token = tokens.token(100)
        secret_body = "SECRET-EVENT-BODY-4f1c"
        settings = make_settings(database_url, panoptes_public_key=tokens.key_pair().public_pem)
        event = classification(1)
        event["data"]["annotations"] = [{"task": "T0", "value": secret_body}]
        bad = classification(2)
        bad["data"]["id"] = secret_body
        with caplog.at_level(logging.DEBUG, logger="eras"):
            async with client_for(settings) as http:
                await post_events(http, [event, bad])
                await http.post(
                    "/kinesis",
                    json={"payload": [event]},
                    headers=basic_auth(password="wrong-" + INGEST_PASSWORD),
                )
                await http.get(
                    "/classifications/users/100",
                    headers={"Authorization": f"Bearer {secret_token}"},
                )
                await http.get(
                    "/classifications/users/100",
                    headers={"Authorization": f"Bearer {secret_token}x"},
                )
                await http.get("/classifications/users/100", headers={"X-Request-ID": "trace-42"})
        formatter = JsonFormatter()
        lines = [formatter.format(record) for record in caplog.records]
        access = [json.loads(line) for line in lines if '"message":"request"' in line]
        assert len(access) == 5
        assert {entry["route"] for entry in access} == {
            "/kinesis",
            "/classifications/users/{user_id}",
        }
        assert [entry["status"] for entry in access] == [200, 403, 200, 401, 401]
        assert all(re.fullmatch(r"[\w.-]+", entry["request_id"]) for entry in access)
        assert access[-1]["request_id"] == "trace-42"
        everything = "\n".join(lines)
        for secret in (secret_token, INGEST_PASSWORD, secret_body, "Bearer", "Basic"):
            assert secret not in everything, secret

"""The dashboard over HTTP: its pages and files, the data routes it adds (the busiest projects
of recent days, a project's workflows, the operator's view), the setting that turns it off, and
``eras demo``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from eras.config import Settings
from tests import tokens
from tests.conftest import client_for, make_settings
from tests.environment import child_environment
from tests.factories import classification, comment, post_events
from tests.fake_panoptes import FakePanoptes

ERAS = Path(sys.executable).with_name("eras")


def days_ago(days: int, hour: int = 12) -> str:
    moment = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return (moment - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def recent_events() -> list[dict[str, object]]:
    """Project 1: 3 today, 2 eight days ago; project 2: 4 yesterday; project 3: 1 today."""
    events: list[dict[str, object]] = []
    number = 0
    for project, workflow, days, count in [
        (1, 11, 0, 2),
        (1, 12, 0, 1),
        (1, 13, 8, 2),
        (2, 21, 1, 4),
        (3, 31, 0, 1),
    ]:
        for _ in range(count):
            number += 1
            created = days_ago(days, hour=0)
            events.append(
                classification(
                    number,
                    created_at=created,
                    project=project,
                    workflow=workflow,
                    started_at=None,
                    finished_at=None,
                )
            )
    return events


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await post_events(client, recent_events())
    return client


class TestBusiestProjects:
    async def test_most_classified_first_over_the_last_seven_days(self, seeded) -> None:
        response = await seeded.get("/dashboard/data/busiest_projects")

        assert response.status_code == 200, response.text
        body = response.json()
        today = datetime.now(UTC).date()
        assert body["start_date"] == (today - timedelta(days=6)).isoformat()
        assert body["end_date"] == today.isoformat()
        assert [(p["project_id"], p["total_count"]) for p in body["projects"]] == [
            (2, 4),
            (1, 3),
            (3, 1),
        ]

    async def test_days_and_limit(self, seeded) -> None:
        response = await seeded.get("/dashboard/data/busiest_projects?days=1&limit=1")
        assert [p["project_id"] for p in response.json()["projects"]] == [1]
        response = await seeded.get("/dashboard/data/busiest_projects?days=9")
        assert response.json()["projects"][0] == {
            "project_id": 1,
            "total_count": 5,
            "time_spent": 0.0,
        }

    async def test_no_events_no_projects(self, client) -> None:
        response = await client.get("/dashboard/data/busiest_projects")
        assert response.status_code == 200
        assert response.json()["projects"] == []

    @pytest.mark.parametrize(
        "query",
        ["days=0", "days=367", "days=x", "days=-1", "limit=0", "limit=101", "limit=2.5"],
    )
    async def test_bad_values_are_400(self, client, query: str) -> None:
        response = await client.get(f"/dashboard/data/busiest_projects?{query}")
        assert response.status_code == 400
        name = query.split("=")[0]
        assert response.json()["error"].startswith(f"Invalid {name}: expected a whole number")


class TestProjectWorkflows:
    async def test_workflows_found_in_the_data_with_their_recent_rate(self, seeded) -> None:
        response = await seeded.get("/dashboard/data/project_workflows?project_id=1")

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["project_id"] == 1 and body["days"] == 14
        assert [
            (w["workflow_id"], w["total_count"], w["recent_count"], w["daily_rate"])
            for w in body["workflows"]
        ] == [(11, 2, 2, 0.14), (13, 2, 2, 0.14), (12, 1, 1, 0.07)]

    async def test_recent_days_leave_older_classifications_out(self, seeded) -> None:
        body = (await seeded.get("/dashboard/data/project_workflows?project_id=1&days=7")).json()
        assert {w["workflow_id"]: w["recent_count"] for w in body["workflows"]} == {
            11: 2,
            12: 1,
            13: 0,
        }

    async def test_a_project_without_classifications_has_no_workflows(self, seeded) -> None:
        body = (await seeded.get("/dashboard/data/project_workflows?project_id=99")).json()
        assert body["workflows"] == []

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("", "project_id is required: one project id"),
            ("project_id=1,2", "project_id is required: one project id"),
            ("project_id=x", None),
            ("project_id=1&days=0", "Invalid days: expected a whole number from 1 to 366"),
        ],
    )
    async def test_bad_values_are_400(self, client, query: str, message: str | None) -> None:
        response = await client.get(f"/dashboard/data/project_workflows?{query}")
        assert response.status_code == 400
        if message is not None:
            assert response.json() == {"error": message}


@pytest.fixture
async def operator_client(
    database_url: str, panoptes: FakePanoptes
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url, panoptes_url=panoptes.url, panoptes_public_key=tokens.key_pair().public_pem
    )
    async with client_for(settings) as http:
        yield http


def bearer(user_id: int, *, admin: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.token(user_id, admin=admin)}"}


class TestOperator:
    async def test_admins_see_ingest_counters_and_rejected_events(self, operator_client) -> None:
        events: list[object] = [
            classification(1),
            classification(1),
            comment(1),
            classification(2, project=None),
        ]
        await post_events(operator_client, events)

        response = await operator_client.get(
            "/dashboard/data/operator", headers=bearer(900, admin=True)
        )

        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "private, no-cache"
        body = response.json()
        assert body["ingested"] == {
            "inserted": 2,
            "duplicates": 1,
            "updated": 0,
            "ignored": 0,
            "rejected": 1,
        }
        assert body["rejected"]["count"] == 1
        [latest] = body["rejected"]["latest"]
        assert latest["reason"] and latest["received_at"].endswith("Z")
        assert body["started_at"].endswith("Z")

    async def test_without_a_token_401(self, operator_client) -> None:
        response = await operator_client.get("/dashboard/data/operator")
        assert response.status_code == 401
        assert response.json() == {"error": "Missing Authorization header"}

    async def test_a_volunteer_is_refused_403(self, operator_client) -> None:
        response = await operator_client.get("/dashboard/data/operator", headers=bearer(5))
        assert response.status_code == 403
        assert set(response.json()) == {"error"}


class TestPages:
    @pytest.mark.parametrize(
        "path",
        [
            "/dashboard/",
            "/dashboard/project",
            "/dashboard/group",
            "/dashboard/volunteer",
            "/dashboard/operator",
        ],
    )
    async def test_each_page_is_html_with_its_name_and_a_strict_policy(
        self, client, path: str
    ) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        page = path.strip("/").split("/")[-1]
        assert f'data-page="{"overview" if page == "dashboard" else page}"' in response.text
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy

    async def test_plotly_is_served_from_the_installed_package(self, client) -> None:
        response = await client.get("/dashboard/static/plotly.min.js")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/javascript")
        assert b"plotly.js" in response.content[:2000]
        assert len(response.content) > 1_000_000

    @pytest.mark.parametrize(
        ("name", "kind"), [("app.js", "text/javascript"), ("style.css", "text/css")]
    )
    async def test_own_files(self, client, name: str, kind: str) -> None:
        response = await client.get(f"/dashboard/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)

    @pytest.mark.parametrize(
        "name", ["missing.js", "..%2Fapp.py", ".hidden.js", "index.html", "%2e%2e%2fpyproject.toml"]
    )
    async def test_nothing_else_is_served(self, client, name: str) -> None:
        response = await client.get(f"/dashboard/static/{name}")
        assert response.status_code == 404
        assert set(response.json()) == {"error"}

    async def test_the_setting_turns_the_dashboard_off(self, database_url: str) -> None:
        settings: Settings = make_settings(database_url, dashboard=False)
        async with client_for(settings) as http:
            for path in ("/dashboard/", "/dashboard/data/busiest_projects"):
                response = await http.get(path)
                assert response.status_code == 404
                assert set(response.json()) == {"error"}
            assert (await http.get("/classifications")).status_code == 200


class TestDemo:
    def test_demo_fills_an_empty_database_once(self, database_url: str) -> None:
        environment = child_environment(ERAS_DATABASE_URL=database_url)

        def demo() -> str:
            result = subprocess.run(
                [str(ERAS), "demo", "--events", "3000"],
                env=environment,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        first = demo()
        assert "inserted 3,000" in first and "rejected 0" in first
        assert "nothing loaded" in demo()
        # The counts are those of the one load: served as the API answers them.
        settings = make_settings(database_url)

        async def totals() -> int:
            async with client_for(settings) as http:
                classifications = (await http.get("/classifications")).json()["total_count"]
                comments = (await http.get("/comments")).json()["total_count"]
                busy = (await http.get("/dashboard/data/busiest_projects")).json()
                assert busy["projects"], "the sample reaches the last seven days"
                return int(classifications + comments)

        assert asyncio.run(totals()) == 3000

"""The calls the original's clients are missing: breakdown by id, project time, recents by the
exact time, conditional GET and lenient parameters. Each is asked for explicitly, so an answer
without them is the original's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from eras.api.common import query_pairs
from eras.app import create_app
from tests import tokens
from tests.conftest import client_for, make_settings
from tests.factories import basic_auth, classification, comment, post_events

USER = 1234


@dataclass(frozen=True)
class Made:
    """One classification posted, with the facts the expected numbers come from."""

    id: int
    project: int
    workflow: int
    at: datetime  # UTC
    seconds: float = 1.0
    user: int = USER

    def event(self) -> dict[str, Any]:
        started = self.at - timedelta(seconds=self.seconds)
        return classification(
            self.id,
            project=self.project,
            workflow=self.workflow,
            user=self.user,
            created_at=stamp(self.at),
            started_at=stamp(started),
            finished_at=stamp(self.at),
        )


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def period_text(day: date) -> str:
    return f"{day.isoformat()}T00:00:00.000Z"


async def get(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def refused(client: httpx.AsyncClient, path: str, **params: str) -> str:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    error: str = response.json()["error"]
    return error


# --- breakdown -------------------------------------------------------------------------------

# Two projects, three workflows, over two weeks; workflow 3003 of project 2 has nothing.
BREAKDOWN_DATA = [
    Made(1, 1, 3001, datetime(2024, 11, 25, 9), 10.0),
    Made(2, 1, 3001, datetime(2024, 11, 25, 10), 2.5),
    Made(3, 1, 3002, datetime(2024, 11, 26, 23, 59, 59, 999000), 4.0),
    Made(4, 2, 3004, datetime(2024, 12, 2, 0, 0), 1.25),
    Made(5, 1, 3001, datetime(2024, 12, 3, 12), 8.0, user=77),
]


class TestBreakdown:
    @pytest.fixture
    async def data(self, client):
        await post_events(client, [made.event() for made in BREAKDOWN_DATA])
        await post_events(
            client,
            [
                comment(1, project_id=1, user_id=10, created_at="2024-11-25T10:00:00.000Z"),
                comment(2, project_id=1, user_id=11, created_at="2024-11-26T10:00:00.000Z"),
                comment(3, project_id=2, user_id=10, created_at="2024-12-02T10:00:00.000Z"),
            ],
        )

    async def test_by_workflow_in_the_order_given(self, client, data):
        body = await get(
            client,
            "/classifications",
            workflow_id="3002,3001,3003,3001",
            period="week",
            breakdown="true",
        )
        assert body == {
            "total_count": 4,
            "data": [
                {"period": period_text(date(2024, 11, 25)), "count": 3},
                {"period": period_text(date(2024, 12, 2)), "count": 1},
            ],
            "breakdown": [
                {
                    "workflow_id": 3002,
                    "total_count": 1,
                    "data": [{"period": period_text(date(2024, 11, 25)), "count": 1}],
                },
                {
                    "workflow_id": 3001,
                    "total_count": 3,
                    "data": [
                        {"period": period_text(date(2024, 11, 25)), "count": 2},
                        {"period": period_text(date(2024, 12, 2)), "count": 1},
                    ],
                },
                {"workflow_id": 3003, "total_count": 0, "data": []},
            ],
        }

    async def test_by_project_without_a_period(self, client, data):
        body = await get(
            client,
            "/classifications",
            project_id="2, 9 ,1",
            breakdown="TRUE",
            end_date="2024-12-02",
        )
        assert body == {
            "total_count": 4,
            "breakdown": [
                {"project_id": 2, "total_count": 1},
                {"project_id": 9, "total_count": 0},
                {"project_id": 1, "total_count": 3},
            ],
        }

    async def test_the_summed_part_is_the_call_without_breakdown(self, client, data):
        params = {"project_id": "1,2", "period": "day", "start_date": "2024-11-26"}
        summed = await get(client, "/classifications", **params)
        broken = await get(client, "/classifications", **params, breakdown="true")
        assert {key: broken[key] for key in summed} == summed
        assert set(broken) == {*summed, "breakdown"}

    @pytest.mark.parametrize("value", ["false", "1", "yes", "", "truee"])
    async def test_any_other_value_is_off(self, client, data, value):
        plain = await get(client, "/classifications", workflow_id="3001")
        assert await get(client, "/classifications", workflow_id="3001", breakdown=value) == plain
        assert await get(client, "/classifications", breakdown=value) == {"total_count": 5}

    async def test_needs_a_list_to_break_down_by(self, client):
        assert await refused(client, "/classifications", breakdown="true") == (
            "breakdown=true needs a project_id or a workflow_id list to break the counts down by"
        )
        assert await refused(client, "/comments", breakdown="true", period="day") == (
            "breakdown=true needs a project_id or a user_id list to break the counts down by"
        )

    async def test_comments_by_project_or_by_user_not_both(self, client):
        assert await refused(
            client, "/comments", breakdown="true", project_id="1", user_id="10"
        ) == ("breakdown=true breaks comments down by project_id or by user_id: not both")

    async def test_the_original_validation_comes_first(self, client):
        assert (
            await refused(client, "/classifications", breakdown="true", start_date="2024-13-01")
            == "Invalid date."
        )
        assert await refused(
            client, "/classifications", breakdown="true", project_id="1", workflow_id="2"
        ) == ("Cannot query by workflow and project. Either query by one or the other")

    async def test_comments_by_project_and_by_user(self, client, data):
        by_project = await get(client, "/comments", project_id="1,2", breakdown="true")
        assert by_project == {
            "total_count": 3,
            "breakdown": [
                {"project_id": 1, "total_count": 2},
                {"project_id": 2, "total_count": 1},
            ],
        }
        by_user = await get(
            client, "/comments", user_id="11,10,12", period="month", breakdown="true"
        )
        november, december = period_text(date(2024, 11, 1)), period_text(date(2024, 12, 1))
        assert by_user == {
            "total_count": 3,
            "data": [{"period": november, "count": 2}, {"period": december, "count": 1}],
            "breakdown": [
                {"user_id": 11, "total_count": 1, "data": [{"period": november, "count": 1}]},
                {
                    "user_id": 10,
                    "total_count": 2,
                    "data": [
                        {"period": november, "count": 1},
                        {"period": december, "count": 1},
                    ],
                },
                {"user_id": 12, "total_count": 0, "data": []},
            ],
        }

    async def test_one_statement_for_any_number_of_ids(self, settings):
        app = create_app(settings)
        reader = app.state.database.reader
        fetch = reader.fetch
        statements: list[int] = []

        async def counting(reads: Any) -> Any:
            statements.append(len(reads))
            return await fetch(reads)

        reader.fetch = counting
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://eras.test"
            ) as http:
                await post_events(http, [made.event() for made in BREAKDOWN_DATA])
                for ids in ("3001", ",".join(str(3000 + i) for i in range(1, 49))):
                    statements.clear()
                    response = await http.get(
                        "/classifications",
                        params={
                            "workflow_id": ids,
                            "breakdown": "true",
                            "period": "day",
                            "start_date": "2024-11-01",
                            "end_date": "2024-12-31",
                        },
                    )
                    assert response.status_code == 200
                    assert len(response.json()["breakdown"]) == len(ids.split(","))
                    # One answer, one read, one statement.
                    assert statements == [1]
        finally:
            await app.state.close()


# Random lists, ranges, periods and time_spent: every entry is what the single-id call answers.
RANDOM_DAYS = [date(2023, 12, 30) + timedelta(days=n) for n in range(0, 70, 3)]


def random_data() -> list[Made]:
    made = []
    for n in range(60):
        day = RANDOM_DAYS[(n * 7) % len(RANDOM_DAYS)]
        made.append(
            Made(
                100 + n,
                project=1 + n % 3,
                workflow=10 + (n * 5) % 7,
                at=datetime.combine(day, datetime.min.time()) + timedelta(hours=n % 24),
                seconds=0.5 + n % 9,
                user=500 + n % 4,
            )
        )
    return made


@st.composite
def breakdown_queries(draw: st.DrawFn) -> dict[str, str]:
    by = draw(st.sampled_from(["project_id", "workflow_id"]))
    pool = [1, 2, 3, 4] if by == "project_id" else list(range(9, 18))
    ids = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=6))
    params = {by: ",".join(map(str, ids)), "breakdown": "true"}
    start = draw(st.none() | st.sampled_from(RANDOM_DAYS))
    end = draw(st.none() | st.sampled_from(RANDOM_DAYS))
    if start and end and start > end:
        start, end = end, start
    if start:
        params["start_date"] = (start + timedelta(days=draw(st.integers(-1, 1)))).isoformat()
    if end:
        params["end_date"] = (end + timedelta(days=draw(st.integers(-1, 1)))).isoformat()
    if start and end and params["start_date"] > params["end_date"]:
        params["end_date"] = params["start_date"]
    period = draw(st.none() | st.sampled_from(["day", "week", "month", "year"]))
    if period:
        params["period"] = period
    if draw(st.booleans()):
        params["time_spent"] = "true"
    return params


def test_entries_equal_the_single_id_calls(database_url: str) -> None:
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(client_for(make_settings(database_url))) as client,
    ):
        portal.call(post_events, client, [made.event() for made in random_data()])

        async def check(params: dict[str, str]) -> None:
            broken = await get(client, "/classifications", **params)
            by = "project_id" if "project_id" in params else "workflow_id"
            listed = list(dict.fromkeys(int(i) for i in params[by].split(",")))
            assert [entry[by] for entry in broken["breakdown"]] == listed
            single_params = {k: v for k, v in params.items() if k not in (by, "breakdown")}
            for entry in broken["breakdown"]:
                single = await get(
                    client, "/classifications", **single_params, **{by: str(entry[by])}
                )
                assert {k: v for k, v in entry.items() if k != by} == single, (params, entry)
            summed = await get(client, "/classifications", **single_params, **{by: params[by]})
            assert {k: v for k, v in broken.items() if k != "breakdown"} == summed

        @settings(
            max_examples=30,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(params=breakdown_queries())
        def each(params: dict[str, str]) -> None:
            portal.call(check, params)

        each()


# --- project time ----------------------------------------------------------------------------


class TestProjectTime:
    async def test_sum_of_the_session_times_per_bucket(self, client):
        made = [
            Made(1, 5, 50, datetime(2024, 3, 4, 8), 12.5),
            Made(2, 5, 51, datetime(2024, 3, 4, 23, 59, 59), 0.75),
            Made(3, 5, 50, datetime(2024, 3, 5, 0, 0, 1), 30.0),
            Made(4, 6, 60, datetime(2024, 3, 5, 12), 100.0),  # another project
            Made(5, 5, 50, datetime(2024, 3, 12, 9), 2.25, user=99),
        ]
        await post_events(client, [m.event() for m in made])
        # Without started_at/finished_at a classification counts with no time.
        untimed = classification(6, project=5, workflow=50, created_at="2024-03-12T10:00:00.000Z")
        untimed["data"]["metadata"].pop("started_at")
        untimed["data"]["metadata"].pop("finished_at")
        await post_events(client, [untimed])

        body = await get(
            client,
            "/classifications",
            project_id="5",
            time_spent="true",
            period="day",
            end_date="2024-03-12",
        )
        mine = [m for m in made if m.project == 5]
        by_day: dict[date, list[Made]] = {}
        for m in mine:
            by_day.setdefault(m.at.date(), []).append(m)
        assert body == {
            "total_count": len(mine) + 1,
            "time_spent": sum(m.seconds for m in mine),
            "data": [
                {
                    "period": period_text(day),
                    "count": len(found) + (1 if day == date(2024, 3, 12) else 0),
                    "session_time": sum(m.seconds for m in found),
                }
                for day, found in sorted(by_day.items())
            ],
        }
        assert await get(client, "/classifications", project_id="5", time_spent="True") == {
            "total_count": 5,
            "time_spent": 45.5,
        }
        assert await get(client, "/classifications", time_spent="true") == {
            "total_count": 6,
            "time_spent": 145.5,
        }
        # Asked for with breakdown: in every entry too.
        assert await get(
            client,
            "/classifications",
            workflow_id="51,50",
            time_spent="true",
            breakdown="true",
            start_date="2024-03-05",
        ) == {
            "total_count": 3,
            "time_spent": 32.25,
            "breakdown": [
                {"workflow_id": 51, "total_count": 0, "time_spent": 0.0},
                {"workflow_id": 50, "total_count": 3, "time_spent": 32.25},
            ],
        }

    async def test_off_by_default(self, client):
        await post_events(client, [Made(1, 5, 50, datetime(2024, 3, 4, 8), 12.5).event()])
        assert await get(client, "/classifications", project_id="5", period="year") == {
            "total_count": 1,
            "data": [{"period": period_text(date(2024, 1, 1)), "count": 1}],
        }


# --- recents by the exact time ---------------------------------------------------------------


@pytest.fixture
async def personal(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, panoptes_public_key=tokens.key_pair().public_pem)
    async with client_for(settings) as http:
        yield http


async def recents(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/classifications/users/{USER}",
        params={
            "project_contributions": "true",
            "order_project_contributions_by": "recents",
            **params,
        },
        headers=tokens.bearer(USER),
    )
    assert response.status_code == 200, response.text
    projects: list[dict[str, Any]] = response.json()["project_contributions"]
    return projects


def expected_recents(made: list[Made], start: date | None, end: date | None) -> list[Any]:
    """Computed from what was posted: latest time in range, then larger count, lower id."""
    chosen = [
        m
        for m in made
        if m.user == USER and (start is None or m.at.date() >= start)
        if end is None or m.at.date() <= end
    ]
    latest: dict[int, datetime] = {}
    counts: dict[int, int] = {}
    for m in chosen:
        latest[m.project] = max(latest.get(m.project, m.at), m.at)
        counts[m.project] = counts.get(m.project, 0) + 1
    order = sorted(latest, key=lambda p: (-counts[p], p))
    order.sort(key=lambda p: latest[p], reverse=True)
    return [
        {"project_id": p, "count": counts[p], "last_contributed_at": stamp(latest[p])}
        for p in order
    ]


class TestRecents:
    async def test_ranges_that_end_mid_day(self, personal):
        made = [
            # Project 1: many, early on the last day of the range, and later after it.
            *(Made(n, 1, 10, datetime(2024, 2, 10, 8, n)) for n in range(1, 6)),
            Made(6, 1, 10, datetime(2024, 2, 11, 0, 30)),
            # Project 2: one, later on the same day.
            Made(7, 2, 20, datetime(2024, 2, 10, 17, 45, 1, 250000)),
            # Project 3: whole months in the range (read from monthly rows) and the edges.
            Made(8, 3, 30, datetime(2023, 12, 31, 23, 59, 59, 999000)),
            Made(9, 3, 30, datetime(2024, 1, 15, 12)),
            Made(10, 3, 30, datetime(2024, 2, 10, 23, 59, 59, 998000)),
            Made(11, 4, 40, datetime(2024, 1, 31, 23, 0)),
        ]
        await post_events(personal, [m.event() for m in made])
        ranges = [
            (None, None),
            (None, date(2024, 2, 10)),
            (date(2024, 1, 1), date(2024, 2, 10)),
            (date(2024, 1, 1), date(2024, 1, 31)),
            (date(2023, 12, 31), date(2024, 1, 14)),
            (date(2024, 2, 11), None),
        ]
        for start, end in ranges:
            params = {}
            if start:
                params["start_date"] = start.isoformat()
            if end:
                params["end_date"] = end.isoformat()
            want = expected_recents(made, start, end)
            assert await recents(personal, **params) == want, params
            assert await recents(personal, period="month", **params) == want, params
        # Spelled out once: the last day of the range ends at 23:59:59.998 on project 3.
        assert [item["project_id"] for item in await recents(personal, end_date="2024-02-10")] == [
            3,
            2,
            1,
            4,
        ]

    async def test_the_same_second_on_two_projects(self, personal):
        made = [
            Made(1, 8, 80, datetime(2024, 6, 1, 10, 11, 12, 345000)),
            Made(2, 9, 90, datetime(2024, 6, 1, 10, 11, 12, 678000)),
            Made(3, 8, 80, datetime(2024, 5, 1, 10)),
        ]
        await post_events(personal, [m.event() for m in made])
        assert await recents(personal) == [
            {"project_id": 9, "count": 1, "last_contributed_at": "2024-06-01T10:11:12.678Z"},
            {"project_id": 8, "count": 2, "last_contributed_at": "2024-06-01T10:11:12.345Z"},
        ]

    async def test_the_same_millisecond_goes_to_the_larger_count_then_the_lower_id(self, personal):
        at = datetime(2024, 6, 1, 10, 11, 12, 345000)
        made = [
            Made(1, 12, 120, at),
            Made(2, 11, 110, at),
            Made(3, 13, 130, at),
            Made(4, 13, 130, at - timedelta(days=3)),
        ]
        await post_events(personal, [m.event() for m in made])
        assert [item["project_id"] for item in await recents(personal)] == [13, 11, 12]

    async def test_a_time_with_an_offset_is_shown_in_utc(self, personal):
        event = Made(1, 8, 80, datetime(2024, 6, 1)).event()
        event["data"]["created_at"] = "2024-06-01T01:30:00.5+02:00"
        await post_events(personal, [event])
        assert await recents(personal) == [
            {"project_id": 8, "count": 1, "last_contributed_at": "2024-05-31T23:30:00.500Z"}
        ]

    async def test_the_default_order_keeps_the_original_keys(self, personal):
        await post_events(personal, [Made(1, 8, 80, datetime(2024, 6, 1)).event()])
        response = await personal.get(
            f"/classifications/users/{USER}",
            params={"project_contributions": "true"},
            headers=tokens.bearer(USER),
        )
        assert response.json() == {
            "total_count": 1,
            "project_contributions": [{"project_id": 8, "count": 1}],
        }

    async def test_a_withdrawn_latest_classification_moves_the_time_back(self, personal):
        made = [Made(1, 8, 80, datetime(2024, 6, 1, 9)), Made(2, 8, 80, datetime(2024, 6, 2, 9))]
        await post_events(personal, [m.event() for m in made])
        # A later version of classification 2 moves it to another project.
        moved = Made(2, 9, 90, datetime(2024, 6, 2, 9)).event()
        moved["data"]["updated_at"] = "2024-06-03T00:00:00.000Z"
        await post_events(personal, [moved])
        assert await recents(personal) == [
            {"project_id": 9, "count": 1, "last_contributed_at": "2024-06-02T09:00:00.000Z"},
            {"project_id": 8, "count": 1, "last_contributed_at": "2024-06-01T09:00:00.000Z"},
        ]


# --- conditional GET -------------------------------------------------------------------------


class TestConditionalGet:
    async def test_match_gives_304_with_no_body(self, client):
        await post_events(client, [classification(1, project=1)])
        first = await client.get("/classifications", params={"project_id": "1"})
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')
        assert first.headers["cache-control"] == "no-cache"
        again = await client.get(
            "/classifications", params={"project_id": "1"}, headers={"If-None-Match": etag}
        )
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == "no-cache"

    @pytest.mark.parametrize(
        "header", ["{etag}", "W/{etag}", '"other", {etag}', "*", ' {etag} , "x"']
    )
    async def test_if_none_match_forms(self, client, header):
        etag = (await client.get("/comments")).headers["etag"]
        response = await client.get(
            "/comments", headers={"If-None-Match": header.format(etag=etag)}
        )
        assert response.status_code == 304

    async def test_a_stale_tag_gets_the_answer(self, client):
        response = await client.get("/comments", headers={"If-None-Match": '"stale"'})
        assert response.status_code == 200
        assert response.json() == {"total_count": 0}

    async def test_a_changing_ingest_changes_the_tag_and_another_does_not(self, client):
        await post_events(client, [classification(1, project=1)])
        params = {"project_id": "1", "period": "day"}
        before = (await client.get("/classifications", params=params)).headers["etag"]
        # Another project's classification: this answer is unchanged.
        await post_events(client, [classification(2, project=2)])
        same = await client.get(
            "/classifications", params=params, headers={"If-None-Match": before}
        )
        assert same.status_code == 304
        assert same.headers["etag"] == before
        # One more for project 1.
        await post_events(client, [classification(3, project=1)])
        changed = await client.get(
            "/classifications", params=params, headers={"If-None-Match": before}
        )
        assert changed.status_code == 200
        assert changed.headers["etag"] != before
        assert changed.json()["total_count"] == 2

    async def test_different_answers_have_different_tags(self, client):
        await post_events(client, [classification(1, project=1), classification(2, project=2)])
        tags = {
            (await client.get("/classifications", params=params)).headers["etag"]
            for params in ({}, {"project_id": "1"}, {"project_id": "1", "period": "day"})
        }
        assert len(tags) == 3

    async def test_status_route(self, client):
        first = await client.get("/")
        again = await client.get("/", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304

    async def test_personal_route_is_private_and_needs_the_token(self, personal):
        await post_events(personal, [Made(1, 8, 80, datetime(2024, 6, 1)).event()])
        path = f"/classifications/users/{USER}"
        first = await personal.get(path, headers=tokens.bearer(USER))
        assert first.status_code == 200
        assert first.headers["cache-control"] == "private, no-cache"
        etag = first.headers["etag"]
        again = await personal.get(path, headers={**tokens.bearer(USER), "If-None-Match": etag})
        assert again.status_code == 304
        assert again.headers["cache-control"] == "private, no-cache"
        anonymous = await personal.get(path, headers={"If-None-Match": etag})
        assert anonymous.status_code == 401
        assert "etag" not in anonymous.headers
        someone_else = await personal.get(
            path, headers={**tokens.bearer(USER + 1), "If-None-Match": etag}
        )
        assert someone_else.status_code == 403
        # An admin may read it, so an admin may revalidate it.
        admin = await personal.get(
            path, headers={**tokens.bearer(1, admin=True), "If-None-Match": etag}
        )
        assert admin.status_code == 304


MEMBER_TOKENS = {user: tokens.token(user) for user in (USER, USER + 5)}


def member(user: int) -> dict[str, str]:
    """A token Panoptes knows, for the membership lookups."""
    return {"Authorization": f"Bearer {MEMBER_TOKENS[user]}"}


class TestConditionalGroupAnswers:
    @pytest.fixture
    async def groups(self, database_url, panoptes):
        panoptes.state.add_group(41, "public_agg_only")
        panoptes.state.add_group(42, "private_agg_only")
        panoptes.state.add_group(43, "public_agg_show_ind_if_member")
        panoptes.state.memberships[(USER, 42)] = ["group_member"]
        panoptes.state.memberships[(USER, 43)] = ["group_member"]
        settings = make_settings(
            database_url,
            panoptes_url=panoptes.url,
            panoptes_public_key=tokens.key_pair().public_pem,
            panoptes_client_id=panoptes.state.client_id,
            panoptes_client_secret=panoptes.state.client_secret,
        )
        for user in (USER, USER + 5):
            panoptes.state.add_user(MEMBER_TOKENS[user], user)
        async with client_for(settings) as http:
            await post_events(
                http,
                [
                    classification(1, user=USER, groups=[41, 42, 43]),
                    classification(2, user=USER + 1, groups=[41, 42, 43]),
                ],
            )
            yield http

    async def test_public_aggregate_is_public(self, groups):
        first = await groups.get("/classifications/user_groups/41")
        assert first.status_code == 200
        assert first.headers["cache-control"] == "no-cache"
        again = await groups.get(
            "/classifications/user_groups/41", headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304

    async def test_answers_that_needed_a_token_are_private(self, groups):
        path = "/classifications/user_groups/42"
        first = await groups.get(path, headers=member(USER))
        assert first.status_code == 200, first.text
        assert first.json()["total_count"] == 2
        assert first.headers["cache-control"] == "private, no-cache"
        etag = first.headers["etag"]
        again = await groups.get(path, headers={**member(USER), "If-None-Match": etag})
        assert again.status_code == 304
        assert (await groups.get(path, headers={"If-None-Match": etag})).status_code == 401
        outsider = await groups.get(path, headers={**member(USER + 5), "If-None-Match": etag})
        assert outsider.status_code == 403
        # A public group's member breakdown that needs a member's token is private too.
        breakdown = await groups.get(
            "/classifications/user_groups/43",
            params={"individual_stats_breakdown": "true"},
            headers=member(USER),
        )
        assert breakdown.status_code == 200, breakdown.text
        assert breakdown.headers["cache-control"] == "private, no-cache"
        aggregate = await groups.get("/classifications/user_groups/43")
        assert aggregate.headers["cache-control"] == "no-cache"


# --- unknown parameters ----------------------------------------------------------------------


class TestUnknownParameters:
    @pytest.mark.parametrize(
        "path",
        [
            "/classifications?project_id=1&period=day",
            "/classifications/?workflow_id=10",
            "/comments?user_id=100",
            "/",
        ],
    )
    async def test_ignored_with_the_same_answer(self, client, path):
        await post_events(client, [classification(1), comment(1)])
        plain = await client.get(path)
        assert plain.status_code == 200
        separator = "&" if "?" in path else "?"
        for extra in ("_=1733000000", "start_dat=2030-01-01", "x=1&x=2", "workflow_id=1"):
            if path.startswith("/classifications") and extra == "workflow_id=1":
                continue
            busted = await client.get(f"{path}{separator}{extra}")
            assert busted.status_code == 200, (extra, busted.text)
            assert busted.json() == plain.json()
            assert busted.headers["etag"] == plain.headers["etag"]

    async def test_personal_and_group_routes(self, personal):
        await post_events(personal, [Made(1, 8, 80, datetime(2024, 6, 1)).event()])
        path = f"/classifications/users/{USER}"
        plain = await personal.get(path, headers=tokens.bearer(USER))
        busted = await personal.get(f"{path}?_=1&debug=true", headers=tokens.bearer(USER))
        assert busted.status_code == 200
        assert busted.json() == plain.json()

    async def test_report(self, personal):
        path = "/reports/spurious?until=2024-06-10"
        admin = tokens.bearer(1, admin=True)
        plain = await personal.get(path, headers=admin)
        # A misspelt threshold is ignored like any other unknown parameter: defaults apply.
        busted = await personal.get(f"{path}&min_rate=1&_=2", headers=admin)
        assert plain.status_code == busted.status_code == 200
        assert busted.json() == plain.json()
        twice = await personal.get(f"{path}&tier_min=1&tier_min=2", headers=admin)
        assert twice.status_code == 400

    async def test_ingest(self, client):
        response = await client.post(
            "/kinesis?_=1733000000", json={"payload": [classification(1)]}, headers=basic_auth()
        )
        assert response.status_code == 200, response.text
        assert (await client.get("/classifications")).json() == {"total_count": 1}

    @pytest.mark.parametrize(
        "query",
        [
            "project_id=1&project_id=2",
            "breakdown=true&breakdown=false&project_id=1",
            "time_spent=true&time_spent=true",
        ],
    )
    async def test_a_repeated_known_parameter_is_still_refused(self, client, query):
        response = await client.get(f"/classifications?{query}")
        assert response.status_code == 400
        name = query.split("=")[0]
        assert response.json() == {
            "error": f"Parameter '{name}' is given more than once; "
            "list several ids in one comma-separated value"
        }


# Bytes a query string may carry: names, separators, escapes (good and broken), the plus sign,
# a semicolon (not a separator), and bytes beyond ASCII.
QUERY_BYTES = st.lists(
    st.sampled_from(
        [b"a", b"_", b"=", b"&", b"%", b"2", b"B", b"+", b";", b"\xe9", b"%20", b"%e9"]
    ),
    max_size=30,
).map(b"".join)


@given(QUERY_BYTES)
@settings(max_examples=500, deadline=None)
def test_query_strings_are_read_as_starlette_reads_them(query_string: bytes) -> None:
    assert query_pairs(query_string) == QueryParams(query_string).multi_items()

"""GET /comments: Talk comment counts, filtered by project and/or user, by date, and bucketed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest

from tests import factories
from tests.factories import post_events

INVALID_PERIOD = "Invalid bucket option. Valid options for period is day, week, month, or year"


@dataclass(frozen=True)
class Posted:
    """One comment as posted, kept so each test derives its expected counts from its own data."""

    comment_id: int
    created_at: str
    project_id: int | None = 1
    user_id: int = 100

    def event(self) -> dict[str, Any]:
        return factories.comment(
            self.comment_id,
            created_at=self.created_at,
            project_id=self.project_id,
            user_id=self.user_id,
        )

    @property
    def day(self) -> date:
        return date.fromisoformat(self.created_at[:10])


def expected_count(
    comments: Iterable[Posted],
    *,
    projects: Iterable[int] | None = None,
    users: Iterable[int] | None = None,
    start: str | None = None,
    end: str | None = None,
) -> int:
    project_set = None if projects is None else set(projects)
    user_set = None if users is None else set(users)
    return sum(
        1
        for item in comments
        if (project_set is None or item.project_id in project_set)
        and (user_set is None or item.user_id in user_set)
        and (start is None or item.day >= date.fromisoformat(start))
        and (end is None or item.day <= date.fromisoformat(end))
    )


async def post_comments(client: httpx.AsyncClient, comments: Iterable[Posted]) -> None:
    await post_events(client, [item.event() for item in comments])


async def comment_counts(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/comments", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bucket(day: str, count: int) -> dict[str, Any]:
    return {"period": f"{day}T00:00:00.000Z", "count": count}


# Several projects and users on two days; comment 6 belongs to no project.
MIXED = [
    Posted(1, "2023-09-18T10:00:00.000Z", project_id=1, user_id=100),
    Posted(2, "2023-09-18T11:00:00.000Z", project_id=1, user_id=200),
    Posted(3, "2023-09-18T12:00:00.000Z", project_id=2, user_id=100),
    Posted(4, "2023-09-19T09:00:00.000Z", project_id=2, user_id=300),
    Posted(5, "2023-09-19T10:00:00.000Z", project_id=3, user_id=100),
    Posted(6, "2023-09-19T11:00:00.000Z", project_id=None, user_id=100),
    Posted(7, "2023-09-20T08:00:00.000Z", project_id=1, user_id=100),
]


class TestCommentCounts:
    async def test_no_comments_counts_zero(self, client: httpx.AsyncClient) -> None:
        assert await comment_counts(client) == {"total_count": 0}
        assert await comment_counts(client, period="day") == {"total_count": 0, "data": []}

    async def test_total_without_parameters(self, client: httpx.AsyncClient) -> None:
        await post_comments(client, MIXED)

        assert await comment_counts(client) == {"total_count": len(MIXED)}

    async def test_trailing_slash_answers_the_same_without_a_redirect(
        self, client: httpx.AsyncClient
    ) -> None:
        await post_comments(client, MIXED)
        response = await client.get("/comments/")
        assert response.status_code == 200, response.text
        assert response.json() == {"total_count": len(MIXED)}

    async def test_single_project(self, client: httpx.AsyncClient) -> None:
        await post_comments(client, MIXED)

        for project in (1, 2, 3):
            body = await comment_counts(client, project_id=str(project))
            assert body == {"total_count": expected_count(MIXED, projects=[project])}
        assert expected_count(MIXED, projects=[1]) == 3  # the data really tells projects apart
        assert await comment_counts(client, project_id="999") == {"total_count": 0}

    async def test_project_list_is_summed(self, client: httpx.AsyncClient) -> None:
        await post_comments(client, MIXED)

        summed = expected_count(MIXED, projects=[1, 2])
        assert summed == 5
        assert await comment_counts(client, project_id="1,2") == {"total_count": summed}
        assert await comment_counts(client, project_id="2,1") == {"total_count": summed}
        # An id with no comments adds nothing.
        assert await comment_counts(client, project_id="1,2,999") == {"total_count": summed}

    async def test_single_user(self, client: httpx.AsyncClient) -> None:
        await post_comments(client, MIXED)

        for user in (100, 200, 300):
            body = await comment_counts(client, user_id=str(user))
            assert body == {"total_count": expected_count(MIXED, users=[user])}
        assert expected_count(MIXED, users=[100]) == 5
        assert await comment_counts(client, user_id="999") == {"total_count": 0}

    async def test_user_list_is_summed(self, client: httpx.AsyncClient) -> None:
        await post_comments(client, MIXED)

        summed = expected_count(MIXED, users=[200, 300])
        assert summed == 2
        assert await comment_counts(client, user_id="200,300") == {"total_count": summed}
        everyone = expected_count(MIXED, users=[100, 200, 300])
        assert await comment_counts(client, user_id="100,200,300") == {"total_count": everyone}

    async def test_project_and_user_combined(self, client: httpx.AsyncClient) -> None:
        await post_comments(client, MIXED)

        one_each = expected_count(MIXED, projects=[1], users=[100])
        assert one_each == 2
        assert await comment_counts(client, project_id="1", user_id="100") == {
            "total_count": one_each
        }
        lists = expected_count(MIXED, projects=[1, 2], users=[100, 300])
        assert lists == 4
        assert await comment_counts(client, project_id="1,2", user_id="100,300") == {
            "total_count": lists
        }
        # A user who never commented on the project.
        assert await comment_counts(client, project_id="3", user_id="200") == {"total_count": 0}

    async def test_comment_without_project_counts_only_outside_project_filters(
        self, client: httpx.AsyncClient
    ) -> None:
        await post_comments(client, MIXED)

        every_project = ",".join(
            sorted({str(item.project_id) for item in MIXED if item.project_id})
        )
        assert await comment_counts(client) == {"total_count": len(MIXED)}
        assert await comment_counts(client, project_id=every_project) == {
            "total_count": len(MIXED) - 1
        }
        # It is still the user's comment.
        assert await comment_counts(client, user_id="100") == {
            "total_count": expected_count(MIXED, users=[100])
        }
        assert await comment_counts(client, project_id=every_project, user_id="100") == {
            "total_count": expected_count(MIXED, users=[100]) - 1
        }

    async def test_date_range_is_inclusive_on_both_ends(self, client: httpx.AsyncClient) -> None:
        comments = [
            Posted(1, "2023-09-09T23:59:59.999Z"),  # the last moment before start_date
            Posted(2, "2023-09-10T00:00:00.000Z"),  # the first moment of start_date
            Posted(3, "2023-09-15T12:00:00.000Z"),
            Posted(4, "2023-09-20T23:59:59.999Z"),  # the last moment of end_date
            Posted(5, "2023-09-21T00:00:00.000Z"),  # the first moment after end_date
        ]
        await post_comments(client, comments)

        ranges: list[dict[str, str]] = [
            {"start_date": "2023-09-10", "end_date": "2023-09-20"},
            {"start_date": "2023-09-10"},
            {"end_date": "2023-09-20"},
            {"start_date": "2023-09-20", "end_date": "2023-09-20"},
            {"start_date": "2023-09-21", "end_date": "2023-09-21"},
            {"start_date": "2023-09-11", "end_date": "2023-09-14"},
        ]
        for dates in ranges:
            expected = expected_count(
                comments, start=dates.get("start_date"), end=dates.get("end_date")
            )
            assert await comment_counts(client, **dates) == {"total_count": expected}, dates
        assert expected_count(comments, start="2023-09-10", end="2023-09-20") == 3

    async def test_period_day(self, client: httpx.AsyncClient) -> None:
        comments = [  # posted out of order; 2023-09-19 has none
            Posted(1, "2023-09-20T08:00:00.000Z"),
            Posted(2, "2023-09-18T00:00:00.000Z"),
            Posted(3, "2023-09-18T23:59:59.999Z"),
            Posted(4, "2023-09-20T09:00:00.000Z"),
            Posted(5, "2023-09-20T23:59:59.999Z"),
        ]
        await post_comments(client, comments)

        assert await comment_counts(client, period="day") == {
            "total_count": 5,
            "data": [bucket("2023-09-18", 2), bucket("2023-09-20", 3)],
        }

    async def test_period_week_starts_on_monday_and_may_start_before_start_date(
        self, client: httpx.AsyncClient
    ) -> None:
        comments = [
            Posted(1, "2023-09-19T12:00:00.000Z"),  # Tuesday, before start_date
            Posted(2, "2023-09-20T12:00:00.000Z"),  # Wednesday = start_date, week of 09-18
            Posted(3, "2023-09-24T23:59:59.999Z"),  # Sunday, week of 09-18
            Posted(4, "2023-09-25T00:00:00.000Z"),  # Monday, week of 09-25
            # No comment in the week of 2023-10-02.
            Posted(5, "2023-10-15T12:00:00.000Z"),  # Sunday = end_date, week of 10-09
            Posted(6, "2023-10-16T00:00:00.000Z"),  # Monday, after end_date
        ]
        await post_comments(client, comments)

        body = await comment_counts(
            client, start_date="2023-09-20", end_date="2023-10-15", period="week"
        )
        assert body == {
            "total_count": expected_count(comments, start="2023-09-20", end="2023-10-15"),
            "data": [bucket("2023-09-18", 2), bucket("2023-09-25", 1), bucket("2023-10-09", 1)],
        }
        assert body["total_count"] == 4

    async def test_period_week_can_start_in_the_previous_year(
        self, client: httpx.AsyncClient
    ) -> None:
        comments = [
            Posted(1, "2022-01-01T12:00:00.000Z"),  # Saturday; its Monday is 2021-12-27
            Posted(2, "2022-01-02T12:00:00.000Z"),  # Sunday, same week
            Posted(3, "2022-01-03T00:00:00.000Z"),  # Monday
        ]
        await post_comments(client, comments)

        assert await comment_counts(client, start_date="2022-01-01", period="week") == {
            "total_count": 3,
            "data": [bucket("2021-12-27", 2), bucket("2022-01-03", 1)],
        }

    async def test_period_month(self, client: httpx.AsyncClient) -> None:
        comments = [
            Posted(1, "2023-01-14T12:00:00.000Z"),  # before start_date, same month
            Posted(2, "2023-01-31T23:59:59.999Z"),
            Posted(3, "2023-02-01T00:00:00.000Z"),
            Posted(4, "2023-02-28T12:00:00.000Z"),
            # No comment in March.
            Posted(5, "2023-04-15T12:00:00.000Z"),
            Posted(6, "2023-12-31T23:59:59.999Z"),
            Posted(7, "2024-01-01T00:00:00.000Z"),
        ]
        await post_comments(client, comments)

        assert await comment_counts(client, start_date="2023-01-15", period="month") == {
            "total_count": expected_count(comments, start="2023-01-15"),
            "data": [
                bucket("2023-01-01", 1),
                bucket("2023-02-01", 2),
                bucket("2023-04-01", 1),
                bucket("2023-12-01", 1),
                bucket("2024-01-01", 1),
            ],
        }

    async def test_period_year(self, client: httpx.AsyncClient) -> None:
        comments = [
            Posted(1, "2021-06-01T12:00:00.000Z"),  # before start_date
            Posted(2, "2022-03-01T00:00:00.000Z"),  # start_date
            Posted(3, "2022-12-31T23:59:59.999Z"),
            Posted(4, "2023-01-01T00:00:00.000Z"),
            Posted(5, "2023-07-04T12:00:00.000Z"),
            Posted(6, "2023-12-31T23:59:59.999Z"),
            # No comment in 2024.
            Posted(7, "2025-03-03T12:00:00.000Z"),
        ]
        await post_comments(client, comments)

        assert await comment_counts(client, start_date="2022-03-01", period="year") == {
            "total_count": expected_count(comments, start="2022-03-01"),
            "data": [bucket("2022-01-01", 2), bucket("2023-01-01", 3), bucket("2025-01-01", 1)],
        }

    async def test_period_with_filters(self, client: httpx.AsyncClient) -> None:
        await post_comments(client, MIXED)

        assert await comment_counts(client, project_id="1,2", user_id="100", period="day") == {
            "total_count": expected_count(MIXED, projects=[1, 2], users=[100]),
            "data": [bucket("2023-09-18", 2), bucket("2023-09-20", 1)],
        }

    async def test_period_is_case_insensitive(self, client: httpx.AsyncClient) -> None:
        comments = [
            Posted(1, "2023-09-18T12:00:00.000Z"),
            Posted(2, "2023-09-21T12:00:00.000Z"),
            Posted(3, "2023-09-26T12:00:00.000Z"),
        ]
        await post_comments(client, comments)

        weekly = {"total_count": 3, "data": [bucket("2023-09-18", 2), bucket("2023-09-25", 1)]}
        for spelling in ("week", "WEEK", "Week"):
            assert await comment_counts(client, period=spelling) == weekly, spelling
        daily = await comment_counts(client, period="DaY")
        assert daily == await comment_counts(client, period="day")
        assert len(daily["data"]) == 3

    async def test_repeated_comment_is_counted_once(self, client: httpx.AsyncClient) -> None:
        original = Posted(1, "2023-09-18T12:00:00.000Z", project_id=1, user_id=100)
        await post_comments(client, [original, original])  # twice in one batch
        await post_comments(client, [original])  # and again in a later batch

        assert await comment_counts(client) == {"total_count": 1}
        assert await comment_counts(client, project_id="1") == {"total_count": 1}
        assert await comment_counts(client, user_id="100") == {"total_count": 1}
        assert await comment_counts(client, project_id="1", user_id="100") == {"total_count": 1}
        assert await comment_counts(client, period="day") == {
            "total_count": 1,
            "data": [bucket("2023-09-18", 1)],
        }

    async def test_repeat_with_other_fields_is_still_counted_once(
        self, client: httpx.AsyncClient
    ) -> None:
        await post_comments(client, [Posted(1, "2023-09-18T12:00:00.000Z", project_id=1)])
        await post_comments(client, [Posted(1, "2023-09-18T12:00:00.000Z", project_id=2)])

        assert await comment_counts(client) == {"total_count": 1}
        assert await comment_counts(client, project_id="1,2") == {"total_count": 1}

    async def test_same_id_at_another_time_is_another_comment(
        self, client: httpx.AsyncClient
    ) -> None:
        # An event is identified by (comment_id, created_at), not by the id alone.
        comments = [
            Posted(1, "2023-09-18T12:00:00.000Z"),
            Posted(1, "2023-09-19T12:00:00.000Z"),
            Posted(2, "2023-09-18T12:00:00.000Z"),
        ]
        await post_comments(client, comments)

        assert await comment_counts(client) == {"total_count": 3}

    async def test_real_fixture_event(self, client: httpx.AsyncClient) -> None:
        event = factories.fixture_event("kinesis-comment-event.json")
        assert event["data"]["project_id"] == 1874
        assert event["data"]["user_id"] == "1326056"
        await post_events(client, [event])

        assert await comment_counts(client) == {"total_count": 1}
        assert await comment_counts(client, project_id="1874") == {"total_count": 1}
        assert await comment_counts(client, user_id="1326056") == {"total_count": 1}
        assert await comment_counts(client, project_id="1874", user_id="1326056") == {
            "total_count": 1
        }
        assert await comment_counts(client, project_id="1874", user_id="1") == {"total_count": 0}
        assert await comment_counts(client, project_id="1873") == {"total_count": 0}
        assert await comment_counts(
            client,
            project_id="1874",
            user_id="1326056",
            start_date="2023-04-20",
            end_date="2023-04-20",
            period="day",
        ) == {"total_count": 1, "data": [bucket("2023-04-20", 1)]}
        assert await comment_counts(client, project_id="1874", start_date="2023-04-21") == {
            "total_count": 0
        }

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("start_date=2023-13-01", "Invalid date."),
            ("end_date=2023-02-30", "Invalid date."),
            ("start_date=20230918", "Invalid date."),
            ("end_date=yesterday", "Invalid date."),
            ("start_date=2023-09-21&end_date=2023-09-20", "Date range entered is not valid"),
            ("period=fortnight", INVALID_PERIOD),
            ("period=days", INVALID_PERIOD),
            ("project_id=1&period=hour", INVALID_PERIOD),
        ],
    )
    async def test_invalid_parameters_answer_eras_messages(
        self, client: httpx.AsyncClient, query: str, message: str
    ) -> None:
        response = await client.get(f"/comments?{query}")

        assert response.status_code == 400
        assert response.json() == {"error": message}

    @pytest.mark.parametrize(
        ("query", "name"),
        [
            ("user_id=12,abc", "user_id"),
            ("user_id=abc", "user_id"),
            ("user_id=1;2", "user_id"),
            ("project_id=1,x2", "project_id"),
        ],
    )
    async def test_id_list_with_letters_is_rejected(
        self, client: httpx.AsyncClient, query: str, name: str
    ) -> None:
        await post_comments(client, MIXED)

        response = await client.get(f"/comments?{query}")

        assert response.status_code == 400
        body = response.json()
        assert list(body) == ["error"]
        assert name in body["error"]

    async def test_empty_parameters_behave_as_absent(self, client: httpx.AsyncClient) -> None:
        await post_comments(client, MIXED)

        response = await client.get("/comments?start_date=&period=")
        assert response.status_code == 200, response.text
        assert response.json() == {"total_count": len(MIXED)}

        everything_empty = "project_id=&user_id=&start_date=&end_date=&period="
        response = await client.get(f"/comments?{everything_empty}")
        assert response.status_code == 200, response.text
        assert response.json() == {"total_count": len(MIXED)}

        response = await client.get("/comments?project_id=1&start_date=&end_date=&period=")
        assert response.status_code == 200, response.text
        assert response.json() == {"total_count": expected_count(MIXED, projects=[1])}

        response = await client.get("/comments?user_id=&period=day")
        assert response.status_code == 200, response.text
        per_day = sorted(Counter(item.day for item in MIXED).items())
        assert response.json() == {
            "total_count": len(MIXED),
            "data": [bucket(day.isoformat(), count) for day, count in per_day],
        }

"""GET /classifications: filters, inclusive UTC date ranges, calendar buckets, validation."""

from __future__ import annotations

import pytest

from tests.factories import classification, post_events


def bucket(day: str, count: int) -> dict[str, object]:
    return {"period": f"{day}T00:00:00.000Z", "count": count}


async def get(client, **params):
    response = await client.get("/classifications", params=params)
    assert response.status_code == 200, response.text
    return response.json()


class TestFilters:
    async def test_total_of_everything(self, client):
        await post_events(
            client, [classification(i, user=None if i % 4 else 7) for i in range(1, 8)]
        )
        assert await get(client) == {"total_count": 7}

    async def test_trailing_slash_answers_the_same_without_a_redirect(self, client):
        await post_events(client, [classification(1, project=1), classification(2, project=2)])
        response = await client.get("/classifications/", params={"project_id": "2"})
        assert response.status_code == 200, response.text
        assert response.json() == {"total_count": 1}

    async def test_no_events_is_zero(self, client):
        assert await get(client) == {"total_count": 0}
        assert await get(client, period="day") == {"total_count": 0, "data": []}

    async def test_project_ids_are_summed(self, client):
        events = [
            classification(1, project=1),
            classification(2, project=2),
            classification(3, project=2),
            classification(4, project=3),
        ]
        await post_events(client, events)
        assert await get(client, project_id="2") == {"total_count": 2}
        assert await get(client, project_id="1,2") == {"total_count": 3}
        assert await get(client, project_id="1,2,3,4") == {"total_count": 4}
        assert await get(client, project_id="9") == {"total_count": 0}

    async def test_workflow_ids_are_summed(self, client):
        events = [
            classification(1, workflow=10),
            classification(2, workflow=11),
            classification(3, workflow=12, project=2),
        ]
        await post_events(client, events)
        assert await get(client, workflow_id="10") == {"total_count": 1}
        assert await get(client, workflow_id="10,12") == {"total_count": 2}

    async def test_repeated_id_in_a_list_is_counted_once(self, client):
        await post_events(client, [classification(1, project=1)])
        assert await get(client, project_id="1,1") == {"total_count": 1}

    async def test_spaces_and_trailing_commas_in_a_list_are_tolerated(self, client):
        await post_events(client, [classification(1, project=1), classification(2, project=2)])
        assert await get(client, project_id=" 1, 2,") == {"total_count": 2}

    async def test_buckets_with_a_list_sum_the_ids(self, client):
        events = [
            classification(1, project=1, created_at="2023-09-18T10:00:00Z"),
            classification(2, project=2, created_at="2023-09-18T11:00:00Z"),
            classification(3, project=2, created_at="2023-09-19T11:00:00Z"),
        ]
        await post_events(client, events)
        assert await get(client, project_id="1,2", period="day") == {
            "total_count": 3,
            "data": [bucket("2023-09-18", 2), bucket("2023-09-19", 1)],
        }


class TestDateRange:
    @pytest.fixture
    async def spread(self, client):
        times = [
            "2023-09-09T23:59:59.999Z",
            "2023-09-10T00:00:00.000Z",
            "2023-09-15T12:00:00.000Z",
            "2023-09-20T23:59:59.999Z",
            "2023-09-21T00:00:00.000Z",
        ]
        await post_events(client, [classification(i, created_at=t) for i, t in enumerate(times, 1)])

    async def test_both_ends_are_inclusive_utc_days(self, client, spread):
        body = await get(client, start_date="2023-09-10", end_date="2023-09-20")
        assert body == {"total_count": 3}

    async def test_start_only(self, client, spread):
        assert await get(client, start_date="2023-09-20") == {"total_count": 2}

    async def test_end_only(self, client, spread):
        assert await get(client, end_date="2023-09-10") == {"total_count": 2}

    async def test_single_day(self, client, spread):
        assert await get(client, start_date="2023-09-15", end_date="2023-09-15") == {
            "total_count": 1
        }

    async def test_offset_timestamps_count_on_their_utc_day(self, client):
        # 01:30 at +02:00 is 23:30 UTC the day before.
        await post_events(client, [classification(1, created_at="2023-09-11T01:30:00+02:00")])
        assert await get(client, start_date="2023-09-10", end_date="2023-09-10") == {
            "total_count": 1
        }


class TestBuckets:
    async def test_day_buckets_only_non_empty_in_order(self, client):
        times = ["2023-09-20T10:00:00Z", "2023-09-18T00:00:00Z", "2023-09-18T23:59:59.999Z"]
        await post_events(client, [classification(i, created_at=t) for i, t in enumerate(times, 1)])
        assert await get(client, period="day") == {
            "total_count": 3,
            "data": [bucket("2023-09-18", 2), bucket("2023-09-20", 1)],
        }

    async def test_weeks_start_on_monday(self, client):
        times = [
            "2023-09-17T23:59:59Z",  # Sunday: week of Monday 11th
            "2023-09-18T00:00:00Z",  # Monday
            "2023-09-24T23:59:59Z",  # Sunday: still week of the 18th
            "2023-09-25T00:00:00Z",  # Monday
            "2024-01-01T09:00:00Z",  # a Monday starting a year
            "2023-01-01T09:00:00Z",  # a Sunday: week starts in the previous year
        ]
        await post_events(client, [classification(i, created_at=t) for i, t in enumerate(times, 1)])
        assert await get(client, period="week") == {
            "total_count": 6,
            "data": [
                bucket("2022-12-26", 1),
                bucket("2023-09-11", 1),
                bucket("2023-09-18", 2),
                bucket("2023-09-25", 1),
                bucket("2024-01-01", 1),
            ],
        }

    async def test_month_boundaries(self, client):
        times = [
            "2023-01-31T23:59:59.999Z",
            "2023-02-01T00:00:00Z",
            "2024-02-29T12:00:00Z",
            "2024-03-01T00:00:00Z",
        ]
        await post_events(client, [classification(i, created_at=t) for i, t in enumerate(times, 1)])
        assert await get(client, period="month") == {
            "total_count": 4,
            "data": [
                bucket("2023-01-01", 1),
                bucket("2023-02-01", 1),
                bucket("2024-02-01", 1),
                bucket("2024-03-01", 1),
            ],
        }

    async def test_year_boundaries(self, client):
        times = ["2022-12-31T23:59:59.999Z", "2023-01-01T00:00:00Z", "2023-07-01T00:00:00Z"]
        await post_events(client, [classification(i, created_at=t) for i, t in enumerate(times, 1)])
        assert await get(client, period="year") == {
            "total_count": 3,
            "data": [bucket("2022-01-01", 1), bucket("2023-01-01", 2)],
        }

    async def test_first_bucket_starts_before_start_date_but_counts_only_the_range(self, client):
        times = ["2023-09-18T10:00:00Z", "2023-09-20T10:00:00Z", "2023-09-21T10:00:00Z"]
        await post_events(client, [classification(i, created_at=t) for i, t in enumerate(times, 1)])
        assert await get(client, period="week", start_date="2023-09-20") == {
            "total_count": 2,
            "data": [bucket("2023-09-18", 2)],
        }
        assert await get(
            client, period="month", start_date="2023-09-20", end_date="2023-09-20"
        ) == {
            "total_count": 1,
            "data": [bucket("2023-09-01", 1)],
        }

    @pytest.mark.parametrize("period", ["WEEK", "Week", "week", " week "])
    async def test_period_is_case_insensitive(self, client, period):
        await post_events(client, [classification(1, created_at="2023-09-20T10:00:00Z")])
        assert await get(client, period=period) == {
            "total_count": 1,
            "data": [bucket("2023-09-18", 1)],
        }

    async def test_workflow_buckets(self, client):
        events = [
            classification(1, workflow=10, created_at="2023-09-18T10:00:00Z"),
            classification(2, workflow=11, created_at="2023-09-18T10:00:00Z"),
            classification(3, workflow=10, created_at="2023-10-02T10:00:00Z"),
        ]
        await post_events(client, events)
        assert await get(client, workflow_id="10", period="month") == {
            "total_count": 2,
            "data": [bucket("2023-09-01", 1), bucket("2023-10-01", 1)],
        }


INVALID_DATE = "Invalid date."
INVALID_RANGE = "Date range entered is not valid"
INVALID_PERIOD = "Invalid bucket option. Valid options for period is day, week, month, or year"
BOTH_FILTERS = "Cannot query by workflow and project. Either query by one or the other"


class TestValidation:
    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"start_date": "2023-13-01"}, INVALID_DATE),
            ({"start_date": "2023-02-30"}, INVALID_DATE),
            ({"end_date": "yesterday"}, INVALID_DATE),
            ({"end_date": "2023-9-1"}, INVALID_DATE),
            ({"start_date": "0000-01-01"}, INVALID_DATE),
            ({"start_date": "99999-01-01"}, INVALID_DATE),
            ({"start_date": "2023-09-18T00:00:00"}, INVALID_DATE),
            ({"start_date": "2023-09-20", "end_date": "2023-09-19"}, INVALID_RANGE),
            ({"period": "fortnight"}, INVALID_PERIOD),
            ({"period": "days"}, INVALID_PERIOD),
            ({"project_id": "1", "workflow_id": "2"}, BOTH_FILTERS),
            # The original checks dates first, then the range, then the period, then the filters.
            (
                {"start_date": "bad", "period": "bad", "project_id": "1", "workflow_id": "2"},
                INVALID_DATE,
            ),
            (
                {"start_date": "2023-02-02", "end_date": "2023-02-01", "period": "bad"},
                INVALID_RANGE,
            ),
            ({"period": "bad", "project_id": "1", "workflow_id": "2"}, INVALID_PERIOD),
        ],
    )
    async def test_original_messages(self, client, params, message):
        response = await client.get("/classifications", params=params)
        assert response.status_code == 400
        assert response.json() == {"error": message}

    @pytest.mark.parametrize("value", ["abc", "1;2", "1,two", "-1", "1.5", ",", "0x10", "1" * 19])
    @pytest.mark.parametrize("name", ["project_id", "workflow_id"])
    async def test_id_list_must_be_digits_and_commas(self, client, name, value):
        response = await client.get("/classifications", params={name: value})
        assert response.status_code == 400
        assert response.json()["error"].startswith(f"Invalid {name}: expected numeric ids")

    async def test_too_many_ids(self, client):
        ids = ",".join(str(i) for i in range(1, 1002))
        response = await client.get("/classifications", params={"project_id": ids})
        assert response.status_code == 400
        assert response.json() == {"error": "Too many ids in project_id: at most 1000 are allowed"}

    async def test_empty_values_are_absent(self, client):
        await post_events(client, [classification(1)])
        response = await client.get(
            "/classifications?project_id=&workflow_id=&start_date=&end_date=&period="
        )
        assert response.status_code == 200
        assert response.json() == {"total_count": 1}

    async def test_empty_project_with_workflow_is_not_both(self, client):
        await post_events(client, [classification(1, workflow=10)])
        response = await client.get("/classifications?project_id=&workflow_id=10")
        assert response.json() == {"total_count": 1}

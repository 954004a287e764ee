"""GET /classifications/users/{id}: tokens, who may read, parameters, order, Panoptes fallback."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import jwt as pyjwt
import pytest

from eras.auth.tokens import LocalTokenVerifier, load_public_key
from eras.errors import Unauthenticated
from tests import tokens
from tests.conftest import client_for, make_settings
from tests.factories import classification, post_events

USER = 1234
OTHER = 5678


@dataclass(frozen=True)
class Spec:
    """One classification the tests post, and the facts the expected numbers come from."""

    id: int
    project: int
    workflow: int
    created: datetime
    seconds: float
    user: int = USER

    def event(self) -> dict[str, object]:
        start = self.created - timedelta(seconds=self.seconds)
        return classification(
            self.id,
            user=self.user,
            project=self.project,
            workflow=self.workflow,
            created_at=self.created.isoformat(timespec="milliseconds") + "Z",
            started_at=start.isoformat(timespec="milliseconds") + "Z",
            finished_at=self.created.isoformat(timespec="milliseconds") + "Z",
        )


SPECS = [
    Spec(1, 1974, 20, datetime(2021, 5, 5, 10), 12.5),
    Spec(2, 1974, 20, datetime(2021, 5, 6, 10), 20.25),
    Spec(3, 1974, 21, datetime(2022, 1, 1, 0, 0, 1), 7.0),
    Spec(4, 1972, 10, datetime(2022, 3, 9, 23, 59, 59), 3.0),
    Spec(5, 1972, 10, datetime(2022, 3, 10, 0, 0, 0), 60.0),
    Spec(6, 1972, 11, datetime(2022, 6, 1, 12), 30.5),
    Spec(7, 1972, 10, datetime(2023, 3, 10, 23, 59, 59), 15.0),
    Spec(8, 1972, 10, datetime(2023, 3, 11, 0, 0, 0), 9.0),
    Spec(9, 1975, 30, datetime(2022, 1, 3, 8), 4.75),
    Spec(10, 1972, 10, datetime(2022, 6, 1, 12), 100.0, user=OTHER),
]


def expected(predicate=lambda spec: True) -> tuple[int, float]:
    chosen = [spec for spec in SPECS if spec.user == USER and predicate(spec)]
    return len(chosen), round(sum(spec.seconds for spec in chosen), 3)


@pytest.fixture
async def client(database_url):
    settings = make_settings(database_url, panoptes_public_key=tokens.key_pair().public_pem)
    async with client_for(settings) as http:
        await post_events(http, [spec.event() for spec in SPECS])
        yield http


async def stats(client, user_id=USER, viewer=USER, admin=False, **params):
    response = await client.get(
        f"/classifications/users/{user_id}",
        params=params,
        headers=tokens.bearer(viewer, admin=admin),
    )
    assert response.status_code == 200, response.text
    return response.json()


class TestWhoMayRead:
    async def test_own_stats(self, client):
        assert await stats(client) == {"total_count": expected()[0]}

    async def test_admin_reads_anyone(self, client):
        body = await stats(client, user_id=OTHER, viewer=999, admin=True)
        assert body == {"total_count": 1}

    async def test_another_user_is_forbidden(self, client):
        response = await client.get(f"/classifications/users/{OTHER}", headers=tokens.bearer(USER))
        assert response.status_code == 403
        assert response.json() == {"error": "You may only view your own classification stats"}

    async def test_non_admin_flag_must_be_true(self, client):
        payload = tokens.claims(USER)
        payload["data"]["admin"] = "true"
        response = await client.get(
            f"/classifications/users/{OTHER}",
            headers={"Authorization": f"Bearer {tokens.sign(payload)}"},
        )
        assert response.status_code == 403

    async def test_trailing_slash(self, client):
        response = await client.get(
            f"/classifications/users/{USER}/",
            params={"time_spent": "true"},
            headers=tokens.bearer(USER),
        )
        assert response.status_code == 200
        assert response.json() == await stats(client, time_spent="true")

    async def test_lowercase_scheme_and_extra_spaces_are_accepted(self, client):
        for header in (f"bearer {tokens.token(USER)}", f"  Bearer   {tokens.token(USER)}  "):
            response = await client.get(
                f"/classifications/users/{USER}", headers={"Authorization": header}
            )
            assert response.status_code == 200, header

    async def test_user_id_must_be_a_positive_number(self, client):
        response = await client.get("/classifications/users/abc", headers=tokens.bearer(USER))
        assert response.status_code == 400
        assert "user_id" in response.json()["error"]

    @pytest.mark.parametrize(
        ("path_id", "problem"),
        [
            ("0", "greater than or equal to 1"),
            ("-5", "greater than or equal to 1"),
            (str(2**63), "less than or equal to 9223372036854775807"),
            ("1" * 30, "less than or equal to 9223372036854775807"),
            ("1.5", "valid integer"),
            ("٤٢", "valid integer"),  # Arabic-Indic digits: digits, but not ASCII
        ],
    )
    async def test_an_id_out_of_range_is_refused_by_name(self, client, path_id, problem):
        response = await client.get(
            f"/classifications/users/{path_id}", headers=tokens.bearer(USER)
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error.startswith("path.user_id: ") and problem in error, error

    @pytest.mark.parametrize("path_id", [f"0{USER}", f"+{USER}", f"{USER}/"])
    async def test_an_id_written_another_way_is_the_same_volunteer(self, client, path_id):
        response = await client.get(
            f"/classifications/users/{path_id}",
            params={"time_spent": "true"},
            headers=tokens.bearer(USER),
        )
        assert response.status_code == 200, response.text
        assert response.json() == await stats(client, time_spent="true")


def _refusal_headers() -> list[tuple[str, dict[str, str], str]]:
    other_keys = tokens.key_pair("someone-else")
    no_exp = tokens.claims(USER)
    del no_exp["exp"]
    string_id = tokens.claims(str(USER))
    no_id = tokens.claims(USER)
    del no_id["data"]["id"]
    no_data = tokens.claims(USER)
    del no_data["data"]
    cases = [
        ("no header", {}, "Missing Authorization header"),
        ("Bearer null", {"Authorization": "Bearer null"}, "Missing Authorization header"),
        ("Bearer undefined", {"Authorization": "Bearer undefined"}, "Missing Authorization header"),
        ("empty", {"Authorization": ""}, "Missing Authorization header"),
        ("scheme only", {"Authorization": "Bearer"}, "Malformed Authorization header"),
        ("basic", {"Authorization": "Basic dXNlcjpwYXNz"}, "Malformed Authorization header"),
        ("two tokens", {"Authorization": "Bearer a b"}, "Malformed Authorization header"),
        ("garbage", {"Authorization": "Bearer not.a.jwt"}, "Invalid bearer token"),
        (
            "signed by another key",
            {"Authorization": f"Bearer {tokens.sign(tokens.claims(USER), keys=other_keys)}"},
            "Invalid bearer token",
        ),
        (
            "alg none",
            {"Authorization": f"Bearer {tokens.unsigned_token(tokens.claims(USER))}"},
            "Invalid bearer token",
        ),
        (
            "HS256 with the public key",
            {"Authorization": f"Bearer {tokens.hs256_with_public_key(tokens.claims(USER))}"},
            "Invalid bearer token",
        ),
        (
            "RS256 instead of RS512",
            {"Authorization": f"Bearer {tokens.sign(tokens.claims(USER), algorithm='RS256')}"},
            "Invalid bearer token",
        ),
        (
            "expired",
            {"Authorization": f"Bearer {tokens.token(USER, expires_in=-10)}"},
            "Bearer token has expired",
        ),
        ("no exp", {"Authorization": f"Bearer {tokens.sign(no_exp)}"}, "Invalid bearer token"),
        (
            "string id",
            {"Authorization": f"Bearer {tokens.sign(string_id)}"},
            "Invalid bearer token",
        ),
        ("no id", {"Authorization": f"Bearer {tokens.sign(no_id)}"}, "Invalid bearer token"),
        ("no data", {"Authorization": f"Bearer {tokens.sign(no_data)}"}, "Invalid bearer token"),
    ]
    return cases


class TestRefusals:
    @pytest.mark.parametrize(
        ("headers", "message"),
        [pytest.param(headers, message, id=name) for name, headers, message in _refusal_headers()],
    )
    async def test_refused_with_401(self, client, headers, message):
        response = await client.get(f"/classifications/users/{USER}", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"].startswith(message)

    async def test_refusal_comes_before_parameter_checks(self, client):
        response = await client.get(f"/classifications/users/{USER}", params={"start_date": "bad"})
        assert response.status_code == 401


class TestSeedPageExamples:
    """Each example of the public documentation page, with exactly the keys it shows."""

    async def test_counts_of_all_time(self, client):
        assert await stats(client) == {"total_count": 9}

    async def test_counts_and_time_spent(self, client):
        count, seconds = expected()
        assert await stats(client, time_spent="true") == {
            "total_count": count,
            "time_spent": seconds,
        }

    async def test_counts_time_spent_and_yearly_breakdown(self, client):
        count, seconds = expected()
        years = {}
        for year in (2021, 2022, 2023):
            years[year] = expected(lambda spec, y=year: spec.created.year == y)
        assert await stats(client, time_spent="true", period="year") == {
            "total_count": count,
            "time_spent": seconds,
            "data": [
                {"period": f"{year}-01-01T00:00:00.000Z", "count": n, "session_time": s}
                for year, (n, s) in years.items()
            ],
        }

    async def test_counts_time_spent_and_project_contributions(self, client):
        count, seconds = expected()
        assert await stats(client, time_spent="true", project_contributions="true") == {
            "total_count": count,
            "time_spent": seconds,
            "project_contributions": [
                {"project_id": 1972, "count": 5},
                {"project_id": 1974, "count": 3},
                {"project_id": 1975, "count": 1},
            ],
        }

    async def test_one_project_in_a_date_range_with_time_spent(self, client):
        count, seconds = expected(
            lambda spec: (
                spec.project == 1972
                and date(2022, 3, 10) <= spec.created.date() <= date(2023, 3, 10)
            )
        )
        assert (count, seconds) == (3, 105.5)
        body = await stats(
            client,
            project_id="1972",
            start_date="2022-03-10",
            end_date="2023-03-10",
            time_spent="true",
        )
        assert body == {"total_count": count, "time_spent": seconds}


class TestLongRanges:
    """A range holding whole months reads each project active only inside it from its all-time
    total, and the others from their months and days: the answers are the same either way."""

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            # 1974 began the day before, 1972's last classification is a second after.
            (date(2021, 5, 6), date(2023, 3, 10)),
            # 1974 straddles the start; 1972 ends at 23:59:59 of the end day, the next at 00:00.
            (date(2022, 1, 1), date(2023, 3, 10)),
            # Every project wholly inside: the first at 10:00 of the first day, the last at
            # 00:00:00 of the last.
            (date(2021, 5, 5), date(2023, 3, 11)),
            # 1972 starts at 00:00:00 of the first day, its earlier one is a second before.
            (date(2022, 3, 10), date(2023, 12, 31)),
        ],
    )
    async def test_projects_match_the_events_in_range(self, client, start, end):
        def inside(spec: Spec) -> bool:
            return start <= spec.created.date() <= end

        count, seconds = expected(inside)
        chosen = [spec for spec in SPECS if spec.user == USER and inside(spec)]
        projects = {spec.project for spec in chosen}
        counts = {project: sum(s.project == project for s in chosen) for project in projects}
        latest = {
            project: max(s.created for s in chosen if s.project == project) for project in projects
        }
        body = await stats(
            client,
            project_contributions="true",
            order_project_contributions_by="recents",
            time_spent="true",
            start_date=start.isoformat(),
            end_date=end.isoformat(),
        )
        assert body == {
            "total_count": count,
            "time_spent": seconds,
            "project_contributions": [
                {
                    "project_id": project,
                    "count": counts[project],
                    "last_contributed_at": latest[project].isoformat(timespec="milliseconds") + "Z",
                }
                for project in sorted(projects, key=lambda project: latest[project], reverse=True)
            ],
        }


class TestParameters:
    async def test_data_has_no_session_time_without_time_spent(self, client):
        body = await stats(client, period="year", project_id="1974")
        assert body == {
            "total_count": 3,
            "data": [
                {"period": "2021-01-01T00:00:00.000Z", "count": 2},
                {"period": "2022-01-01T00:00:00.000Z", "count": 1},
            ],
        }

    async def test_project_contributions_without_time_spent(self, client):
        body = await stats(client, project_contributions="TRUE", start_date="2022-01-01")
        assert body == {
            "total_count": expected(lambda spec: spec.created.year >= 2022)[0],
            "project_contributions": [
                {"project_id": 1972, "count": 5},
                {"project_id": 1974, "count": 1},
                {"project_id": 1975, "count": 1},
            ],
        }

    async def test_contributions_with_period_keep_one_entry_per_period(self, client):
        body = await stats(
            client,
            project_contributions="true",
            period="month",
            start_date="2022-01-01",
            end_date="2022-01-31",
        )
        assert body == {
            "total_count": 2,
            "project_contributions": [
                {"project_id": 1974, "count": 1},
                {"project_id": 1975, "count": 1},
            ],
            "data": [{"period": "2022-01-01T00:00:00.000Z", "count": 2}],
        }

    async def test_workflow_ids_are_summed(self, client):
        count, seconds = expected(lambda spec: spec.workflow in (10, 21))
        body = await stats(client, workflow_id="10,21", time_spent="true")
        assert body == {"total_count": count, "time_spent": seconds}

    @pytest.mark.parametrize("value", ["false", "yes", "1", ""])
    async def test_flags_other_than_true_are_false(self, client, value):
        assert await stats(client, time_spent=value, project_contributions=value) == {
            "total_count": 9
        }

    async def test_user_without_classifications(self, client):
        assert await stats(
            client,
            user_id=4242,
            viewer=4242,
            time_spent="true",
            period="day",
            project_contributions="true",
        ) == {
            "total_count": 0,
            "time_spent": 0.0,
            "project_contributions": [],
            "data": [],
        }

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            (
                {"project_contributions": "true", "project_id": "1972"},
                "Cannot query for project contributions and query by project/workflow",
            ),
            (
                {"project_contributions": "true", "workflow_id": "10"},
                "Cannot query for project contributions and query by project/workflow",
            ),
            (
                {"project_contributions": "true", "order_project_contributions_by": "newest"},
                "Can only order project contributions by recents or count. "
                "Default behavior is count",
            ),
            ({"start_date": "2022-02-30"}, "Invalid date."),
            (
                {"start_date": "2023-01-02", "end_date": "2023-01-01"},
                "Date range entered is not valid",
            ),
            (
                {"period": "decade"},
                "Invalid bucket option. Valid options for period is day, week, month, or year",
            ),
            (
                {"project_id": "1", "workflow_id": "2"},
                "Cannot query by workflow and project. Either query by one or the other",
            ),
        ],
    )
    async def test_validation_messages(self, client, params, message):
        response = await client.get(
            f"/classifications/users/{USER}", params=params, headers=tokens.bearer(USER)
        )
        assert response.status_code == 400
        assert response.json() == {"error": message}


class TestContributionOrder:
    @pytest.fixture
    async def recent_small_project(self, client):
        # Project 1999 has the fewest classifications but the latest one.
        await post_events(client, [Spec(50, 1999, 40, datetime(2023, 3, 20, 9), 1.0).event()])

    async def test_count_order_is_the_default(self, client, recent_small_project):
        body = await stats(client, project_contributions="true")
        assert [item["project_id"] for item in body["project_contributions"]] == [
            1972,
            1974,
            1975,
            1999,
        ]

    async def test_recents_by_day(self, client, recent_small_project):
        body = await stats(
            client,
            project_contributions="true",
            order_project_contributions_by="recents",
            period="day",
        )
        # Latest: 1999 2023-03-20 09:00, 1972 2023-03-11 00:00, 1975 2022-01-03, 1974 2022-01-01.
        assert [item["project_id"] for item in body["project_contributions"]] == [
            1999,
            1972,
            1975,
            1974,
        ]
        assert body["project_contributions"][0] == {
            "project_id": 1999,
            "count": 1,
            "last_contributed_at": "2023-03-20T09:00:00.000Z",
        }

    async def test_recents_within_the_range(self, client, recent_small_project):
        body = await stats(
            client,
            project_contributions="true",
            order_project_contributions_by="RECENTS",
            period="week",
            end_date="2022-12-31",
        )
        # 1972's latest in range is 2022-06-01 12:00; 1975 2022-01-03 08:00; 1974 2022-01-01.
        assert body["project_contributions"] == [
            {"project_id": 1972, "count": 3, "last_contributed_at": "2022-06-01T12:00:00.000Z"},
            {"project_id": 1975, "count": 1, "last_contributed_at": "2022-01-03T08:00:00.000Z"},
            {"project_id": 1974, "count": 3, "last_contributed_at": "2022-01-01T00:00:01.000Z"},
        ]

    async def test_recents_is_not_judged_by_the_period_bucket(self, client):
        await post_events(
            client,
            [
                Spec(60, 2001, 50, datetime(2024, 5, 6, 9), 1.0).event(),  # Monday
                Spec(61, 2002, 51, datetime(2024, 5, 12, 9), 1.0).event(),  # Sunday, same week
                Spec(62, 2001, 50, datetime(2024, 5, 7, 9), 1.0).event(),
            ],
        )
        for period in ("week", "year", "day"):
            body = await stats(
                client,
                project_contributions="true",
                order_project_contributions_by="recents",
                period=period,
                start_date="2024-01-01",
            )
            assert body["project_contributions"] == [
                {"project_id": 2002, "count": 1, "last_contributed_at": "2024-05-12T09:00:00.000Z"},
                {"project_id": 2001, "count": 2, "last_contributed_at": "2024-05-07T09:00:00.000Z"},
            ]


class TestPanoptesFallback:
    """No public key configured: tokens are checked with Panoptes' /api/me."""

    @pytest.fixture
    async def fallback(self, database_url, panoptes):
        panoptes.state.add_user("volunteer-token", USER)
        panoptes.state.add_user("admin-token", 1, admin=True)
        settings = make_settings(database_url, panoptes_url=panoptes.url)
        async with client_for(settings) as http:
            await post_events(http, [spec.event() for spec in SPECS])
            yield http

    async def test_token_checked_with_panoptes(self, fallback, panoptes):
        response = await fallback.get(
            f"/classifications/users/{USER}", headers={"Authorization": "Bearer volunteer-token"}
        )
        assert response.status_code == 200
        assert response.json() == {"total_count": 9}
        [call] = panoptes.state.calls("/api/me")
        assert call.headers["Accept"] == "application/vnd.api+json; version=1"
        assert call.headers["Authorization"] == "Bearer volunteer-token"

    async def test_admin_according_to_panoptes(self, fallback):
        response = await fallback.get(
            f"/classifications/users/{OTHER}", headers={"Authorization": "Bearer admin-token"}
        )
        assert response.json() == {"total_count": 1}

    async def test_other_user_is_forbidden(self, fallback):
        response = await fallback.get(
            f"/classifications/users/{OTHER}", headers={"Authorization": "Bearer volunteer-token"}
        )
        assert response.status_code == 403

    async def test_token_panoptes_does_not_know_is_refused(self, fallback):
        response = await fallback.get(
            f"/classifications/users/{USER}", headers={"Authorization": "Bearer stolen"}
        )
        assert response.status_code == 401
        assert response.json() == {"error": "Invalid bearer token"}

    async def test_answers_are_cached(self, fallback, panoptes):
        headers = {"Authorization": "Bearer volunteer-token"}
        for _ in range(5):
            assert (
                await fallback.get(f"/classifications/users/{USER}", headers=headers)
            ).status_code == 200
        await asyncio.gather(
            *(fallback.get(f"/classifications/users/{USER}/", headers=headers) for _ in range(5))
        )
        assert len(panoptes.state.calls("/api/me")) == 1

    async def test_concurrent_first_requests_share_one_call(self, database_url, panoptes):
        panoptes.state.add_user("volunteer-token", USER)
        panoptes.state.delay_seconds = 0.2
        settings = make_settings(database_url, panoptes_url=panoptes.url)
        async with client_for(settings) as http:
            responses = await asyncio.gather(
                *(
                    http.get(
                        f"/classifications/users/{USER}",
                        headers={"Authorization": "Bearer volunteer-token"},
                    )
                    for _ in range(8)
                )
            )
        assert [response.status_code for response in responses] == [200] * 8
        assert len(panoptes.state.calls("/api/me")) == 1

    async def test_cache_can_be_turned_off(self, database_url, panoptes):
        panoptes.state.add_user("volunteer-token", USER)
        settings = make_settings(database_url, panoptes_url=panoptes.url, token_cache_seconds=0)
        async with client_for(settings) as http:
            for _ in range(3):
                await http.get(
                    f"/classifications/users/{USER}",
                    headers={"Authorization": "Bearer volunteer-token"},
                )
        assert len(panoptes.state.calls("/api/me")) == 3

    async def test_panoptes_down_is_503(self, database_url, unreachable_url):
        settings = make_settings(database_url, panoptes_url=unreachable_url)
        async with client_for(settings) as http:
            response = await http.get(
                f"/classifications/users/{USER}", headers={"Authorization": "Bearer anything"}
            )
        assert response.status_code == 503
        assert response.json() == {"error": "Could not check authentication with Panoptes"}

    @pytest.mark.parametrize("failure", ["status", "garbage", "slow"])
    async def test_panoptes_failing_is_503(self, database_url, panoptes, failure):
        panoptes.state.add_user("volunteer-token", USER)
        if failure == "status":
            panoptes.state.fail_status = 500
        elif failure == "garbage":
            panoptes.state.garbage = True
        else:
            panoptes.state.delay_seconds = 1.0
        settings = make_settings(
            database_url, panoptes_url=panoptes.url, panoptes_timeout_seconds=0.3
        )
        async with client_for(settings) as http:
            response = await http.get(
                f"/classifications/users/{USER}",
                headers={"Authorization": "Bearer volunteer-token"},
            )
        assert response.status_code == 503
        assert response.json() == {"error": "Could not check authentication with Panoptes"}

    async def test_missing_header_needs_no_panoptes_call(self, fallback, panoptes):
        response = await fallback.get(
            f"/classifications/users/{USER}", headers={"Authorization": "Bearer null"}
        )
        assert response.status_code == 401
        assert panoptes.state.calls("/api/me") == []


async def test_slow_panoptes_does_not_pile_up_requests(database_url, panoptes):
    """With Panoptes holding its answers, 20 concurrent requests do not pile up behind it.

    Two connections are open, both busy with an answer that never completes; the other 18
    requests give up waiting for a connection and answer 503 without ever reaching Panoptes.
    When Panoptes breaks off the two answers, those are 503 as well.
    """
    state = panoptes.state
    state.stall = True
    for n in range(20):
        state.add_user(f"token-{n}", 100 + n)
    settings = make_settings(
        database_url,
        panoptes_url=panoptes.url,
        panoptes_timeout_seconds=1.0,
        panoptes_max_connections=2,
    )
    unavailable = (503, {"error": "Could not check authentication with Panoptes"})
    async with client_for(settings) as http:
        requests = [
            asyncio.create_task(
                http.get(
                    f"/classifications/users/{100 + n}",
                    headers={"Authorization": f"Bearer token-{n}"},
                )
            )
            for n in range(20)
        ]

        def settled() -> bool:  # each request answered, or held by Panoptes
            return sum(task.done() for task in requests) + state.stalled == 20

        for _ in range(3000):  # polled; at most 30 s
            if settled():
                break
            await asyncio.sleep(0.01)
        answered = [task.result() for task in requests if task.done()]
        assert (len(answered), state.stalled) == (18, 2)
        assert [(r.status_code, r.json()) for r in answered] == [unavailable] * 18
        assert len(state.calls("/api/me")) == 2  # the 18 never reached Panoptes

        state.release.set()
        held = await asyncio.gather(*(task for task in requests if not task.done()))
    assert [(r.status_code, r.json()) for r in held] == [unavailable] * 2
    assert state.max_in_flight == 2
    assert len(state.calls("/api/me")) == 2


class TestVerifiedTokens:
    """A token that verified is remembered until its expiry; the signature is checked once."""

    async def test_checked_once_and_refused_once_expired(self, monkeypatch):
        now = [time.time()]
        verifier = LocalTokenVerifier(
            load_public_key(tokens.key_pair().public_pem), clock=lambda: now[0]
        )
        decoded = []
        real_decode = pyjwt.decode

        def counting_decode(*args: object, **kwargs: object) -> object:
            decoded.append(1)
            return real_decode(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(pyjwt, "decode", counting_decode)
        token = tokens.token(USER, expires_in=60)
        for _ in range(5):
            assert (await verifier.identify(token)).user_id == USER
        assert len(decoded) == 1
        now[0] += 61
        with pytest.raises(Unauthenticated, match="expired"):
            await verifier.identify(token)
        with pytest.raises(Unauthenticated):
            await verifier.identify(tokens.token(USER, expires_in=60) + "x")  # a forged copy

    async def test_a_bad_token_is_never_remembered(self, client):
        forged = tokens.token(USER) + "x"
        for _ in range(2):
            response = await client.get(
                f"/classifications/users/{USER}", headers={"Authorization": f"Bearer {forged}"}
            )
            assert response.status_code == 401

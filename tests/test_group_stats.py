"""GET /classifications/user_groups/{id}: numbers, visibility, Panoptes lookups and caching."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from eras.auth import panoptes as panoptes_client
from tests import tokens
from tests.conftest import client_for, make_settings
from tests.factories import classification, post_events

GROUP = 1357
MEMBER, GROUP_ADMIN, OUTSIDER, ZOONIVERSE_ADMIN, FORMER_MEMBER, ROLELESS = 11, 12, 13, 14, 15, 16
VISIBILITIES = [
    "public_show_all",
    "public_agg_show_ind_if_member",
    "public_agg_only",
    "private_show_agg_and_ind",
    "private_agg_only",
]
# The spec's table: who may read (aggregate, member breakdown) for each visibility.
ANYONE, MEMBERS, GROUP_ADMINS = "anyone", "members", "group admins"
RULES = {
    "public_show_all": (ANYONE, ANYONE),
    "public_agg_show_ind_if_member": (ANYONE, MEMBERS),
    "public_agg_only": (ANYONE, GROUP_ADMINS),
    "private_show_agg_and_ind": (MEMBERS, MEMBERS),
    "private_agg_only": (MEMBERS, GROUP_ADMINS),
}


@dataclass(frozen=True)
class Spec:
    id: int
    user: int
    project: int
    workflow: int
    created: datetime
    seconds: float
    groups: tuple[int, ...] = (GROUP,)

    def event(self) -> dict[str, object]:
        def stamp(moment: datetime) -> str:
            return moment.isoformat(timespec="milliseconds") + "Z"

        return classification(
            self.id,
            user=self.user,
            project=self.project,
            workflow=self.workflow,
            groups=list(self.groups),
            created_at=stamp(self.created),
            started_at=stamp(self.created - timedelta(seconds=self.seconds)),
            finished_at=stamp(self.created),
        )


SPECS = [
    Spec(1, 21, 335, 1, datetime(2023, 9, 18, 10), 10.5),
    Spec(2, 21, 335, 1, datetime(2023, 9, 19, 10), 20.0),
    Spec(3, 21, 1952, 7, datetime(2023, 9, 25, 10), 5.25),
    Spec(4, 22, 335, 2, datetime(2023, 9, 18, 11), 30.0),
    Spec(5, 22, 1952, 7, datetime(2023, 10, 2, 9), 40.0),
    Spec(6, 22, 1952, 7, datetime(2023, 10, 3, 9), 1.0),
    Spec(7, 22, 1952, 8, datetime(2023, 10, 4, 9), 2.5),
    Spec(8, 23, 1952, 8, datetime(2023, 10, 4, 9), 3.0),
    Spec(9, MEMBER, 2000, 9, datetime(2023, 11, 1, 9), 60.0, groups=(GROUP, GROUP)),
    Spec(10, 24, 335, 1, datetime(2023, 9, 18, 10), 99.0, groups=(9999,)),  # another group
]


def in_group(predicate=lambda spec: True) -> list[Spec]:
    return [spec for spec in SPECS if GROUP in spec.groups and predicate(spec)]


def summed(specs: list[Spec], key) -> list[dict[str, object]]:
    """Count and session time per key, largest count first, ties by lower id."""
    totals: dict[int, list[float]] = defaultdict(lambda: [0, 0.0])
    for spec in specs:
        totals[key(spec)][0] += 1
        totals[key(spec)][1] += spec.seconds
    ordered = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    return [{"id": k, "count": int(v[0]), "session_time": round(v[1], 3)} for k, v in ordered]


def renamed(rows: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [
        {name: row["id"], "count": row["count"], "session_time": row["session_time"]}
        for row in rows
    ]


def expected_aggregate() -> dict[str, object]:
    """The aggregate answer for the whole group, with no parameters, from SPECS."""
    specs = in_group()
    return {
        "total_count": len(specs),
        "time_spent": round(sum(spec.seconds for spec in specs), 3),
        "active_users": len({spec.user for spec in specs}),
        "project_contributions": renamed(summed(specs, lambda s: s.project), "project_id"),
    }


def expected_breakdown() -> dict[str, object]:
    """The member breakdown for the whole group, from SPECS."""
    specs = in_group()
    members = []
    for member in summed(specs, lambda s: s.user):
        mine = [spec for spec in specs if spec.user == member["id"]]
        members.append(
            {
                "user_id": member["id"],
                "count": member["count"],
                "session_time": member["session_time"],
                "project_contributions": renamed(summed(mine, lambda s: s.project), "project_id"),
            }
        )
    return {"group_member_stats_breakdown": members}


@pytest.fixture
def fake(panoptes):
    state = panoptes.state
    for offset, visibility in enumerate(VISIBILITIES):
        state.add_group(GROUP + offset, visibility)
    for offset in range(len(VISIBILITIES)):
        group = GROUP + offset
        state.memberships[(MEMBER, group)] = ["group_member"]
        state.memberships[(GROUP_ADMIN, group)] = ["group_admin"]
        state.memberships[(FORMER_MEMBER, group)] = ["group_member"]
        state.inactive.add((FORMER_MEMBER, group))
        state.memberships[(ROLELESS, group)] = []
    return panoptes


def viewer_token(fake, user_id: int, *, admin: bool = False) -> str:
    token = tokens.token(user_id, admin=admin)
    fake.state.add_user(token, user_id, admin=admin)
    return token


@pytest.fixture
async def client(database_url, fake):
    settings = make_settings(
        database_url,
        panoptes_url=fake.url,
        panoptes_public_key=tokens.key_pair().public_pem,
        panoptes_client_id=fake.state.client_id,
        panoptes_client_secret=fake.state.client_secret,
    )
    async with client_for(settings) as http:
        # Every visibility's group gets the same classifications, so every group has numbers.
        events = []
        for offset in range(len(VISIBILITIES)):
            for spec in SPECS:
                groups = [GROUP + offset if g == GROUP else g for g in spec.groups]
                event = spec.event()
                event["data"]["id"] = str(spec.id + 1000 * offset)
                event["data"]["metadata"]["user_group_ids"] = groups
                events.append(event)
        await post_events(http, events)
        yield http


async def group_stats(client, group=GROUP, headers=None, **params):
    response = await client.get(
        f"/classifications/user_groups/{group}", params=params, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    return response.json()


class TestAggregate:
    async def test_totals_projects_and_active_users(self, client):
        assert await group_stats(client) == expected_aggregate()
        assert (
            expected_aggregate()["total_count"] == 9 and expected_aggregate()["active_users"] == 4
        )

    async def test_project_contribution_order(self, client):
        body = await group_stats(client)
        assert [item["project_id"] for item in body["project_contributions"]] == [1952, 335, 2000]

    async def test_top_contributors(self, client):
        specs = in_group()
        body = await group_stats(client, top_contributors="2")
        assert body["top_contributors"] == renamed(summed(specs, lambda s: s.user)[:2], "user_id")
        assert [item["user_id"] for item in body["top_contributors"]] == [22, 21]
        everyone = await group_stats(client, top_contributors="100")
        assert len(everyone["top_contributors"]) == everyone["active_users"] == 4
        assert (await group_stats(client, top_contributors="0"))["top_contributors"] == []

    async def test_period_data_always_has_session_time(self, client):
        body = await group_stats(client, period="month")
        buckets = defaultdict(lambda: [0, 0.0])
        for spec in in_group():
            buckets[spec.created.strftime("%Y-%m-01")][0] += 1
            buckets[spec.created.strftime("%Y-%m-01")][1] += spec.seconds
        assert body["data"] == [
            {"period": f"{day}T00:00:00.000Z", "count": n, "session_time": round(s, 3)}
            for day, (n, s) in sorted(buckets.items())
        ]

    async def test_project_filter_drops_project_contributions(self, client):
        specs = in_group(lambda spec: spec.project == 1952)
        body = await group_stats(client, project_id="1952", top_contributors="5", period="week")
        assert body["total_count"] == len(specs)
        assert body["active_users"] == len({spec.user for spec in specs}) == 3
        assert "project_contributions" not in body
        assert body["top_contributors"] == renamed(summed(specs, lambda s: s.user), "user_id")
        assert body["data"] == [
            {"period": "2023-09-25T00:00:00.000Z", "count": 1, "session_time": 5.25},
            {"period": "2023-10-02T00:00:00.000Z", "count": 4, "session_time": 46.5},
        ]

    async def test_workflow_filter_and_dates(self, client):
        specs = in_group(lambda s: s.workflow in (1, 8) and s.created >= datetime(2023, 9, 19))
        body = await group_stats(client, workflow_id="1,8", start_date="2023-09-19")
        assert body == {
            "total_count": len(specs),
            "time_spent": round(sum(spec.seconds for spec in specs), 3),
            "active_users": len({spec.user for spec in specs}),
        }

    async def test_group_without_classifications_in_range(self, client):
        assert await group_stats(client, start_date="2030-01-01", period="day") == {
            "total_count": 0,
            "time_spent": 0.0,
            "active_users": 0,
            "project_contributions": [],
            "data": [],
        }

    async def test_trailing_slash(self, client):
        response = await client.get(f"/classifications/user_groups/{GROUP}/")
        assert response.status_code == 200
        assert response.json() == await group_stats(client)


class TestMemberBreakdown:
    async def test_members_and_their_projects_largest_first(self, client):
        body = await group_stats(client, individual_stats_breakdown="true")
        expected = expected_breakdown()
        assert body == expected
        members = expected["group_member_stats_breakdown"]
        assert [m["user_id"] for m in members] == [22, 21, MEMBER, 23]

    async def test_breakdown_with_dates(self, client):
        body = await group_stats(
            client,
            individual_stats_breakdown="TRUE",
            start_date="2023-10-01",
            end_date="2023-10-31",
        )
        assert body == {
            "group_member_stats_breakdown": [
                {
                    "user_id": 22,
                    "count": 3,
                    "session_time": 43.5,
                    "project_contributions": [
                        {"project_id": 1952, "count": 3, "session_time": 43.5}
                    ],
                },
                {
                    "user_id": 23,
                    "count": 1,
                    "session_time": 3.0,
                    "project_contributions": [
                        {"project_id": 1952, "count": 1, "session_time": 3.0}
                    ],
                },
            ]
        }

    @pytest.mark.parametrize(
        "extra",
        [{"project_id": "1"}, {"workflow_id": "1"}, {"period": "day"}, {"top_contributors": "3"}],
    )
    async def test_breakdown_only_with_dates(self, client, extra):
        response = await client.get(
            f"/classifications/user_groups/{GROUP}",
            params={"individual_stats_breakdown": "true", **extra},
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "Cannot query individual stats breakdown with anything else EXCEPT "
            "start_date and end_date"
        }


class TestValidation:
    @pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1001", "1e3"])
    async def test_top_contributors_must_be_a_small_whole_number(self, client, value):
        response = await client.get(
            f"/classifications/user_groups/{GROUP}", params={"top_contributors": value}
        )
        assert response.status_code == 400
        assert "top_contributors" in response.json()["error"]

    async def test_common_messages(self, client):
        response = await client.get(
            f"/classifications/user_groups/{GROUP}", params={"period": "hour"}
        )
        assert response.json() == {
            "error": "Invalid bucket option. Valid options for period is day, week, month, or year"
        }

    async def test_unknown_group_is_404(self, client, fake):
        for _ in range(3):
            response = await client.get("/classifications/user_groups/424242")
            assert response.status_code == 404
            assert response.json() == {"error": "User group 424242 not found"}
        assert len(fake.state.calls("/api/user_groups/424242")) == 1


VIEWERS = [
    "anonymous",
    "bearer null",
    "outsider",
    "member",
    "group admin",
    "zooniverse admin",
    "former member",
    "member without roles",
]


MEMBERS_ONLY = "Only members of this group may view these stats"
ADMINS_ONLY = "Only admins of this group may view these stats"


def allowed(audience: str, viewer: str) -> bool:
    if audience == ANYONE or viewer == "zooniverse admin":
        return True
    if audience == MEMBERS:
        return viewer in ("member", "group admin")
    return viewer == "group admin"


class TestVisibility:
    @pytest.mark.parametrize("breakdown", [False, True], ids=["aggregate", "breakdown"])
    @pytest.mark.parametrize("viewer", VIEWERS)
    @pytest.mark.parametrize("visibility", VISIBILITIES)
    async def test_matrix(self, client, fake, visibility, viewer, breakdown):
        group = GROUP + VISIBILITIES.index(visibility)
        users = {
            "outsider": OUTSIDER,
            "member": MEMBER,
            "group admin": GROUP_ADMIN,
            "zooniverse admin": ZOONIVERSE_ADMIN,
            "former member": FORMER_MEMBER,
            "member without roles": ROLELESS,
        }
        if viewer == "anonymous":
            headers = {}
        elif viewer == "bearer null":
            headers = {"Authorization": "Bearer null"}
        else:
            admin = viewer == "zooniverse admin"
            headers = {"Authorization": f"Bearer {viewer_token(fake, users[viewer], admin=admin)}"}
        params = {"individual_stats_breakdown": "true"} if breakdown else {}
        response = await client.get(
            f"/classifications/user_groups/{group}", params=params, headers=headers
        )
        audience = RULES[visibility][1 if breakdown else 0]
        # Every group holds the same classifications (see the client fixture), so an allowed
        # viewer gets the numbers computed from SPECS, whichever the visibility.
        if allowed(audience, viewer):
            expected = (200, expected_breakdown() if breakdown else expected_aggregate())
        elif viewer in ("anonymous", "bearer null"):
            expected = (401, {"error": "Missing Authorization header"})
        elif audience == MEMBERS:
            expected = (403, {"error": MEMBERS_ONLY})
        else:
            expected = (403, {"error": ADMINS_ONLY})
        assert (response.status_code, response.json()) == expected

    async def test_public_group_ignores_a_broken_token(self, client, fake):
        response = await client.get(
            f"/classifications/user_groups/{GROUP}", headers={"Authorization": "Bearer garbage"}
        )
        assert response.status_code == 200
        assert fake.state.calls("/api/memberships") == []

    async def test_private_group_refuses_a_bad_token(self, client):
        private = GROUP + VISIBILITIES.index("private_agg_only")
        response = await client.get(
            f"/classifications/user_groups/{private}", headers={"Authorization": "Bearer garbage"}
        )
        assert response.status_code == 401
        assert response.json() == {"error": "Invalid bearer token"}

    async def test_unknown_visibility_is_treated_as_private(self, client, fake):
        fake.state.add_group(7777, "some_future_setting")
        anonymous = await client.get("/classifications/user_groups/7777")
        assert anonymous.status_code == 401
        member_headers = {"Authorization": f"Bearer {viewer_token(fake, MEMBER)}"}
        fake.state.memberships[(MEMBER, 7777)] = ["group_member"]
        member = await client.get(
            "/classifications/user_groups/7777",
            params={"individual_stats_breakdown": "true"},
            headers=member_headers,
        )
        assert member.status_code == 403


class TestPanoptesCalls:
    async def test_lookups_send_the_versioned_accept_header_and_tokens(self, client, fake):
        private = GROUP + VISIBILITIES.index("private_show_agg_and_ind")
        token = viewer_token(fake, MEMBER)
        response = await client.get(
            f"/classifications/user_groups/{private}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        [oauth] = fake.state.calls("/oauth/token")
        assert "grant_type=client_credentials" in oauth.body
        [group_call] = fake.state.calls(f"/api/user_groups/{private}")
        assert group_call.headers["Accept"] == "application/vnd.api+json; version=1"
        assert group_call.headers["Authorization"] == f"Bearer {fake.state.current_app_token()}"
        assert group_call.query == {"admin": ["true"]}
        [membership_call] = fake.state.calls("/api/memberships")
        assert membership_call.headers["Accept"] == "application/vnd.api+json; version=1"
        assert membership_call.headers["Authorization"] == f"Bearer {token}"
        assert membership_call.query == {"user_id": [str(MEMBER)], "user_group_id": [str(private)]}

    async def test_ten_requests_cost_one_call_each(self, client, fake):
        private = GROUP + VISIBILITIES.index("private_show_agg_and_ind")
        headers = {"Authorization": f"Bearer {viewer_token(fake, MEMBER)}"}
        for _ in range(5):
            assert (
                await client.get(f"/classifications/user_groups/{private}", headers=headers)
            ).status_code == 200
        responses = await asyncio.gather(
            *(
                client.get(f"/classifications/user_groups/{private}", headers=headers)
                for _ in range(5)
            )
        )
        assert {response.status_code for response in responses} == {200}
        assert len(fake.state.calls(f"/api/user_groups/{private}")) == 1
        assert len(fake.state.calls("/api/memberships")) == 1
        assert len(fake.state.calls("/oauth/token")) == 1

    async def test_application_token_is_reused_across_groups(self, client, fake):
        for offset in range(3):
            await client.get(f"/classifications/user_groups/{GROUP + offset}")
        assert len(fake.state.calls("/oauth/token")) == 1
        assert len(fake.state.calls("/api/user_groups/")) == 3

    async def test_application_token_is_renewed_when_refused(self, client, fake):
        await client.get(f"/classifications/user_groups/{GROUP}")
        fake.state.app_tokens_issued += 1  # Panoptes revokes the token eras holds
        response = await client.get(f"/classifications/user_groups/{GROUP + 1}")
        assert response.status_code == 200
        assert len(fake.state.calls("/oauth/token")) == 2

    async def test_application_token_is_renewed_before_it_expires(
        self, database_url, fake, monkeypatch
    ):
        # The client's clock, set by the test: the token's life passes without waiting for it.
        now = [1000.0]
        monkeypatch.setattr(panoptes_client, "time", SimpleNamespace(monotonic=lambda: now[0]))
        fake.state.app_token_lifetime = 7200  # renewed 60 s before it expires
        settings = make_settings(
            database_url,
            panoptes_url=fake.url,
            panoptes_client_id=fake.state.client_id,
            panoptes_client_secret=fake.state.client_secret,
        )
        # A different group each time: a group already looked up is served from the cache.
        # Seconds after the first token: just before and just after each renewal point.
        moments = [0, 7139, 7141, 7141 + 7139, 7141 + 7141]
        groups = [2468 + n for n in range(len(moments))]
        for group in groups:
            fake.state.add_group(group, "public_show_all")
        async with client_for(settings) as http:
            for group, seconds_later in zip(groups, moments, strict=True):
                now[0] = 1000.0 + seconds_later
                response = await http.get(f"/classifications/user_groups/{group}")
                assert response.status_code == 200, response.text
        assert len(fake.state.calls("/oauth/token")) == 3
        # Renewed, not refused first: the fake accepts only the newest token.
        used = [call.headers["Authorization"] for call in fake.state.calls("/api/user_groups/")]
        assert used == [f"Bearer app-token-{n}" for n in (1, 1, 2, 2, 3)]

    async def test_panoptes_down_with_nothing_cached_is_503(self, database_url, unreachable_url):
        settings = make_settings(
            database_url,
            panoptes_url=unreachable_url,
            panoptes_client_id="id",
            panoptes_client_secret="secret",
        )
        async with client_for(settings) as http:
            response = await http.get(f"/classifications/user_groups/{GROUP}")
        assert response.status_code == 503
        assert response.json() == {"error": "Could not look up the user group with Panoptes"}

    async def test_cached_answers_keep_serving_while_panoptes_fails(self, client, fake):
        assert (await client.get(f"/classifications/user_groups/{GROUP}")).status_code == 200
        fake.state.fail_status = 500
        assert (await client.get(f"/classifications/user_groups/{GROUP}")).status_code == 200
        response = await client.get(f"/classifications/user_groups/{GROUP + 1}")
        assert response.status_code == 503

    async def test_wrong_application_credentials_are_503(self, database_url, fake):
        settings = make_settings(
            database_url,
            panoptes_url=fake.url,
            panoptes_client_id="eras-client",
            panoptes_client_secret="wrong",
        )
        async with client_for(settings) as http:
            response = await http.get(f"/classifications/user_groups/{GROUP}")
        assert response.status_code == 503

    async def test_caches_can_be_turned_off(self, database_url, fake):
        settings = make_settings(
            database_url,
            panoptes_url=fake.url,
            panoptes_public_key=tokens.key_pair().public_pem,
            panoptes_client_id=fake.state.client_id,
            panoptes_client_secret=fake.state.client_secret,
            group_cache_seconds=0,
            membership_cache_seconds=0,
        )
        private = GROUP + VISIBILITIES.index("private_show_agg_and_ind")
        headers = {"Authorization": f"Bearer {viewer_token(fake, MEMBER)}"}
        async with client_for(settings) as http:
            for _ in range(3):
                await http.get(f"/classifications/user_groups/{private}", headers=headers)
        assert len(fake.state.calls("/api/user_groups/")) == 3
        assert len(fake.state.calls("/api/memberships")) == 3

"""Fuzz every route of the app's own OpenAPI description with schemathesis, on both databases.

Schemathesis reads the app's OpenAPI description and generates valid and invalid requests for
``GET /``, ``POST /kinesis``, ``GET /classifications``, ``GET /comments``,
``GET /classifications/users/{user_id}``, ``GET /classifications/user_groups/{group_id}``,
``GET /reports/spurious`` and the dashboard's pages and data routes (its examples, coverage
and fuzzing phases; one pytest item per route and database). Each app runs in process on its
own database, seeded with a few classifications and comments, and talks to the fake Panoptes
over loopback. Every answer must

- not be a server error (``not_a_server_error``),
- carry a status the description declares for the route (``status_code_conformance``),
- have the declared content type and match the declared schema (``content_type_conformance``,
  ``response_schema_conformance``).

So that the fuzzer gets past the front doors:

- the description declares every query parameter as a bare string, so about half the time a
  parameter takes a value from a dictionary of meaningful ones instead (periods in any case,
  real and impossible dates, id lists with spaces and empty pieces, flags, orders, counts),
  and the path ids come from a small set that the seeded data and the viewers below cover;
- ``POST /kinesis`` is sent with the configured Basic credentials, and the items of a generated
  payload are turned into stream events: as generated, as the ``data`` of a classification or a
  comment (arbitrary JSON for the parser), or as a well-formed classification with the
  generated keys mixed into its metadata;
- the fake Panoptes knows every group id: ``group_id % 7`` picks its ``stats_visibility`` (or
  "no such group", or a value this version does not know), and ``group_id // 7 % 5`` the viewer
  (the generated header, a Zooniverse admin, a member, a group admin or an outsider);
- ``/classifications/users/{user_id}`` gets, by ``user_id % 4``, the generated header, an
  admin's token, the user's own token or another user's token;
- ``/reports/spurious`` gets, by the number of query parameters ``% 3``, an admin's token, a
  volunteer's token or the generated header; ``/dashboard/data/operator`` likewise, by the
  length of the generated headers.

Each item checks at the end that its route answered 2xx at least once; ``-s`` prints how many
cases ran per route and status. (Schemathesis's ``from_fixture`` loader cannot run under pytest
9, which dropped ``Node._nodeid``, so the schema is loaded at import and each case is sent to
the per-database app fixture with ``app=``.)

``test_openapi_declares_the_status_of_a_database_outage`` checks what fuzzing with a live
database cannot reach: the 503 that docs/api.md promises when the database is unreachable must
be declared on every route that can answer it.

The seed is fixed, so CI sees the same cases every time. The default is CI-sized; for a longer
search with another seed:

    ERAS_TEST_FUZZ_EXAMPLES=1000 ERAS_TEST_FUZZ_SEED=7 .venv/bin/pytest tests/test_fuzz.py -s
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from eras.app import create_app
from eras.config import Settings
from tests import tokens
from tests.conftest import client_for, make_settings
from tests.factories import basic_auth, classification, comment, post_events
from tests.fake_panoptes import FakePanoptes

FUZZ_EXAMPLES = int(os.environ.get("ERAS_TEST_FUZZ_EXAMPLES", "100"))
FUZZ_SEED = int(os.environ.get("ERAS_TEST_FUZZ_SEED", "20240101"))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# group_id % 7 -> the group's stats_visibility; None: Panoptes has no such group.
VISIBILITIES: list[str | None] = [
    None,
    "public_show_all",
    "public_agg_show_ind_if_member",
    "public_agg_only",
    "private_show_agg_and_ind",
    "private_agg_only",
    "a_setting_from_the_future",
]
ADMIN, MEMBER, GROUP_ADMIN, OUTSIDER = 900, 11, 12, 13
# Path ids the fuzzer is steered to: users by user_id % 4, groups by visibility and viewer.
USER_IDS = [1, 2, 3, 4, 5, 6, 7, 11, 12]
GROUP_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 18, 22, 23, 25, 29, 33, 36]

# Meaningful values for parameters the description only calls strings.
DICTIONARIES = {
    "periods": ["day", "week", "WEEK", "Month", "year", "", " day ", "fortnight"],
    "dates": ["2023-12-31", "2024-01-01", "2024-02-29", "2023-02-29", "2024-1-1", "", "9999-12-31"],
    "ids": ["1", "2", "1,2", " 1 , 2 ,", ",,", "999999999999999999", "9999999999999999999", "1;2"],
    "flags": ["true", "TRUE", "True", "false", "", "1"],
    "orders": ["count", "recents", "RECENTS", "Count", "newest", ""],
    "counts": ["0", "1", "3", "1000", "1001", "-1", "2.5", " 2 "],
    "numbers": ["0", "1", "0.5", "50", "5000", "21600", "1e3", "-1", "1.", " 2 "],
}
PARAMETERS = {
    "query.period": "periods",
    "query.start_date": "dates",
    "query.end_date": "dates",
    "query.project_id": "ids",
    "query.workflow_id": "ids",
    "query.user_id": "ids",
    "query.time_spent": "flags",
    "query.project_contributions": "flags",
    "query.individual_stats_breakdown": "flags",
    "query.order_project_contributions_by": "orders",
    "query.top_contributors": "counts",
    "query.until": "dates",
    "query.project_min_count": "counts",
    "query.volunteer_min_count": "counts",
    "query.tier_min": "counts",
    "query.tier_max": "counts",
    "query.tier_two_min": "counts",
    "query.project_min_rate": "numbers",
    "query.project_min_difference": "numbers",
    "query.tier_one_rate": "numbers",
    "query.duty_of_care_seconds": "numbers",
    "query.days": "counts",
    "query.limit": "counts",
}


def config() -> Any:
    return schemathesis.Config.from_dict(
        {
            "seed": FUZZ_SEED,
            "suppress-health-check": ["too_slow", "filter_too_much"],
            "generation": {"max-examples": FUZZ_EXAMPLES, "database": "none", "mode": "all"},
            "phases": {"stateful": {"enabled": False}},
            "dictionaries": {
                **{name: {"values": values} for name, values in DICTIONARIES.items()},
                "user_ids": {"values": USER_IDS},
                "group_ids": {"values": GROUP_IDS},
            },
            "parameters": {
                **{
                    key: {"dictionary": name, "probability": 0.5}
                    for key, name in PARAMETERS.items()
                },
                "path.user_id": {"dictionary": "user_ids", "probability": 0.6},
                "path.group_id": {"dictionary": "group_ids", "probability": 0.6},
            },
        }
    )


class EveryGroup(dict[int, dict[str, Any]]):
    """Panoptes' user groups: every id exists, except those the table above says do not."""

    def get(self, key: int, default: Any = None) -> Any:
        visibility = VISIBILITIES[key % len(VISIBILITIES)]
        if visibility is None:
            return default
        return {
            "id": str(key),
            "name": f"group-{key}",
            "display_name": f"Group {key}",
            "stats_visibility": visibility,
        }


class Roles(dict[tuple[int, int], list[str]]):
    """Memberships: MEMBER and GROUP_ADMIN belong to every group."""

    def get(self, key: tuple[int, int], default: Any = None) -> Any:
        user_id, _group_id = key
        return {MEMBER: ["group_member"], GROUP_ADMIN: ["group_admin"]}.get(user_id, default)


def seed_events() -> list[dict[str, Any]]:
    """A little of everything, so that filters, buckets and rankings have rows to work on."""
    events: list[dict[str, Any]] = []
    days = ["2023-12-31T23:59:59.000Z", "2024-01-01T10:00:00.000Z", "2024-02-29T12:00:00.000Z"]
    for number in range(1, 19):
        created = days[number % 3]
        events.append(
            classification(
                number,
                created_at=created,
                project=1 + number % 2,
                workflow=1 + number % 3,
                user=[1, 2, 3, MEMBER, GROUP_ADMIN, None][number % 6],
                groups=[GROUP_IDS[number % len(GROUP_IDS)], 1, 1],
                started_at="2023-12-31T23:00:00.000Z",
                finished_at=created,
            )
        )
        events.append(comment(number, created_at=created, project_id=[1, 2, None][number % 3]))
    return events


@dataclass
class FuzzRun:
    backend: str
    fake: FakePanoptes
    outcomes: Counter[tuple[str, int]] = field(default_factory=Counter)
    _tokens: dict[tuple[int, bool], str] = field(default_factory=dict)

    def bearer(self, user_id: int, *, admin: bool = False) -> dict[str, str]:
        token = self._tokens.get((user_id, admin))
        if token is None:
            token = self._tokens[(user_id, admin)] = tokens.token(user_id, admin=admin)
            self.fake.state.add_user(token, user_id, admin=admin)
        return {"Authorization": f"Bearer {token}"}

    def report(self, elapsed: float) -> str:
        lines = [f"\n[{self.backend}] {self.outcomes.total()} fuzz cases in {elapsed:.1f} s"]
        for route in sorted({route for route, _ in self.outcomes}):
            statuses = sorted((s, n) for (r, s), n in self.outcomes.items() if r == route)
            total = sum(n for _, n in statuses)
            lines.append(f"  {route}: {total} ({', '.join(f'{s}: {n}' for s, n in statuses)})")
        return "\n".join(lines)


@pytest.fixture
def fuzz_run(
    request: pytest.FixtureRequest, database_url: str, panoptes: FakePanoptes
) -> Iterator[FuzzRun]:
    panoptes.state.groups = EveryGroup()
    panoptes.state.memberships = Roles()
    run = FuzzRun("sqlite" if database_url.startswith("sqlite") else "postgresql", panoptes)
    began, failed_before = time.monotonic(), request.session.testsfailed
    yield run
    print(run.report(time.monotonic() - began))
    if request.session.testsfailed > failed_before:
        return  # the failure says it all
    routes = {route for route, _ in run.outcomes}
    answered = {route for route, status in run.outcomes if 200 <= status < 300}
    assert routes, "no fuzz case ran"
    assert answered == routes, f"never answered 2xx: {routes - answered}"


def app_settings(database_url: str, fake: FakePanoptes) -> Settings:
    return make_settings(
        database_url,
        panoptes_url=fake.url,
        panoptes_public_key=tokens.key_pair().public_pem,
        panoptes_client_id=fake.state.client_id,
        panoptes_client_secret=fake.state.client_secret,
    )


async def seed(settings: Settings) -> None:
    async with client_for(settings) as http:
        await post_events(http, seed_events())


@pytest.fixture
def app(database_url: str, fuzz_run: FuzzRun) -> Iterator[FastAPI]:
    """The app under test, on this database (seeded), talking to the fake Panoptes."""
    settings = app_settings(database_url, fuzz_run.fake)
    asyncio.run(seed(settings))
    application = create_app(settings)
    try:
        yield application
    finally:
        # Runs the lifespan shutdown of the apps schemathesis started (only this one is left):
        # that closes the app's database pool and its Panoptes client.
        schemathesis_asgi.shutdown_lifespans()


# The app's own OpenAPI description, which does not depend on the database. Each fuzz case is
# sent to the per-database app (``app=``); this one only tells schemathesis to use its in-process
# ASGI transport, and is never called.
DESCRIBED = create_app(make_settings("sqlite:///never-opened.db"))
OPENAPI = DESCRIBED.openapi()


def load_schema() -> Any:
    loaded = schemathesis.openapi.from_dict(OPENAPI, config=config())
    loaded.app = DESCRIBED
    return loaded


def stream_events(payload: list[Any]) -> list[Any]:
    """Generated payload items as stream events of every shape the parser meets."""
    events: list[Any] = []
    for index, item in enumerate(payload):
        shape = index % 4
        if shape == 0 or not isinstance(item, dict):
            events.append(item)
        elif shape == 1:
            events.append({"source": "panoptes", "type": "classification", "data": item})
        elif shape == 2:
            events.append({"source": "talk", "type": "comment", "data": item})
        else:
            event = classification(1000 + index, user=index % 3 or None, groups=[index, index])
            event["data"]["metadata"].update(item)
            event["linked"] = item
            events.append(event)
    return events


def positive_id(value: Any) -> int | None:
    """The path id as the app will read it, when it is one (the coverage phase sends text)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**63:
        return value
    return None


def viewer_headers(case: Any, run: FuzzRun) -> dict[str, str] | None:
    """Headers replacing the generated ones for this case, or None to send those."""
    if case.path == "/kinesis":
        return basic_auth()
    if case.path == "/classifications/users/{user_id}":
        user_id = positive_id(case.path_parameters.get("user_id"))
        choice = None if user_id is None else user_id % 4
        if user_id is None or choice == 0:
            return None
        if choice == 1:
            return run.bearer(ADMIN, admin=True)
        return run.bearer(user_id if choice == 2 else user_id + 1)
    if case.path == "/classifications/user_groups/{group_id}":
        group_id = positive_id(case.path_parameters.get("group_id"))
        viewer = None if group_id is None else group_id // len(VISIBILITIES) % 5
        if viewer == 1:
            return run.bearer(ADMIN, admin=True)
        if viewer in (2, 3, 4):
            return run.bearer([MEMBER, GROUP_ADMIN, OUTSIDER][viewer - 2])
    if case.path == "/dashboard/data/operator":
        # The generated headers decide: an admin, a volunteer, or the headers themselves.
        viewer = len(str(case.headers or {})) % 3
        if viewer == 0:
            return run.bearer(ADMIN, admin=True)
        if viewer == 1:
            return run.bearer(OUTSIDER)
    if case.path == "/reports/spurious":
        viewer = len(case.query or {}) % 3
        if viewer == 0:
            return run.bearer(ADMIN, admin=True)
        if viewer == 1:
            return run.bearer(OUTSIDER)
    return None


schema = load_schema()


@schema.parametrize()
# The app and the fake Panoptes live for all the cases of one route on one database, on purpose.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_route_answers_as_declared(case: Any, app: FastAPI, fuzz_run: FuzzRun) -> None:
    if case.path == "/kinesis" and isinstance(case.body, dict):
        payload = case.body.get("payload")
        if isinstance(payload, list):
            case.body = {**case.body, "payload": stream_events(payload)}
    response = case.call_and_validate(
        headers=viewer_headers(case, fuzz_run), checks=CHECKS, app=app
    )
    fuzz_run.outcomes[(case.operation.label, response.status_code)] += 1


def broken_database_url(database_url: str, unreachable_url: str) -> str:
    """A URL of the same kind whose database cannot be reached."""
    if database_url.startswith("sqlite"):
        return "sqlite:////nonexistent-directory/eras.db"
    return f"postgresql://postgres@{unreachable_url.removeprefix('http://')}/eras"


async def test_openapi_declares_the_status_of_a_database_outage(
    database_url: str, unreachable_url: str
) -> None:
    """docs/api.md promises 503 "Database unavailable, try again later" when the database is
    unreachable; the description should declare it on every route that reads or writes it."""
    settings = make_settings(broken_database_url(database_url, unreachable_url))
    declared = OPENAPI["paths"]
    requests = [
        ("post", "/kinesis", {"json": {"payload": seed_events()[:2]}, "headers": basic_auth()}),
        ("get", "/classifications", {"params": {"period": "week"}}),
        ("get", "/comments", {"params": {"user_id": "1"}}),
    ]
    undeclared = []
    async with client_for(settings) as http:
        for method, path, kwargs in requests:
            response = await http.request(method, path, **kwargs)
            assert response.status_code == 503, (path, response.text)
            assert response.json() == {"error": "Database unavailable, try again later"}
            if "503" not in declared[path][method]["responses"]:
                undeclared.append(f"{method.upper()} {path}")
    assert undeclared == [], f"503 is answered but not declared in the OpenAPI by {undeclared}"

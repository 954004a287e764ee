"""The dashboard in a real browser: Playwright driving Debian's Chromium against a live
``eras serve``, on a SQLite file and on PostgreSQL, with data ingested through POST /kinesis.

Each page loads with no console error; the numbers shown are the API's for the same query; the
period picker and the date range change what is plotted; the token field works; a private group
without a token shows a message. One browser serves the whole module, one server each database.

Chromium must be at /usr/bin/chromium (``scripts/test.sh`` installs the Debian package): when it
is missing these tests fail, they are never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from eras.store.backend import driver_url
from eras.store.database import Database
from eras.store.migrate import migrate
from tests import tokens
from tests.conftest import BACKENDS, POSTGRES_SERVER_URL
from tests.environment import child_environment
from tests.factories import INGEST_PASSWORD, INGEST_USER, basic_auth, classification, comment
from tests.fake_panoptes import FakePanoptes
from tests.test_serve import serving

CHROMIUM = "/usr/bin/chromium"
ADMIN, MEMBER, VOLUNTEER = 900, 101, 100
PUBLIC_GROUP, PRIVATE_GROUP = 501, 502


def moment(days_ago: int, hour: int) -> str:
    day = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return (day - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def events() -> list[dict[str, Any]]:
    """Ninety days of classifications on two projects (workflows 11, 12 and 21) by three
    volunteers, two of them in both groups, and comments."""
    made: list[dict[str, Any]] = []
    for number in range(1, 241):
        days_ago = number * 7 % 90
        project = 1 if number % 3 else 2
        user = [VOLUNTEER, MEMBER, 102][number % 3]
        made.append(
            classification(
                number,
                created_at=moment(days_ago, 10),
                project=project,
                workflow=(11 + number % 2) if project == 1 else 21,
                user=user,
                groups=[PUBLIC_GROUP, PRIVATE_GROUP] if user != 102 else None,
                started_at=moment(days_ago, 9),
                finished_at=moment(days_ago, 10),
            )
        )
        if number % 4 == 0:
            made.append(
                comment(number, created_at=moment(days_ago, 11), project_id=project, user_id=user)
            )
    return made


@dataclass
class Live:
    url: str
    fake: FakePanoptes

    def token(self, user_id: int, *, admin: bool = False) -> str:
        token = tokens.token(user_id, admin=admin)
        self.fake.state.add_user(token, user_id, admin=admin)
        return token

    def api(self, path: str, token: str | None = None, **params: str) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


def _database(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'eras.db'}"
        database = Database(url)
        migrate(database)
        database.dispose()
        yield url
        return
    name = f"eras_browser_{uuid.uuid4().hex[:10]}"
    admin = create_engine(driver_url(POSTGRES_SERVER_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    migrate(database)
    database.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """``eras serve`` on a database of each kind, holding :func:`events`."""
    fake = FakePanoptes().start()
    fake.state.add_group(PUBLIC_GROUP, "public_show_all")
    fake.state.add_group(PRIVATE_GROUP, "private_agg_only")
    fake.state.memberships[(MEMBER, PRIVATE_GROUP)] = ["group_member"]
    directory = tmp_path_factory.mktemp(f"browser-{request.param}")
    databases = _database(request.param, directory)
    database_url = next(databases)
    environment = child_environment(
        ERAS_DATABASE_URL=database_url,
        ERAS_KINESIS_USERNAME=INGEST_USER,
        ERAS_KINESIS_PASSWORD=INGEST_PASSWORD,
        ERAS_PANOPTES_URL=fake.url,
        ERAS_PANOPTES_PUBLIC_KEY=tokens.key_pair().public_pem,
        ERAS_PANOPTES_CLIENT_ID=fake.state.client_id,
        ERAS_PANOPTES_CLIENT_SECRET=fake.state.client_secret,
    )
    try:
        with serving(environment) as url:
            response = httpx.post(
                f"{url}/kinesis", json={"payload": events()}, headers=basic_auth(), timeout=30
            )
            assert response.status_code == 200, response.text
            yield Live(url, fake)
    finally:
        fake.stop()
        next(databases, None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@dataclass
class Opened:
    page: Page
    errors: list[str]
    requests: list[tuple[str, str | None]]  # URL, Authorization header


@pytest.fixture
def opened(browser: Browser) -> Iterator[Opened]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    requests: list[tuple[str, str | None]] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "request",
        lambda request: requests.append((request.url, request.headers.get("authorization"))),
    )
    yield Opened(page, errors, requests)
    context.close()


def visit(opened: Opened, url: str) -> Page:
    page = opened.page
    page.goto(url)
    page.wait_for_selector("body[data-state=ready]", timeout=20_000)
    return page


def renders(page: Page) -> int:
    return int(page.evaluate("document.body.dataset.renders"))


def wait_for_render(page: Page, before: int) -> None:
    # A function, not an expression: the page's policy forbids evaluating strings.
    page.wait_for_function(
        "(before) => Number(document.body.dataset.renders) > before", arg=before, timeout=20_000
    )


def stat(page: Page, key: str) -> float:
    return float(page.get_attribute(f'[data-stat="{key}"]', "data-value") or "nan")


def plotted(page: Page, figure: str) -> list[dict[str, Any]]:
    """The traces plotly drew in a figure: its names, x and y."""
    traces: list[dict[str, Any]] = page.evaluate(
        f"""Array.from(document.querySelector('[data-figure="{figure}"] .plot').data)
            .map((t) => ({{name: t.name, x: Array.from(t.x), y: Array.from(t.y)}}))"""
    )
    return traces


def table_rows(page: Page, figure: str) -> list[list[str]]:
    rows: list[list[str]] = page.evaluate(
        f"""Array.from(document.querySelectorAll('[data-figure="{figure}"] tbody tr'))
            .map((row) => Array.from(row.cells).map((cell) => cell.dataset.value))"""
    )
    return rows


def series(answer: dict[str, Any], key: str = "count") -> dict[str, float]:
    return {entry["period"][:10]: entry[key] for entry in answer.get("data", [])}


def sign_in(page: Page, token: str) -> None:
    before = renders(page)
    page.fill("#token", token)
    page.click("form.token button[type=submit]")
    wait_for_render(page, before)


class TestOverview:
    def test_numbers_equal_the_api(self, live: Live, opened: Opened) -> None:
        page = visit(opened, f"{live.url}/dashboard/")

        assert stat(page, "classifications-all") == live.api("/classifications")["total_count"]
        assert stat(page, "comments-all") == live.api("/comments")["total_count"]
        week = (datetime.now(UTC).date() - timedelta(days=6)).isoformat()
        assert (
            stat(page, "classifications-7d")
            == live.api("/classifications", start_date=week)["total_count"]
        )
        busiest = live.api("/dashboard/data/busiest_projects", days="7", limit="10")
        assert [row[:2] for row in table_rows(page, "busiest")] == [
            [str(p["project_id"]), str(p["total_count"])] for p in busiest["projects"]
        ]
        [classifications, comments] = plotted(page, "activity")
        assert dict(zip(classifications["x"], classifications["y"], strict=True)) == series(
            live.api("/classifications", period="month")
        )
        assert sum(comments["y"]) == live.api("/comments")["total_count"]
        assert opened.errors == []

    def test_period_picker_and_date_range_change_the_chart(
        self, live: Live, opened: Opened
    ) -> None:
        page = visit(opened, f"{live.url}/dashboard/")
        months = plotted(page, "activity")[0]["x"]

        before = renders(page)
        page.select_option("#period", "week")
        wait_for_render(page, before)
        weekly = plotted(page, "activity")[0]
        assert len(weekly["x"]) > len(months)
        assert dict(zip(weekly["x"], weekly["y"], strict=True)) == series(
            live.api("/classifications", period="week")
        )

        start = (datetime.now(UTC).date() - timedelta(days=20)).isoformat()
        before = renders(page)
        page.fill("#start_date", start)
        page.dispatch_event("#start_date", "change")
        wait_for_render(page, before)
        recent = plotted(page, "activity")[0]
        expected = series(live.api("/classifications", period="week", start_date=start))
        assert dict(zip(recent["x"], recent["y"], strict=True)) == expected
        assert len(recent["x"]) < len(weekly["x"])
        # The table holds the same numbers as the chart, and the address keeps the choice.
        assert [row[1] for row in table_rows(page, "activity")] == [str(y) for y in recent["y"]]
        assert f"start_date={start}" in page.url and "period=week" in page.url
        assert opened.errors == []

    def test_csv_download_has_the_table(self, live: Live, opened: Opened) -> None:
        page = visit(opened, f"{live.url}/dashboard/")
        with page.expect_download() as download:
            page.click('[data-figure="busiest"] button.csv')
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0] == "Project,Classifications"
        assert [line.split(",") for line in lines[1:]] == [
            row[:2] for row in table_rows(page, "busiest")
        ]


class TestProject:
    def test_one_series_per_workflow_from_one_breakdown_call(
        self, live: Live, opened: Opened
    ) -> None:
        page = visit(opened, f"{live.url}/dashboard/project?project_id=1")

        answer = live.api(
            "/classifications",
            workflow_id="11,12",
            breakdown="true",
            time_spent="true",
            period="week",
        )
        traces = plotted(page, "workflows")
        assert [trace["name"] for trace in traces] == ["Workflow 11", "Workflow 12"]
        for trace, entry in zip(traces, answer["breakdown"], strict=True):
            drawn = {x: y for x, y in zip(trace["x"], trace["y"], strict=True) if y}
            assert drawn == series(entry)
        assert stat(page, "classifications") == answer["total_count"]
        assert stat(page, "comments") == live.api("/comments", project_id="1")["total_count"]
        assert stat(page, "workflows") == 2
        breakdowns = [url for url, _ in opened.requests if "breakdown=true" in url]
        assert len(breakdowns) == 1
        rates = live.api("/dashboard/data/project_workflows", project_id="1", days="14")
        assert plotted(page, "rates")[0]["y"] == [w["daily_rate"] for w in rates["workflows"]]
        assert opened.errors == []


class TestGroup:
    def test_public_group_shows_stats_contributors_and_members(
        self, live: Live, opened: Opened
    ) -> None:
        page = visit(opened, f"{live.url}/dashboard/group?group_id={PUBLIC_GROUP}")

        answer = live.api(f"/classifications/user_groups/{PUBLIC_GROUP}", top_contributors="10")
        assert stat(page, "classifications") == answer["total_count"]
        assert stat(page, "active-users") == answer["active_users"]
        assert plotted(page, "top-contributors")[0]["y"] == [
            item["count"] for item in answer["top_contributors"]
        ]
        members = live.api(
            f"/classifications/user_groups/{PUBLIC_GROUP}", individual_stats_breakdown="true"
        )["group_member_stats_breakdown"]
        assert [row[:2] for row in table_rows(page, "members")] == [
            [str(m["user_id"]), str(m["count"])] for m in members
        ]
        assert opened.errors == []

    def test_private_group_without_a_token_shows_a_message_then_a_member_sees_it(
        self, live: Live, opened: Opened
    ) -> None:
        page = visit(opened, f"{live.url}/dashboard/group?group_id={PRIVATE_GROUP}")

        notice = page.text_content(".notice") or ""
        assert "members only" in notice and "token" in notice
        assert page.query_selector("[data-stat]") is None
        # The refused request is the only thing the console reports.
        assert all("status of 401" in error for error in opened.errors), opened.errors

        member = live.token(MEMBER)
        sign_in(page, member)
        answer = live.api(f"/classifications/user_groups/{PRIVATE_GROUP}", member)
        assert stat(page, "classifications") == answer["total_count"]
        # Members may not see the breakdown of a private_agg_only group: said, not an error.
        assert "not visible to you" in (page.text_content("section .notice") or "")


class TestVolunteer:
    def test_the_token_field_shows_the_volunteers_own_page(
        self, live: Live, opened: Opened
    ) -> None:
        page = visit(opened, f"{live.url}/dashboard/volunteer")
        assert "Enter your token" in (page.text_content(".notice") or "")

        token = live.token(VOLUNTEER)
        sign_in(page, token)

        path = f"/classifications/users/{VOLUNTEER}"
        answer = live.api(
            path, token, time_spent="true", project_contributions="true", period="month"
        )
        assert stat(page, "classifications") == answer["total_count"]
        assert stat(page, "time-spent") == round(answer["time_spent"] / 3600, 1)
        assert plotted(page, "projects-by-count")[0]["y"] == [
            item["count"] for item in answer["project_contributions"]
        ]
        recents = live.api(
            path, token, project_contributions="true", order_project_contributions_by="recents"
        )
        assert [row[0] for row in table_rows(page, "projects-by-recents")] == [
            str(item["project_id"]) for item in recents["project_contributions"]
        ]
        drawn = plotted(page, "volunteer-activity")[0]
        assert dict(zip(drawn["x"], drawn["y"], strict=True)) == series(answer)
        # Kept in this tab only, and sent to eras only.
        assert page.evaluate("sessionStorage.getItem('eras.token')") == token
        assert page.evaluate("localStorage.length") == 0
        sent = [url for url, authorization in opened.requests if authorization]
        assert sent and all(url.startswith(f"{live.url}/") for url in sent)
        assert opened.errors == []

        page.reload()
        page.wait_for_selector("body[data-state=ready]")
        assert stat(page, "classifications") == answer["total_count"]


class TestOperator:
    def test_an_admin_sees_ingest_rejections_and_the_report(
        self, live: Live, opened: Opened
    ) -> None:
        page = visit(opened, f"{live.url}/dashboard/operator")
        sign_in(page, live.token(ADMIN, admin=True))

        assert stat(page, "ingested-inserted") == len(events())
        assert stat(page, "rejected-stored") == 0
        assert page.query_selector('[data-figure="spurious"] h2') is not None
        assert opened.errors == []


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
def test_every_page_loads_without_a_console_error(live: Live, opened: Opened, path: str) -> None:
    page = visit(opened, f"{live.url}{path}")
    assert page.text_content("h1")
    assert opened.errors == []

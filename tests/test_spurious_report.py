"""The spurious-classification report (``eras report spurious``, ``GET /reports/spurious``).

Each database is loaded once for the module, through ``POST /kinesis``, with sittings chosen
around every threshold: a project whose count jumps, one whose count drops, a jump reaching out
of the window, a jump onto today (excluded), a volunteer in each tier, one just under each
threshold, and a volunteer only the any-project section sees. The expected report is computed
here from the events themselves, by the rules as the documentation states them
(``expected_report``), never by eras code; a few hand-written facts keep that oracle honest.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time as clock
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from eras.domain.report import (
    EARLIEST_UNTIL,
    THRESHOLD_OPTIONS,
    FlaggedProject,
    FlaggedVolunteers,
    InvalidThreshold,
    ProjectDay,
    SpuriousReport,
    Thresholds,
    TierLists,
    VolunteerDay,
    Window,
    spurious_report,
    thresholds_from,
)
from eras.services.report import SLACK_MAX_BLOCKS, SLACK_MAX_SECTION, slack_message
from eras.store.database import Database
from eras.store.migrate import migrate
from tests import tokens
from tests.bulk_helpers import another_database, run_eras
from tests.conftest import client_for, make_settings
from tests.factories import basic_auth, classification

# Projects, by what they show.
JUMP = 1974  # flagged on the day of its jump (and again by the drop after it)
EDGE = 2001  # jumps from the day before the window onto its first day
TODAY = 3003  # jumps onto today, which the default window excludes
DROP = 4004  # drops: the earlier, higher day is flagged; the rate is exactly 5,000 a day

LINK_BASE = "https://example.org/lab/"
MENTION = "<@U0762C6KH>"
THRESHOLD_NAMES = [option.name for option in THRESHOLD_OPTIONS]


@dataclass(frozen=True)
class Sitting:
    """``count`` classifications on one project and UTC day, ``days_ago`` days before today, by
    ``user_id`` (None: not logged in), each with ``seconds`` of session time (None: no start
    and finish times)."""

    project_id: int
    days_ago: int
    count: int
    user_id: int | None = None
    seconds: float | None = 1.0


SITTINGS = [
    # JUMP: 6,000 six days ago, 12,199 five days ago, 1,001 four days ago.
    Sitting(JUMP, 6, 1001),
    Sitting(JUMP, 6, 4999, user_id=107, seconds=0.5),  # tier I, on an unflagged day only
    Sitting(JUMP, 5, 1200, user_id=101, seconds=0.5),  # tier I
    Sitting(JUMP, 5, 1200, user_id=102, seconds=19),  # duty of care: 22,800 s, rate < 1
    Sitting(JUMP, 5, 5000, user_id=103, seconds=0.5),  # tier I and tier II: exactly 5,000
    Sitting(JUMP, 5, 1199, user_id=104, seconds=0.5),  # one under tier I's count
    Sitting(JUMP, 5, 1200, user_id=105, seconds=1),  # rate exactly 1: neither tier
    Sitting(JUMP, 5, 1200, user_id=106, seconds=18),  # exactly 21,600 s: not duty of care
    Sitting(JUMP, 5, 1200, user_id=108, seconds=None),  # no session time: never a tier
    Sitting(JUMP, 4, 1001),
    # EDGE: 1,001 eight days ago (outside the window), 6,001 seven days ago (its first day).
    Sitting(EDGE, 8, 1001),
    Sitting(EDGE, 7, 1001),
    Sitting(EDGE, 7, 5000, user_id=109, seconds=0.5),
    # TODAY: 1,001 yesterday, 6,001 today.
    Sitting(TODAY, 1, 1001),
    Sitting(TODAY, 0, 1000),
    Sitting(TODAY, 0, 5001, user_id=110, seconds=0.5),
    # DROP: 6,001 four days ago, 1,001 three days ago.
    Sitting(DROP, 4, 1000),
    Sitting(DROP, 4, 5001, user_id=111, seconds=0.5),  # tier II only: over 5,000
    Sitting(DROP, 3, 1001),
]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sitting_events(sitting: Sitting, today: date, first_id: int) -> list[dict[str, Any]]:
    day = today - timedelta(days=sitting.days_ago)
    start = datetime.combine(day, time(0, 1), UTC)
    events = []
    for number in range(sitting.count):
        created = start + timedelta(seconds=number)
        times: dict[str, Any] = {"started_at": None, "finished_at": None}
        if sitting.seconds is not None:
            times = {
                "started_at": iso(created - timedelta(seconds=sitting.seconds)),
                "finished_at": iso(created),
            }
        events.append(
            classification(
                first_id + number,
                created_at=iso(created),
                project=sitting.project_id,
                workflow=sitting.project_id * 10,
                user=sitting.user_id,
                **times,
            )
        )
    return events


def build_events(today: date) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for sitting in SITTINGS:
        events += sitting_events(sitting, today, first_id=len(events) + 1)
    return events


# --- the oracle: the rules as written, over the events ---------------------------------------

ORIGINAL_THRESHOLDS = {
    "project_min_count": 1000,
    "project_min_rate": 5000,
    "project_min_difference": 50,
    "volunteer_min_count": 1000,
    "tier_min": 1200,
    "tier_max": 5000,
    "tier_one_rate": 1,
    "duty_of_care_seconds": 21600,
    "tier_two_min": 5000,
}
TIERS = ["tier_one", "duty_of_care", "tier_two"]


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected_report(events: list[dict[str, Any]], until: date, **changes: str) -> dict[str, Any]:
    t = {name: Fraction(value) for name, value in {**ORIGINAL_THRESHOLDS, **changes}.items()}
    first, last = until - timedelta(days=7), until - timedelta(days=1)

    per_project: Counter[tuple[int, date]] = Counter()
    per_volunteer: dict[tuple[int, int, date], list[int]] = {}
    for event in events:
        data = event["data"]
        day = moment(data["created_at"]).date()
        if not first <= day <= last:
            continue
        project = int(data["links"]["project"])
        per_project[(project, day)] += 1
        if data["links"]["user"] is None:
            continue
        metadata = data["metadata"]
        milliseconds = 0
        if "started_at" in metadata and "finished_at" in metadata:
            spent = moment(metadata["finished_at"]) - moment(metadata["started_at"])
            milliseconds = min(max(spent // timedelta(milliseconds=1), 0), 10_800_000)
        totals = per_volunteer.setdefault((int(data["links"]["user"]), project, day), [0, 0])
        totals[0] += 1
        totals[1] += milliseconds

    flagged: dict[int, set[date]] = defaultdict(set)
    for (project, day1), count1 in per_project.items():
        for (other, day2), count2 in per_project.items():
            if other != project or not day1 < day2 or count1 == count2:
                continue
            if count1 <= t["project_min_count"] or count2 <= t["project_min_count"]:
                continue
            change = abs(count2 - count1)
            rate = Fraction(change, (day2 - day1).days)
            difference = Fraction(change, count1) * 100
            if rate >= t["project_min_rate"] and difference >= t["project_min_difference"]:
                flagged[project].add(day1 if count1 > count2 else day2)

    def tiers(count: int, milliseconds: int) -> list[str]:
        if count <= t["volunteer_min_count"] or milliseconds <= 0:
            return []
        seconds = Fraction(milliseconds, 1000)
        rate = count / seconds
        within = t["tier_min"] <= count <= t["tier_max"]
        found = []
        if within and rate > t["tier_one_rate"]:
            found.append("tier_one")
        if within and rate <= t["tier_one_rate"] and seconds > t["duty_of_care_seconds"]:
            found.append("duty_of_care")
        if count >= t["tier_two_min"]:
            found.append("tier_two")
        return found

    on_flagged: dict[str, dict[int, set[int]]] = {tier: defaultdict(set) for tier in TIERS}
    anywhere: dict[str, dict[int, set[int]]] = {tier: defaultdict(set) for tier in TIERS}
    for (user, project, day), (count, milliseconds) in per_volunteer.items():
        for tier in tiers(count, milliseconds):
            anywhere[tier][project].add(user)
            if day in flagged.get(project, set()):
                on_flagged[tier][project].add(user)

    def listing(found: dict[int, set[int]]) -> list[dict[str, Any]]:
        return [{"project_id": p, "user_ids": sorted(found[p])} for p in sorted(found)]

    return {
        "window": {"start_date": first.isoformat(), "end_date": last.isoformat()},
        "projects": [
            {"project_id": p, "dates": [d.isoformat() for d in sorted(flagged[p])]}
            for p in sorted(flagged)
        ],
        **{tier: listing(on_flagged[tier]) for tier in TIERS},
        "any_project": {tier: listing(anywhere[tier]) for tier in TIERS},
    }


# --- the databases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    url: str
    today: date
    events: list[dict[str, Any]]

    def day(self, days_ago: int) -> str:
        return (self.today - timedelta(days=days_ago)).isoformat()


def utc_today_away_from_midnight() -> date:
    """Today, and still today for the next few minutes: the default window moves at midnight."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(), UTC)
    if (midnight - now).total_seconds() < 300:
        clock.sleep((midnight - now).total_seconds() + 1)
    return datetime.now(UTC).date()


async def post_all(url: str, events: list[dict[str, Any]]) -> None:
    async with client_for(make_settings(url)) as http:
        for start in range(0, len(events), 10_000):
            batch = events[start : start + 10_000]
            response = await http.post(
                "/kinesis",
                content=orjson.dumps({"payload": batch}),
                headers={**basic_auth(), "Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["inserted"] == len(batch)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    """A database of each kind holding the sittings above, loaded once for the module."""
    kind = "sqlite://" if request.param == "sqlite" else "postgresql://"
    with another_database(kind, tmp_path_factory.mktemp("report")) as url:
        today = utc_today_away_from_midnight()
        events = build_events(today)
        asyncio.run(post_all(url, events))
        yield Loaded(url, today, events)


def report_of(loaded: Loaded, *arguments: str, **environment: str) -> dict[str, Any]:
    result = run_eras(
        loaded.url, "report", "spurious", "--format", "json", *arguments, environment=environment
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    report: dict[str, Any] = json.loads(lines[0])
    return report


def entry(project_id: int, user_ids: list[int]) -> dict[str, Any]:
    return {"project_id": project_id, "user_ids": user_ids}


# --- the report --------------------------------------------------------------------------------


class TestTheReport:
    def test_json_is_what_the_rules_give_for_the_last_seven_days(self, loaded: Loaded) -> None:
        report = report_of(loaded)

        assert report == expected_report(loaded.events, loaded.today)
        # The oracle, checked by hand: the window, the jump and the drop, each tier.
        assert report["window"] == {"start_date": loaded.day(7), "end_date": loaded.day(1)}
        assert report["projects"] == [
            {"project_id": JUMP, "dates": [loaded.day(5)]},
            {"project_id": DROP, "dates": [loaded.day(4)]},
        ]
        assert report["tier_one"] == [entry(JUMP, [101, 103])]
        assert report["duty_of_care"] == [entry(JUMP, [102])]
        assert report["tier_two"] == [entry(JUMP, [103]), entry(DROP, [111])]
        # 107 and 109 classify on days no jump flags: only the any-project section sees them.
        assert report["any_project"] == {
            "tier_one": [entry(JUMP, [101, 103, 107]), entry(EDGE, [109])],
            "duty_of_care": [entry(JUMP, [102])],
            "tier_two": [entry(JUMP, [103]), entry(EDGE, [109]), entry(DROP, [111])],
        }

    def test_until_moves_the_window(self, loaded: Loaded) -> None:
        report = report_of(loaded, "--until", loaded.day(1))

        assert report == expected_report(loaded.events, loaded.today - timedelta(days=1))
        # The edge's jump is inside now, and its volunteer on a flagged day.
        assert report["window"] == {"start_date": loaded.day(8), "end_date": loaded.day(2)}
        assert {"project_id": EDGE, "dates": [loaded.day(7)]} in report["projects"]
        assert entry(EDGE, [109]) in report["tier_two"]

    async def test_admins_get_the_same_report_over_http(self, loaded: Loaded) -> None:
        settings = make_settings(loaded.url, panoptes_public_key=tokens.key_pair().public_pem)
        admin = tokens.bearer(1, admin=True)
        tomorrow = loaded.today + timedelta(days=1)
        async with client_for(settings) as http:
            default = await http.get("/reports/spurious", headers=admin)
            moved = await http.get(
                "/reports/spurious", params={"until": tomorrow.isoformat()}, headers=admin
            )

        assert default.status_code == 200, default.text
        assert default.json() == expected_report(loaded.events, loaded.today)
        assert moved.status_code == 200, moved.text
        assert moved.json() == expected_report(loaded.events, tomorrow)
        # Today is in the window now: its jump and its volunteer are seen.
        assert {"project_id": TODAY, "dates": [loaded.day(0)]} in moved.json()["projects"]
        assert entry(TODAY, [110]) in moved.json()["tier_two"]

    @pytest.mark.parametrize(
        "changes",
        [
            {"project_min_rate": "5001"},  # the drop changes by exactly 5,000 a day
            {"project_min_difference": "83.33"},  # the drop is 83.319...% of 6,001
            {"project_min_count": "1001"},  # the days of 1,001 are no longer over it
            {"project_min_count": "6000"},  # nor the jump's day of 6,000
            {"volunteer_min_count": "1200"},  # sittings of exactly 1,200 are not over it
            {"tier_min": "1199"},  # 104 reaches tier I
            {"tier_one_rate": "0.5"},  # 105's rate of exactly 1 is over it
            {"duty_of_care_seconds": "21599.999"},  # 106's 21,600 s is over it
            {"tier_max": "4998", "tier_two_min": "4999"},  # 107's 4,999 is tier II, not I
        ],
        ids=lambda changes: ",".join(f"{name}={value}" for name, value in changes.items()),
    )
    async def test_every_threshold_is_a_parameter(
        self, loaded: Loaded, changes: dict[str, str]
    ) -> None:
        settings = make_settings(loaded.url, panoptes_public_key=tokens.key_pair().public_pem)
        async with client_for(settings) as http:
            response = await http.get(
                "/reports/spurious", params=changes, headers=tokens.bearer(1, admin=True)
            )

        assert response.status_code == 200, response.text
        expected = expected_report(loaded.events, loaded.today, **changes)
        assert response.json() == expected
        # Each change moves someone in or out.
        assert expected != expected_report(loaded.events, loaded.today)

    def test_text_is_printed_and_the_slack_form_posted(
        self, loaded: Loaded, webhook: Webhook
    ) -> None:
        url = webhook.url + "/services/T000/B000/secret-part"
        result = run_eras(
            loaded.url,
            "report",
            "spurious",
            "--post",
            environment={
                "ERAS_SLACK_WEBHOOK_URL": url,
                "ERAS_SLACK_MENTION": MENTION,
                "ERAS_PROJECT_LINK_BASE": LINK_BASE,
            },
        )

        assert result.returncode == 0, result.stderr
        assert result.stderr == "eras report spurious: posted the report to Slack\n"
        assert "secret-part" not in result.stdout + result.stderr
        expected = expected_report(loaded.events, loaded.today)
        assert_text_report(result.stdout, expected)
        assert [request.path for request in webhook.requests] == ["/services/T000/B000/secret-part"]
        posted = webhook.requests[0]
        assert posted.content_type == "application/json"
        assert_slack_report(posted.body, expected)


def listed(entries: list[dict[str, Any]], key: str) -> list[tuple[int, str]]:
    return [(item["project_id"], ", ".join(str(value) for value in item[key])) for item in entries]


def text_sections(report: dict[str, Any]) -> list[list[tuple[int, str]]]:
    """Each list of the report in the order both forms show them: projects, the three tiers on
    flagged days, the three tiers on any project."""
    return [
        listed(report["projects"], "dates"),
        *(listed(report[tier], "user_ids") for tier in TIERS),
        *(listed(report["any_project"][tier], "user_ids") for tier in TIERS),
    ]


def assert_text_report(text: str, report: dict[str, Any]) -> None:
    lines = text.splitlines()
    window = report["window"]
    assert lines[0] == (
        "Potential spurious classifications, "
        f"UTC days {window['start_date']} to {window['end_date']}"
    )
    # Every list is under its heading, one line per project, "none" when empty.
    listings = [line for line in lines if line.startswith("  ")]
    expected = []
    for section in text_sections(report):
        expected += [f"  project {p}: {items}" for p, items in section] or ["  none"]
    assert listings == expected
    headings = [line for line in lines if line and not line.startswith("  ")]
    assert headings[1].startswith("High classified projects: two days over 1,000 classifications")
    tier_headings = [line.split(":")[0] for line in headings if not line.startswith("Volunteers")]
    assert tier_headings[2:] == ["Tier I", "Duty of care", "Tier II"] * 2


def assert_slack_report(body: dict[str, Any], report: dict[str, Any]) -> None:
    assert list(body) == ["blocks"]
    blocks = body["blocks"]
    kinds = [block["type"] for block in blocks]
    assert kinds == ["section", "divider", *["section"] * 8, "divider", *["section"] * 7]
    texts = [block["text"]["text"] for block in blocks if block["type"] == "section"]
    for block in blocks:
        if block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn"
    window = report["window"]
    assert texts[0] == (
        f"{MENTION} *Potential Spurious Classifications Report*\n"
        f"UTC days {window['start_date']} to {window['end_date']}"
    )
    titles = [*texts[1:8:2], texts[9], *texts[10::2]]
    assert [title.split(" (")[0] for title in titles] == [
        "*High Classified Projects",
        "*Flagged Users Tier I",
        "*Duty of Care Tier",
        "*Flagged Users Tier II",
        "*Any Project: the same tiers on every project and day of the window*",
        "*Flagged Users Tier I",
        "*Duty of Care Tier",
        "*Flagged Users Tier II",
    ]
    # Slack reads <, > and & as markup: the thresholds' signs are escaped.
    assert titles[1] == (
        "*Flagged Users Tier I (≥ 1200 &amp; ≤ 5000 classifications in a day "
        "&amp; rate &gt; 1 classification/sec)*"
    )
    assert titles[2].endswith("&amp; session_time &gt; 360 mins)*")
    assert titles[3] == "*Flagged Users Tier II (≥ 5000 classifications/day)*"
    lists = texts[2:9:2] + texts[11::2]
    expected = [
        "\n".join(f"<{LINK_BASE}{p}|Project {p}>: {items}" for p, items in section) or "None"
        for section in text_sections(report)
    ]
    assert lists == expected


# --- the route refuses --------------------------------------------------------------------------


class TestTheRouteRefuses:
    @pytest.fixture
    async def http(self, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
        url = f"sqlite:///{tmp_path / 'eras.db'}"
        database = Database(url)
        migrate(database)
        database.dispose()
        settings = make_settings(url, panoptes_public_key=tokens.key_pair().public_pem)
        async with client_for(settings) as client:
            yield client

    async def test_without_a_token_401(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/reports/spurious")

        assert response.status_code == 401
        assert list(response.json()) == ["error"]
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_a_volunteer_who_is_not_an_admin_403(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/reports/spurious", headers=tokens.bearer(5))

        assert response.status_code == 403
        assert response.json() == {"error": "Only Zooniverse admins may view this report"}

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"until": "2026-02-30"}, "Invalid date."),
            ({"until": "yesterday"}, "Invalid date."),
            ({"until": "0001-01-07"}, "until must be 0001-01-08 or later"),
            ({"tier_min": "-1"}, "Invalid tier_min: expected a whole number"),
            ({"tier_two_min": "1.5"}, "Invalid tier_two_min: expected a whole number"),
            (
                {"tier_one_rate": "1e3"},
                "Invalid tier_one_rate: expected a number, such as 1 or 0.5",
            ),
        ],
    )
    async def test_bad_parameters_400(
        self, http: httpx.AsyncClient, params: dict[str, str], message: str | None
    ) -> None:
        response = await http.get(
            "/reports/spurious", params=params, headers=tokens.bearer(1, admin=True)
        )

        assert response.status_code == 400, response.text
        assert list(response.json()) == ["error"]
        if message is not None:
            assert response.json() == {"error": message}

    async def test_the_thresholds_are_the_documented_parameters(
        self, http: httpx.AsyncClient
    ) -> None:
        document = (await http.get("/openapi.json")).json()
        operation = document["paths"]["/reports/spurious"]["get"]

        names = [parameter["name"] for parameter in operation["parameters"]]
        assert names == ["until", *THRESHOLD_NAMES]
        assert {"200", "400", "401", "403", "503"} <= set(operation["responses"])


# --- posting fails -------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    content_type: str
    body: Any


class Webhook:
    """A loopback HTTP server standing in for Slack: records what is posted, answers
    ``status``."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 200
        self.answer = b"ok"
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                hook.requests.append(
                    Received(self.path, self.headers.get("Content-Type", ""), body)
                )
                self.send_response(hook.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(hook.answer)))
                self.end_headers()
                self.wfile.write(hook.answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture
def empty_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'eras.db'}"
    database = Database(url)
    migrate(database)
    database.dispose()
    return url


class TestPostingFails:
    @pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
    def test_without_a_webhook_exit_2_before_reading(self, value: str | None) -> None:
        environment = {} if value is None else {"ERAS_SLACK_WEBHOOK_URL": value}
        # A database that cannot be opened: the setting is checked first.
        result = run_eras(
            "sqlite:////nonexistent-directory/eras.db",
            "report",
            "spurious",
            "--post",
            environment=environment,
        )

        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr == (
            "eras report spurious: ERAS_SLACK_WEBHOOK_URL is not set: "
            "--post needs the webhook to post to\n"
        )

    def test_an_unreachable_webhook_exit_1(self, empty_url: str, unreachable_url: str) -> None:
        result = run_eras(
            empty_url,
            "report",
            "spurious",
            "--post",
            environment={"ERAS_SLACK_WEBHOOK_URL": unreachable_url + "/services/secret-part"},
        )

        assert result.returncode == 1
        assert result.stdout.startswith("Potential spurious classifications")
        assert result.stderr == (
            "eras report spurious: the report was not posted: "
            "the Slack webhook could not be reached (ConnectError)\n"
        )
        assert "secret-part" not in result.stdout + result.stderr

    def test_a_webhook_answering_500_exit_1(self, empty_url: str, webhook: Webhook) -> None:
        webhook.status, webhook.answer = 500, b"internal_error"
        result = run_eras(
            empty_url,
            "report",
            "spurious",
            "--post",
            "--format",
            "json",
            environment={"ERAS_SLACK_WEBHOOK_URL": webhook.url + "/services/secret-part"},
        )

        assert result.returncode == 1
        assert result.stderr == (
            "eras report spurious: the report was not posted: "
            "the Slack webhook answered 500 Internal Server Error: internal_error\n"
        )
        assert "secret-part" not in result.stdout + result.stderr
        assert len(webhook.requests) == 1
        assert json.loads(result.stdout)["projects"] == []


# --- the rules and the Slack form, without a database ------------------------------------------


class TestRules:
    def test_the_window_is_the_seven_days_before_until(self) -> None:
        assert Window.before(date(2026, 3, 6)) == Window(date(2026, 2, 27), date(2026, 3, 5))
        assert Window.before(EARLIEST_UNTIL).start == date.min
        with pytest.raises(ValueError):
            Window.before(EARLIEST_UNTIL - timedelta(days=1))

    def test_equal_counts_flag_no_day(self) -> None:
        window = Window.before(date(2026, 3, 6))
        anything = Thresholds(project_min_rate=Fraction(0), project_min_difference=Fraction(0))
        days = [ProjectDay(1, date(2026, 3, 1), 3000), ProjectDay(1, date(2026, 3, 3), 3000)]

        assert spurious_report(window, days, [], anything).projects == ()

    def test_the_rate_is_per_day_apart(self) -> None:
        window = Window.before(date(2026, 3, 6))
        # 10,000 more over two days: 5,000 a day.
        days = [ProjectDay(1, date(2026, 3, 1), 2000), ProjectDay(1, date(2026, 3, 3), 12000)]

        flagged = spurious_report(window, days, [], Thresholds()).projects
        assert flagged == (FlaggedProject(1, (date(2026, 3, 3),)),)
        stricter = Thresholds(project_min_rate=Fraction(5001))
        assert spurious_report(window, days, [], stricter).projects == ()

    def test_rows_outside_the_window_are_ignored(self) -> None:
        window = Window.before(date(2026, 3, 6))
        outside = [ProjectDay(1, date(2026, 3, 6), 9000), ProjectDay(1, date(2026, 3, 5), 1001)]
        volunteers = [VolunteerDay(7, 1, date(2026, 3, 6), 6000, 1000)]

        report = spurious_report(window, outside, volunteers, Thresholds())
        assert report.projects == ()
        assert report.any_project == TierLists((), (), ())

    def test_thresholds_are_read_exactly(self) -> None:
        thresholds = thresholds_from({"tier_one_rate": " 0.1 ", "tier_min": "7", "tier_max": ""})

        assert thresholds.tier_one_rate == Fraction(1, 10)
        assert thresholds.tier_min == 7
        assert thresholds.tier_max == Thresholds().tier_max
        for name, text in [("tier_min", "+1"), ("tier_one_rate", "-0.5"), ("tier_max", "1_000")]:
            with pytest.raises(InvalidThreshold, match=f"^Invalid {name}: expected"):
                thresholds_from({name: text})


class TestSlackMessage:
    def test_a_long_report_stays_within_slacks_limits(self) -> None:
        many = tuple(
            FlaggedVolunteers(project, tuple(range(10_000_000, 10_000_000 + 400)))
            for project in range(1, 60)
        )
        report = SpuriousReport(
            Window.before(date(2026, 3, 6)),
            projects=tuple(FlaggedProject(project, (date(2026, 3, 1),)) for project in range(60)),
            flagged=TierLists(many, (), ()),
            any_project=TierLists(many, many, many),
        )

        blocks = slack_message(report, Thresholds(), mention=None, project_link_base=LINK_BASE)[
            "blocks"
        ]

        assert len(blocks) == SLACK_MAX_BLOCKS
        texts = [block["text"]["text"] for block in blocks if block["type"] == "section"]
        assert max(len(text) for text in texts) <= SLACK_MAX_SECTION
        assert texts[0].startswith("*Potential Spurious Classifications Report*")
        assert "more sections" in texts[-1]
        # A project's volunteers that do not fit on one line continue on the next.
        tier_one = "\n".join(texts[3:])
        assert f"<{LINK_BASE}1|Project 1>: 10000000, 10000001," in tier_one
        assert f"<{LINK_BASE}1|Project 1> (continued): " in tier_one

"""The spurious-classification report: read the window's rollups in one snapshot, apply the
rules (:mod:`eras.domain.report`), and write the report as JSON, as text, or as a Slack
message, which it can post to an incoming webhook."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, Final

import httpx
import orjson

from eras.domain.report import (
    FlaggedVolunteers,
    SpuriousReport,
    Thresholds,
    Tier,
    TierLists,
    Window,
)
from eras.domain.report import spurious_report as build_report
from eras.store.database import Database
from eras.store.queries.report import window_rollups

WEBHOOK_TIMEOUT_SECONDS: Final = 10.0


def today() -> date:
    """The current UTC day: the default ``until``."""
    return datetime.now(UTC).date()


def spurious_report(database: Database, until: date, thresholds: Thresholds) -> SpuriousReport:
    """The report of the seven UTC days before ``until``, from one read transaction."""
    window = Window.before(until)
    with database.read() as connection:
        rows = window_rollups(
            connection, window, volunteer_min_count=thresholds.volunteer_min_count
        )
    return build_report(window, rows.project_days, rows.volunteer_days, thresholds)


# --- JSON -----------------------------------------------------------------------------------


def _volunteer_lists(lists: Iterable[FlaggedVolunteers]) -> list[dict[str, Any]]:
    return [{"project_id": item.project_id, "user_ids": list(item.user_ids)} for item in lists]


def _tier_bodies(tiers: TierLists) -> dict[str, Any]:
    return {tier.value: _volunteer_lists(tiers.of(tier)) for tier in Tier}


def report_body(report: SpuriousReport) -> dict[str, Any]:
    """The report as ``--format json`` prints it and ``GET /reports/spurious`` answers it."""
    return {
        "window": {
            "start_date": report.window.start.isoformat(),
            "end_date": report.window.end.isoformat(),
        },
        "projects": [
            {"project_id": project.project_id, "dates": [day.isoformat() for day in project.dates]}
            for project in report.projects
        ],
        **_tier_bodies(report.flagged),
        "any_project": _tier_bodies(report.any_project),
    }


def report_json(report: SpuriousReport) -> str:
    return orjson.dumps(report_body(report)).decode()


# --- how each rule reads --------------------------------------------------------------------


def _number(value: int | Fraction, *, grouped: bool = True) -> str:
    """A threshold as a person writes it: ``5,000``, ``0.5``."""
    fraction = Fraction(value)
    if fraction.denominator == 1:
        whole = fraction.numerator
        return f"{whole:,}" if grouped else str(whole)
    with localcontext() as context:
        context.prec = 40
        decimal = Decimal(fraction.numerator) / Decimal(fraction.denominator)
    return format(decimal.normalize(), ",f" if grouped else "f")


def _duration(seconds: Fraction) -> str:
    if seconds.denominator == 1 and seconds.numerator % 60 == 0:
        return f"{_number(seconds.numerator // 60, grouped=False)} mins"
    return f"{_number(seconds, grouped=False)} s"


# --- text -----------------------------------------------------------------------------------


def _text_titles(t: Thresholds) -> dict[Tier, str]:
    within = f"{_number(t.tier_min)} to {_number(t.tier_max)} classifications in a day"
    rate = _number(t.tier_one_rate)
    return {
        Tier.TIER_ONE: f"Tier I: {within}, over {rate} a second",
        Tier.DUTY_OF_CARE: f"Duty of care: {within}, at most {rate} a second, "
        f"over {_number(t.duty_of_care_seconds)} s of session time",
        Tier.TIER_TWO: f"Tier II: {_number(t.tier_two_min)} or more classifications in a day",
    }


def _text_entries(entries: Sequence[tuple[int, Sequence[object]]]) -> list[str]:
    if not entries:
        return ["  none"]
    return [
        f"  project {project_id}: {', '.join(str(item) for item in items)}"
        for project_id, items in entries
    ]


def _volunteer_entries(lists: Iterable[FlaggedVolunteers]) -> list[tuple[int, Sequence[object]]]:
    return [(item.project_id, item.user_ids) for item in lists]


def report_text(report: SpuriousReport, thresholds: Thresholds) -> str:
    """The report for a person at a terminal."""
    t = thresholds
    window = report.window
    titles = _text_titles(t)
    lines = [
        f"Potential spurious classifications, UTC days {window.start} to {window.end}",
        "",
        f"High classified projects: two days over {_number(t.project_min_count)} "
        f"classifications, changing by at least {_number(t.project_min_rate)} a day "
        f"and {_number(t.project_min_difference)}%; the day with more is listed",
        *_text_entries([(item.project_id, item.dates) for item in report.projects]),
    ]
    sections = [
        ("Volunteers on the flagged projects' flagged days", report.flagged),
        ("Volunteers on any project and day of the window", report.any_project),
    ]
    for heading, tiers in sections:
        lines += ["", f"{heading}:"]
        for tier in Tier:
            lines += [titles[tier], *_text_entries(_volunteer_entries(tiers.of(tier)))]
    return "\n".join(lines) + "\n"


# --- Slack ----------------------------------------------------------------------------------

# Slack refuses a message with more blocks, or a section with a longer text.
SLACK_MAX_BLOCKS: Final = 50
SLACK_MAX_SECTION: Final = 3000


def _escape(text: str) -> str:
    """Slack's mrkdwn reads ``&``, ``<`` and ``>`` as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _title(text: str) -> dict[str, Any]:
    return _section(f"*{_escape(text)}*")


def _slack_titles(t: Thresholds) -> dict[Tier, str]:
    within = (
        f"≥ {_number(t.tier_min, grouped=False)} & ≤ {_number(t.tier_max, grouped=False)} "
        "classifications in a day"
    )
    rate = _number(t.tier_one_rate, grouped=False)
    return {
        Tier.TIER_ONE: f"Flagged Users Tier I ({within} & rate > {rate} classification/sec)",
        Tier.DUTY_OF_CARE: f"Duty of Care Tier ({within} & rate ≤ {rate} classification/sec "
        f"& session_time > {_duration(t.duty_of_care_seconds)})",
        Tier.TIER_TWO: f"Flagged Users Tier II (≥ {_number(t.tier_two_min, grouped=False)} "
        "classifications/day)",
    }


def _entry_lines(link: str, items: Sequence[object]) -> list[str]:
    """``<link|Project N>: a, b, c``, continued on further lines if it would be too long."""
    lines: list[str] = []
    current = f"{link}:"
    separator = " "
    for item in items:
        piece = f"{separator}{item}"
        if len(current) + len(piece) > SLACK_MAX_SECTION and separator != " ":
            lines.append(current)
            current, piece = f"{link} (continued):", f" {item}"
        current += piece
        separator = ", "
    lines.append(current)
    return lines


def _list_sections(link_base: str, entries: Sequence[tuple[int, Sequence[object]]]) -> list[Any]:
    """The entries packed into as few sections as fit, or one saying None."""
    if not entries:
        return [_section("None")]
    lines = [
        line
        for project_id, items in entries
        for line in _entry_lines(f"<{link_base}{project_id}|Project {project_id}>", items)
    ]
    sections: list[Any] = []
    current = ""
    for line in lines:
        if current and len(current) + 1 + len(line) > SLACK_MAX_SECTION:
            sections.append(_section(current))
            current = ""
        current = f"{current}\n{line}" if current else line
    sections.append(_section(current))
    return sections


def slack_message(
    report: SpuriousReport,
    thresholds: Thresholds,
    *,
    mention: str | None,
    project_link_base: str,
) -> dict[str, Any]:
    """The report as Block Kit ``{"blocks": [...]}``, in the original service's sections:
    the title, the high classified projects, tier I, duty of care, tier II; then the same
    tiers on any project. ``mention`` (Slack markup, such as ``<@U0123>``) leads the title."""
    t = thresholds
    window = report.window
    titles = _slack_titles(t)
    heading = "*Potential Spurious Classifications Report*"
    if mention and mention.strip():
        heading = f"{mention.strip()} {heading}"
    blocks: list[Any] = [
        _section(f"{heading}\nUTC days {window.start} to {window.end}"),
        {"type": "divider"},
        _title(
            f"High Classified Projects (two days > {_number(t.project_min_count, grouped=False)} "
            f"classifications, changing by ≥ {_number(t.project_min_rate, grouped=False)}/day "
            f"& ≥ {_number(t.project_min_difference, grouped=False)}%)"
        ),
        *_list_sections(project_link_base, [(p.project_id, p.dates) for p in report.projects]),
    ]
    for tier in Tier:
        blocks.append(_title(titles[tier]))
        blocks += _list_sections(project_link_base, _volunteer_entries(report.flagged.of(tier)))
    blocks += [
        {"type": "divider"},
        _title("Any Project: the same tiers on every project and day of the window"),
    ]
    for tier in Tier:
        blocks.append(_title(titles[tier]))
        blocks += _list_sections(project_link_base, _volunteer_entries(report.any_project.of(tier)))
    if len(blocks) > SLACK_MAX_BLOCKS:
        left_out = len(blocks) - (SLACK_MAX_BLOCKS - 1)
        blocks = blocks[: SLACK_MAX_BLOCKS - 1]
        blocks.append(
            _section(
                f"_The report is longer than one Slack message: {left_out} more sections. "
                "`eras report spurious` prints all of it._"
            )
        )
    return {"blocks": blocks}


# --- posting --------------------------------------------------------------------------------


class WebhookFailed(Exception):
    """The webhook could not be reached, or refused the message. The message never holds the
    webhook's URL, which is a secret."""


_SLACK_ERROR = re.compile(r"[A-Za-z0-9_.:-]{1,80}")


def post_to_webhook(
    url: str, message: dict[str, Any], *, timeout_seconds: float = WEBHOOK_TIMEOUT_SECONDS
) -> None:
    """POST ``message`` as JSON; anything but a 2xx answer is a :class:`WebhookFailed`."""
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout_seconds)) as client:
            response = client.post(
                url,
                content=orjson.dumps(message),
                headers={"Content-Type": "application/json"},
            )
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        # Not str(error): some of them quote the URL.
        reason = type(error).__name__
        raise WebhookFailed(f"the Slack webhook could not be reached ({reason})") from None
    if not response.is_success:
        detail = f"{response.status_code} {response.reason_phrase}".strip()
        # Slack says why in one word (no_service, invalid_blocks, ...): worth showing.
        reason = response.text.strip()
        if _SLACK_ERROR.fullmatch(reason):
            detail += f": {reason}"
        raise WebhookFailed(f"the Slack webhook answered {detail}")

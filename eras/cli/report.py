"""``eras report spurious``: the spurious-classification report, printed and posted to Slack."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import date

import orjson
from sqlalchemy.exc import DBAPIError

from eras.config import Settings
from eras.domain.report import (
    EARLIEST_UNTIL,
    THRESHOLD_OPTIONS,
    InvalidThreshold,
    ThresholdOption,
    Thresholds,
    parse_threshold,
    thresholds_from,
)
from eras.services.report import (
    WebhookFailed,
    post_to_webhook,
    report_json,
    report_text,
    slack_message,
    spurious_report,
    today,
)
from eras.store.database import Database

PROGRAM = "eras report spurious"
FORMATS = ("text", "json", "slack")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(text: str) -> date:
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date, YYYY-MM-DD") from None
    if day < EARLIEST_UNTIL:
        raise argparse.ArgumentTypeError(f"must be {EARLIEST_UNTIL.isoformat()} or later")
    return day


def _threshold(option: ThresholdOption) -> Callable[[str], str]:
    """Checks the text at parsing time; :func:`thresholds_from` reads it."""

    def check(text: str) -> str:
        try:
            parse_threshold(option, text)
        except InvalidThreshold as error:
            raise argparse.ArgumentTypeError(error.expected) from None
        return text

    return check


def add_report_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="reports computed from the rollups")
    reports = report.add_subparsers(dest="report_command", required=True)
    spurious = reports.add_parser(
        "spurious",
        help="projects and volunteers with suspicious classification volumes in a week",
        description="The 7 UTC days before --until: projects whose daily count jumps, and "
        "volunteers classifying suspiciously much in a day (tier I, duty of care, tier II) on "
        "those projects' flagged days and on any project. Exit status: 0 done, 1 the report "
        "could not be posted, 2 a setting is missing or the database cannot be read.",
    )
    spurious.add_argument(
        "--until",
        type=_day,
        metavar="YYYY-MM-DD",
        help="the day after the window, itself excluded (default: today, UTC)",
    )
    spurious.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default) for a person, json, or slack (the message --post sends)",
    )
    spurious.add_argument(
        "--post",
        action="store_true",
        help="also post the report to the Slack webhook ERAS_SLACK_WEBHOOK_URL",
    )
    defaults = Thresholds()
    for option in THRESHOLD_OPTIONS:
        spurious.add_argument(
            "--" + option.name.replace("_", "-"),
            dest=option.name,
            type=_threshold(option),
            metavar="N",
            help=f"{option.help} (default {getattr(defaults, option.name)})",
        )
    spurious.set_defaults(handler=run_spurious)


def _fail(message: str, status: int) -> int:
    print(f"{PROGRAM}: {message}", file=sys.stderr)
    return status


def run_spurious(arguments: argparse.Namespace) -> int:
    settings = Settings()
    webhook = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else ""
    if arguments.post and not webhook.strip():
        return _fail("ERAS_SLACK_WEBHOOK_URL is not set: --post needs the webhook to post to", 2)
    thresholds = thresholds_from(
        {option.name: getattr(arguments, option.name) for option in THRESHOLD_OPTIONS}
    )
    database = Database(settings.database_url)
    try:
        report = spurious_report(database, arguments.until or today(), thresholds)
    except DBAPIError as error:
        reason = type(error.orig).__name__
        return _fail(
            f"the database could not be read ({reason}): check ERAS_DATABASE_URL, and that "
            "eras migrate has run",
            2,
        )
    finally:
        database.dispose()
    message = slack_message(
        report,
        thresholds,
        mention=settings.slack_mention,
        project_link_base=settings.project_link_base,
    )
    if arguments.format == "json":
        sys.stdout.write(report_json(report) + "\n")
    elif arguments.format == "slack":
        sys.stdout.write(orjson.dumps(message).decode() + "\n")
    else:
        sys.stdout.write(report_text(report, thresholds))
    sys.stdout.flush()
    if arguments.post:
        try:
            post_to_webhook(webhook.strip(), message)
        except WebhookFailed as error:
            return _fail(f"the report was not posted: {error}", 1)
        print(f"{PROGRAM}: posted the report to Slack", file=sys.stderr)
    return 0

"""The ``eras`` command: ``serve`` (the default), ``migrate``, ``rejected``, ``ingest``,
``rebuild-rollups``, ``verify``, ``report`` and ``demo``."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from eras.cli import loading
from eras.cli.report import add_report_commands
from eras.config import Settings
from eras.services.demo import DEMO_EVENTS, load_demo
from eras.services.loading.inputs import Format
from eras.services.loading.loader import DEFAULT_BATCH_SIZE, LoadOptions, default_rejects_path
from eras.services.replay import rejected_events, replay_rejections
from eras.store.database import Database
from eras.store.migrate import current_revision, head_revision, migrate

if TYPE_CHECKING:
    from fastapi import FastAPI


def serving_app() -> FastAPI:
    """The application as each ``eras serve`` worker builds it.

    Every ingest batch allocates tens of thousands of containers that live as long as the
    request, so the collector's full passes come every few batches; each one would walk the
    hundred thousand objects left from imports and start-up, tens of milliseconds with the GIL
    held. Frozen, those objects are skipped and a full pass walks only what requests hold.
    """
    from eras.app import create_app

    app = create_app()
    gc.freeze()
    return app


def _serve(arguments: argparse.Namespace) -> int:
    from eras.cli.serving import serve

    if arguments.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Workers are separate processes: they share their metrics through files here, so
        # that /metrics on any worker reports all of them.
        directory = tempfile.mkdtemp(prefix="eras-metrics-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return serve(arguments.host, arguments.port, arguments.workers, arguments.log_level)


def _migrate(_arguments: argparse.Namespace) -> int:
    database = _database()
    try:
        migrate(database)
        print(f"schema at revision {current_revision(database)} (head {head_revision()})")
    finally:
        database.dispose()
    return 0


def _database() -> Database:
    return Database(Settings().database_url)


def _list_rejected(arguments: argparse.Namespace) -> int:
    """One JSON object per line, so the output can be filtered with jq or grep."""
    database = _database()
    try:
        rejections = rejected_events(database, limit=arguments.limit)
    finally:
        database.dispose()
    for rejection in rejections:
        line = {
            "id": rejection.id,
            "received_at": rejection.received_at.isoformat(),
            "reason": rejection.reason,
            "event": orjson.loads(rejection.payload),
        }
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
    return 0


def _replay_rejected(_arguments: argparse.Namespace) -> int:
    database = _database()
    try:
        summary = replay_rejections(database)
    finally:
        database.dispose()
    replayed = ", ".join(
        f"{name} {value}"
        for name, value in summary.replayed.as_dict().items()
        if name != "rejected"
    )
    print(f"replayed: {replayed}; still rejected: {summary.still_rejected}")
    return 1 if summary.still_rejected else 0


def _ingest(arguments: argparse.Namespace) -> int:
    options = LoadOptions(
        input_format=Format(arguments.format) if arguments.format else None,
        project_id=arguments.project_id,
        batch_size=arguments.batch_size,
        rejects_path=arguments.rejects or default_rejects_path(),
    )
    settings = Settings()
    database = Database(settings.database_url, bulk=True)
    try:
        return loading.ingest(
            database,
            arguments.paths,
            options,
            show_progress=not arguments.no_progress,
            migrate_schema=settings.auto_migrate,
        )
    finally:
        database.dispose()


def _rebuild_rollups(arguments: argparse.Namespace) -> int:
    database = _database()
    try:
        return loading.rebuild(database, show_progress=not arguments.no_progress)
    finally:
        database.dispose()


def _verify(arguments: argparse.Namespace) -> int:
    database = _database()
    try:
        return loading.verify(
            database, limit=arguments.limit, show_progress=not arguments.no_progress
        )
    finally:
        database.dispose()


def _demo(arguments: argparse.Namespace) -> int:
    settings = Settings()
    database = Database(settings.database_url)
    try:
        if settings.auto_migrate:
            migrate(database)
        began = time.monotonic()
        done = load_demo(
            database, now=datetime.now(UTC).replace(tzinfo=None), events=arguments.events
        )
    finally:
        database.dispose()
    if done.summary is None:
        print("eras demo: the database already holds events; nothing loaded")
        return 0
    print(
        f"demo events from {done.start:%Y-%m-%d} to {done.end:%Y-%m-%d} (UTC): "
        f"{loading.counts(done.summary)} in {time.monotonic() - began:.1f} s"
    )
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _add_bulk_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingest = commands.add_parser(
        "ingest",
        help="load files of events, Panoptes exports or the original service's tables",
        description="Load files with the same rules as POST /kinesis; loading twice changes "
        "nothing. .gz and .zip files are read directly. Exit status: 0 all rows loaded, "
        "1 some rows rejected (see the rejects file), 2 fatal error.",
    )
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument(
        "--format",
        choices=[value.value for value in Format],
        help="the format of every PATH (default: recognised from each file's first line)",
    )
    ingest.add_argument(
        "--project-id",
        type=_positive_int,
        metavar="N",
        help="the project of panoptes-csv exports, which have no project column",
    )
    ingest.add_argument(
        "--rejects",
        type=Path,
        metavar="FILE",
        help="where to write rejected rows (default: eras-ingest-rejects-<time>.ndjson)",
    )
    ingest.add_argument(
        "--batch-size",
        # Its former name, still accepted.
        "--chunk-size",
        dest="batch_size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="ROWS",
        help=f"rows stored per transaction (default {DEFAULT_BATCH_SIZE:,})",
    )
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.set_defaults(handler=_ingest)

    rebuild = commands.add_parser(
        "rebuild-rollups",
        help="recompute every rollup table from the raw tables",
        description="Recompute every rollup in one transaction. Queries keep answering the "
        "old totals until it commits; ingest waits for it.",
    )
    rebuild.add_argument("--no-progress", action="store_true", help="no progress bar")
    rebuild.set_defaults(handler=_rebuild_rollups)

    verify = commands.add_parser(
        "verify",
        help="compare every rollup table with the raw tables",
        description="Print every rollup row that differs from the raw tables, up to --limit, "
        "and how many there are. Exit status 1 if any differs.",
    )
    verify.add_argument("--limit", type=_positive_int, default=100, help="default 100")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.set_defaults(handler=_verify)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eras",
        description="Zooniverse volunteer statistics. Configured by ERAS_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the HTTP service (default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(handler=_serve)

    migrate_command = commands.add_parser("migrate", help="bring the schema up to date and exit")
    migrate_command.set_defaults(handler=_migrate)

    rejected = commands.add_parser("rejected", help="inspect or replay events ingest set aside")
    rejected_commands = rejected.add_subparsers(dest="rejected_command", required=True)
    list_command = rejected_commands.add_parser("list", help="print rejected events as JSON lines")
    list_command.add_argument("--limit", type=int, default=100)
    list_command.set_defaults(handler=_list_rejected)
    replay = rejected_commands.add_parser(
        "replay", help="ingest the rejected events that parse now; keep the rest"
    )
    replay.set_defaults(handler=_replay_rejected)

    _add_bulk_commands(commands)
    add_report_commands(commands)

    demo = commands.add_parser(
        "demo",
        help="fill an empty database with a generated sample, for a first look at the dashboard",
        description="Store a generated, Zooniverse-shaped sample of events of the last two "
        "years, ending now, in one transaction. A database that already holds events is left "
        "as it is, so running it again changes nothing.",
    )
    demo.add_argument(
        "--events",
        type=_positive_int,
        default=DEMO_EVENTS,
        metavar="N",
        help=f"how many events (default {DEMO_EVENTS:,})",
    )
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help")):
        arguments.insert(0, "serve")
    parsed = parser.parse_args(arguments)
    return int(parsed.handler(parsed))


if __name__ == "__main__":
    sys.exit(main())

"""The ``eras`` command: ``serve`` (the default), ``migrate`` and ``rejected``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial

import orjson

from eras.config import Settings
from eras.ingest.service import IngestSummary, replay_rejections
from eras.store.database import Database
from eras.store.ingest import list_rejections
from eras.store.migrate import current_revision, head_revision, migrate


def _serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        "eras.app:create_app",
        factory=True,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        log_level=arguments.log_level,
        access_log=False,
    )
    return 0


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
        with database.read() as connection:
            rejections = list_rejections(connection, limit=arguments.limit)
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
    total = IngestSummary()
    still_rejected = 0
    after_id: int | None = 0
    try:
        while after_id is not None:
            summary, after_id = database.run_write(
                partial(replay_rejections, dialect=database.dialect, after_id=after_id)
            )
            total.add(summary.replayed)
            still_rejected += summary.still_rejected
    finally:
        database.dispose()
    counts = ", ".join(
        f"{name} {value}" for name, value in total.as_dict().items() if name != "rejected"
    )
    print(f"replayed: {counts}; still rejected: {still_rejected}")
    return 1 if still_rejected else 0


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

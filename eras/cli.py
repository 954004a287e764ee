"""The ``eras`` command: ``serve`` (the default) and ``migrate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eras.config import Settings
from eras.store.database import Database
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
    database = Database(Settings().database_url)
    try:
        migrate(database)
        print(f"schema at revision {current_revision(database)} (head {head_revision()})")
    finally:
        database.dispose()
    return 0


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

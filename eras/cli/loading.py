"""What ``eras ingest``, ``eras rebuild-rollups`` and ``eras verify`` print.

Results go to standard output, progress bars and errors to standard error. Exit statuses:
0 success, 1 some rows rejected (ingest) or some rollup rows differ (verify), 2 a fatal error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TextIO

from sqlalchemy.exc import SQLAlchemyError

from eras.cli.progress import LoadProgress, StepProgress
from eras.domain.summary import IngestSummary
from eras.services import rollups
from eras.services.loading.loader import (
    LoadError,
    LoadOptions,
    LoadReport,
    load,
    open_inputs,
    parsers,
)
from eras.store.database import Database
from eras.store.migrate import SchemaOutOfDate, ensure_current, migrate
from eras.store.rollups import ROLLUP_NAMES

OK: Final = 0
PARTIAL: Final = 1
FATAL: Final = 2


def counts(summary: IngestSummary) -> str:
    return ", ".join(f"{name} {value:,}" for name, value in summary.as_dict().items())


def _fail(command: str, message: str, err: TextIO) -> int:
    err.write(f"eras {command}: error: {message}\n")
    return FATAL


def ingest(
    database: Database,
    paths: Sequence[Path],
    options: LoadOptions,
    *,
    show_progress: bool,
    migrate_schema: bool = True,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Load ``paths``; with ``migrate_schema`` (ERAS_AUTO_MIGRATE), an empty or older
    database is brought up to date first, as the service does when it starts."""
    try:
        # Every file's format is checked, and --project-id demanded, before any row is read.
        files = open_inputs(paths, options)
        if migrate_schema:
            migrate(database)
        else:
            ensure_current(database)
        # Parser processes first: they are forked before the progress bar starts its thread.
        with (
            parsers(files, options) as pool,
            LoadProgress(enabled=show_progress) as progress,
        ):
            report = load(database, files, options, progress, pool=pool)
    except (LoadError, SchemaOutOfDate) as error:
        return _fail("ingest", str(error), err)
    except SQLAlchemyError as error:
        return _fail("ingest", f"database error: {error}", err)
    except OSError as error:  # e.g. the rejects file cannot be written
        return _fail("ingest", str(error), err)
    _print_report(report, out)
    return PARTIAL if report.total.rejected else OK


def _print_report(report: LoadReport, out: TextIO) -> None:
    for source in report.sources:
        kind = source.kind or "empty"
        out.write(f"{source.name} ({kind}): {counts(source.summary)}\n")
    out.write(f"total: {counts(report.total)}\n")
    if report.analyzed:
        out.write(f"refreshed the planner's statistics of {len(report.analyzed)} tables\n")
    if report.rejects_path is not None:
        out.write(f"rejected rows written to {report.rejects_path.resolve()}\n")


def rebuild(database: Database, *, show_progress: bool, out: TextIO = sys.stdout) -> int:
    """Recompute every rollup in one transaction; readers see old or new totals, never a mix."""
    with StepProgress("rebuilding", len(ROLLUP_NAMES), enabled=show_progress) as progress:
        rows = rollups.rebuild(database, on_rollup=lambda name, _rows: progress.step(name))
    for name in ROLLUP_NAMES:
        out.write(f"{name}: {rows[name]:,} rows\n")
    out.write(f"rebuilt {len(rows)} rollups from the raw tables\n")
    return OK


def verify(database: Database, *, limit: int, show_progress: bool, out: TextIO = sys.stdout) -> int:
    """Print each rollup row that differs from the raw tables (up to ``limit``), and a count."""
    differences = 0
    tables: set[str] = set()
    with StepProgress("verifying", len(ROLLUP_NAMES), enabled=show_progress) as progress:
        for difference in rollups.differences(database, on_rollup=progress.step):
            differences += 1
            tables.add(difference.rollup)
            if differences <= limit:
                out.write(difference.describe() + "\n")
    if not differences:
        out.write(f"all {len(ROLLUP_NAMES)} rollups match the raw tables\n")
        return OK
    if differences > limit:
        out.write(f"... {differences - limit:,} more not shown\n")
    out.write(f"{differences:,} rollup rows differ from the raw tables, in {len(tables)} rollups\n")
    return PARTIAL

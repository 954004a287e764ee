"""Time ``eras ingest`` on synthetic classification events, on SQLite and PostgreSQL.

    .venv/bin/python bench/bulk_load.py --events 200000
    .venv/bin/python bench/bulk_load.py --events 100000,400000 --formats ndjson

Generates N deterministic events (``--seed``) into a temporary directory, as ndjson stream
events and as the original service's ``eras-csv`` tables, loads each into a fresh database with
``eras ingest`` run as a separate process, and prints events per second and the peak
resident memory of the loader and of its parser processes. Prints numbers only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.processes import children, status_mib
from eras.store.backend import driver_url
from eras.store.database import Database
from eras.store.migrate import migrate

ERAS = Path(sys.executable).with_name("eras")
START = datetime(2022, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    classification_id: int
    created_at: datetime
    started_at: datetime
    finished_at: datetime
    project_id: int
    workflow_id: int
    user_id: int | None
    user_group_ids: list[int] | None


def synthetic_events(count: int, seed: int, *, per_day: int = 10_000) -> Iterator[Event]:
    """Classifications made in sittings, ``per_day`` of them a day.

    A sitting is one volunteer (anonymous one time in five) classifying a geometric number of
    subjects (15 on average, 20 to 60 seconds each) in one workflow of one of 50 projects.
    Activity follows a heavy-tailed law over 50,000 volunteers, and one logged-in volunteer in
    ten classifies for one or two of 2,000 groups, as real volunteers do.
    """
    rng = random.Random(seed)
    day_seconds = 86_400 / per_day
    produced = 0
    clock = START
    while produced < count:
        anonymous = rng.random() < 0.2
        user = None if anonymous else min(int(rng.paretovariate(1.1)), 50_000) * 7919 % 50_000
        workflow = rng.randint(1, 400)
        groups = None
        if user is not None and user % 10 == 0:
            groups = sorted({1 + user % 2_000, 1 + (user * 31) % 2_000})[: 1 + user % 2]
        finished = clock
        for _ in range(min(1 + int(rng.expovariate(1 / 14)), count - produced)):
            started = finished
            finished = started + timedelta(milliseconds=rng.randint(20_000, 60_000))
            yield Event(
                classification_id=10_000_000 + produced,
                created_at=finished,
                started_at=started,
                finished_at=finished,
                project_id=1 + workflow % 50,
                workflow_id=workflow,
                user_id=user,
                user_group_ids=groups,
            )
            produced += 1
            clock += timedelta(seconds=day_seconds)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stream_event(event: Event) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "source": "api",
        "started_at": _iso(event.started_at),
        "finished_at": _iso(event.finished_at),
        "user_language": "en",
        "subject_selection_state": {"already_seen": False, "retired": False},
    }
    if event.user_group_ids is not None:
        metadata["user_group_ids"] = event.user_group_ids
    return {
        "source": "panoptes",
        "type": "classification",
        "version": "1.0.0",
        "timestamp": _iso(event.created_at),
        "data": {
            "id": str(event.classification_id),
            "created_at": _iso(event.created_at),
            "updated_at": _iso(event.created_at),
            "annotations": [{"task": "T0", "value": [{"x": 12.5, "y": 40.25, "tool": 0}]}],
            "metadata": metadata,
            "links": {
                "project": str(event.project_id),
                "workflow": str(event.workflow_id),
                "user": None if event.user_id is None else str(event.user_id),
                "subjects": ["104961209"],
            },
        },
        "linked": {},
    }


def write_ndjson(path: Path, count: int, seed: int) -> None:
    with path.open("wb") as out:
        for event in synthetic_events(count, seed):
            out.write(orjson.dumps(_stream_event(event), option=orjson.OPT_APPEND_NEWLINE))


def _dump_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def write_eras_csv(directory: Path, count: int, seed: int) -> list[Path]:
    """The original's classification_events and classification_user_groups tables."""
    events_path = directory / "classification_events.csv"
    groups_path = directory / "classification_user_groups.csv"
    with (
        events_path.open("w", newline="") as events_file,
        groups_path.open("w", newline="") as groups_file,
    ):
        events, groups = csv.writer(events_file), csv.writer(groups_file)
        events.writerow(
            [
                "classification_id", "event_time", "classification_updated_at", "started_at",
                "finished_at", "project_id", "workflow_id", "user_id", "user_group_ids",
                "session_time", "created_at", "updated_at",
            ]
        )  # fmt: skip
        groups.writerow(
            [
                "classification_id", "event_time", "user_group_id", "session_time",
                "project_id", "user_id", "workflow_id", "created_at", "updated_at",
            ]
        )  # fmt: skip
        for event in synthetic_events(count, seed):
            created = _dump_time(event.created_at)
            session = (event.finished_at - event.started_at).total_seconds()
            ids = event.user_group_ids
            events.writerow(
                [
                    event.classification_id, created, created, _dump_time(event.started_at),
                    created, event.project_id, event.workflow_id, event.user_id or "",
                    "" if ids is None else "{" + ",".join(map(str, ids)) + "}",
                    session, created, created,
                ]
            )  # fmt: skip
            if event.user_id is not None:
                for group in sorted(set(ids or ())):
                    groups.writerow(
                        [
                            event.classification_id, created, group, session,
                            event.project_id, event.user_id, event.workflow_id, created,
                            created,
                        ]
                    )  # fmt: skip
    return [events_path, groups_path]


class Databases:
    """Fresh, migrated databases: SQLite files in the work directory, PostgreSQL databases
    on the server at ``postgres_url``, dropped at the end."""

    def __init__(self, directory: Path, postgres_url: str) -> None:
        self._directory = directory
        self._postgres_url = postgres_url
        self._created: list[str] = []

    def create(self, kind: str) -> str:
        if kind == "sqlite":
            url = f"sqlite:///{self._directory / (uuid.uuid4().hex + '.db')}"
        else:
            name = f"eras_bench_{uuid.uuid4().hex[:10]}"
            with self._admin() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            self._created.append(name)
            url = make_url(self._postgres_url).set(database=name).render_as_string(False)
        database = Database(url)
        migrate(database)
        database.dispose()
        return url

    def _admin(self) -> Any:
        engine = create_engine(driver_url(self._postgres_url), isolation_level="AUTOCOMMIT")
        return engine.connect()

    def drop_all(self) -> None:
        for name in self._created:
            with self._admin() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass(frozen=True)
class Result:
    seconds: float
    peak_rss_mib: float  # the loading process
    worker_peak_rss_mib: float  # the largest of its parser processes, 0 without any
    returncode: int


def run_ingest(database_url: str, paths: list[Path]) -> Result:
    """``eras ingest`` as its own process, its peak memory sampled while it runs."""
    environment = {**os.environ, "ERAS_DATABASE_URL": database_url}
    command = [str(ERAS), "ingest", "--no-progress", *map(str, paths)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    peaks: dict[int, float] = {}
    while process.poll() is None:
        for pid in (process.pid, *children(process.pid)):
            peak = status_mib(pid, "VmHWM")
            if peak is not None:
                peaks[pid] = max(peaks.get(pid, 0.0), peak)
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    own = peaks.pop(process.pid, 0.0)
    return Result(elapsed, own, max(peaks.values(), default=0.0), process.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="200000", help="comma-separated event counts")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--formats", default="ndjson,eras-csv")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "ERAS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    arguments = parser.parse_args()
    counts = [int(value) for value in arguments.events.split(",")]
    formats = arguments.formats.split(",")
    kinds = arguments.databases.split(",")

    header = ("database", "format", "events", "seconds", "events/s", "peak RSS", "parsers")
    print("{:<11} {:<9} {:>9} {:>8} {:>9} {:>9} {:>9}".format(*header))
    with tempfile.TemporaryDirectory(prefix="eras-bench-") as work:
        directory = Path(work)
        databases = Databases(directory, arguments.postgres_url)
        try:
            for count in counts:
                inputs: dict[str, list[Path]] = {}
                if "ndjson" in formats:
                    inputs["ndjson"] = [directory / f"events-{count}.ndjson"]
                    write_ndjson(inputs["ndjson"][0], count, arguments.seed)
                if "eras-csv" in formats:
                    inputs["eras-csv"] = write_eras_csv(directory, count, arguments.seed)
                for kind in kinds:
                    for name, paths in inputs.items():
                        result = run_ingest(databases.create(kind), paths)
                        status = "" if result.returncode == 0 else f"  (exit {result.returncode})"
                        print(
                            f"{kind:<11} {name:<9} {count:>9,} {result.seconds:>8.1f} "
                            f"{count / result.seconds:>9,.0f} {result.peak_rss_mib:>6.0f} MiB"
                            f" {result.worker_peak_rss_mib:>5.0f} MiB"
                            f"{status}",
                            flush=True,
                        )
        finally:
            databases.drop_all()


if __name__ == "__main__":
    main()

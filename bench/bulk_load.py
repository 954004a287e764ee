"""Time ``eras ingest`` on synthetic events, on SQLite and PostgreSQL, against a peer and a floor.

    .venv/bin/python -m bench.bulk_load --events 2000000 --formats ndjson
    .venv/bin/python -m bench.bulk_load --events 2000000 --against /path/to/other/venv/bin/eras

Generates N deterministic events (``--seed``) into a temporary directory: ndjson of
``bench.generate`` (the full benchmark's Zooniverse-shaped 3 KB events) and the original
service's ``eras-csv`` tables (smaller synthetic classifications). Each is loaded into a fresh
database by ``eras ingest`` run as its own process, and the command's wall time (process start
included), events per second and the peak resident memory of the loader and of its parser
processes are printed.

``--against`` names another ``eras`` executable (an earlier release, say): it loads the same
files into fresh databases in the same run, each round alternating the two, and its rate is
printed beside this one with the ratio. The floor is what the database alone takes to receive
the same bytes: every line of the ndjson file copied into an unindexed one-column table
(``COPY`` on PostgreSQL, one ``executemany`` on SQLite), no parsing, no keys, no rollups.
Prints numbers only; it asserts nothing.
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


def run_ingest(database_url: str, paths: list[Path], eras: Path = ERAS) -> Result:
    """``eras ingest`` as its own process, its peak memory sampled while it runs."""
    environment = {**os.environ, "ERAS_DATABASE_URL": database_url}
    command = [str(eras), "ingest", "--no-progress", *map(str, paths)]
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


def floor_seconds(database_url: str, path: Path) -> float:
    """Put every line of ``path`` into an unindexed one-column table: the database's floor.

    PostgreSQL receives the file's bytes as they are, in blocks, through ``COPY`` (delimiter and
    quote characters that never occur in JSON, so each line is one value); SQLite takes each
    line as it is read, in one ``executemany``. Nothing is parsed, keyed or counted.
    """
    started = time.perf_counter()
    engine = create_engine(driver_url(database_url))
    with engine.begin() as connection, path.open("rb") as lines:
        connection.exec_driver_sql("CREATE TABLE eras_bench_floor (line TEXT)")
        driver = connection.connection.driver_connection
        assert driver is not None
        if database_url.startswith("postgresql"):
            statement = (
                "COPY eras_bench_floor (line) FROM STDIN "
                "(FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
            )
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                while block := lines.read(1 << 20):
                    copy.write(block)
        else:
            driver.cursor().executemany(
                "INSERT INTO eras_bench_floor VALUES (?)", ((line,) for line in lines)
            )
    engine.dispose()
    return time.perf_counter() - started


def write_generated(path: Path, count: int, seed: int) -> None:
    from bench.generate import Generator

    with path.open("wb") as out:
        for line in Generator(count, seed).lines():
            out.write(line + b"\n")


def _line(kind: str, name: str, count: int, build: str, seconds: float, rest: str = "") -> str:
    return (
        f"{kind:<11} {name:<9} {count:>10,} {build:<5} {seconds:>8.1f} {count / seconds:>9,.0f}"
        + rest
    )


def compare(
    databases: Databases,
    kind: str,
    name: str,
    paths: list[Path],
    count: int,
    builds: dict[str, Path],
    rounds: int,
) -> None:
    """Load ``paths`` with each build, alternating, ``rounds`` times; print the medians, the
    floor and the ratios."""
    results: dict[str, list[Result]] = {build: [] for build in builds}
    for _ in range(rounds):
        for build, eras in builds.items():
            results[build].append(run_ingest(databases.create(kind), paths, eras))
    rates: dict[str, float] = {}
    for build, runs in results.items():
        result = sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]
        rates[build] = count / result.seconds
        memory = f" {result.peak_rss_mib:>6.0f} MiB {result.worker_peak_rss_mib:>5.0f} MiB"
        status = "" if result.returncode == 0 else f" (exit {result.returncode})"
        print(_line(kind, name, count, build, result.seconds, memory + status), flush=True)
    if name != "ndjson":
        return
    seconds = floor_seconds(databases.create(kind), paths[0])
    print(_line(kind, name, count, "floor", seconds), flush=True)
    ratios = ", ".join(
        f"{rates['this'] / rate:.2f}x the {build}"
        for build, rate in rates.items()
        if build != "this"
    )
    print(
        f"{'':<11} this build: {ratios + '; ' if ratios else ''}"
        f"{rates['this'] * seconds / count:.2f}x the floor",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="200000", help="comma-separated event counts")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--formats", default="ndjson,eras-csv")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=1, help="loads per build; the median")
    parser.add_argument("--against", type=Path, help="another eras executable to compare with")
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
    builds = {"this": ERAS, **({"peer": arguments.against} if arguments.against else {})}

    header = ("database", "format", "events", "build", "seconds", "events/s", "peak RSS", "parsers")
    print("{:<11} {:<9} {:>10} {:<5} {:>8} {:>9} {:>9} {:>9}".format(*header))
    with tempfile.TemporaryDirectory(prefix="eras-bench-") as work:
        directory = Path(work)
        databases = Databases(directory, arguments.postgres_url)
        try:
            for count in counts:
                inputs: dict[str, list[Path]] = {}
                if "ndjson" in formats:
                    inputs["ndjson"] = [directory / f"events-{count}.ndjson"]
                    write_generated(inputs["ndjson"][0], count, arguments.seed)
                if "eras-csv" in formats:
                    inputs["eras-csv"] = write_eras_csv(directory, count, arguments.seed)
                for kind in kinds:
                    for name, paths in inputs.items():
                        compare(databases, kind, name, paths, count, builds, arguments.rounds)
        finally:
            databases.drop_all()


if __name__ == "__main__":
    main()

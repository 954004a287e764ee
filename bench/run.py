"""The eras benchmark: every scenario, on SQLite and PostgreSQL, at two data sizes.

    .venv/bin/python -m bench.run                      # 2M and 20M events; about 90 minutes
    .venv/bin/python -m bench.run --sizes 20000 --seconds 1 --requests 50   # a smoke run

For each size and database it:

1. **bulk-loads** all but the last ``--tail`` events of a synthetic run (``bench.generate``)
   with ``eras ingest``, in parts of ``--part-size`` events written to disk one at a time
   (20 million 3 KB events would not fit), timing the loads and their peak RSS;
2. starts ``eras serve --workers N`` on that database, beside a loopback stand-in for
   Panoptes, and **posts the tail** to ``POST /kinesis`` in batches of 500 from 4 senders;
3. checks the service's answers against the generator's own counts;
4. times the **front end's calls** at concurrency 1 (p50/p95/p99) and 32 (requests/s, p99),
   one call at a time and then all of them mixed, with ``GET /`` as the floor of the web
   stack, while sampling each worker's RSS;
5. computes the same numbers by **aggregating the raw event tables** directly, to show what
   the rollups buy.

It prints a table per scenario and writes them, with the machine and the database versions,
between the result markers of ``docs/benchmarks.md``. It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Engine

from bench import loadgen
from bench.bulk_load import Databases, run_ingest
from bench.generate import LARGEST_PROJECT_WORKFLOWS, Generator, first_workflow_id
from bench.generate import project_id as generated_project_id
from bench.processes import children, status_mib
from eras.domain.rollups import ROLLUPS
from eras.store.backend import driver_url
from tests.fake_panoptes import FakePanoptes

ROOT = Path(__file__).resolve().parent.parent
ERAS = Path(sys.executable).with_name("eras")
KINESIS_USER, KINESIS_PASSWORD = "bench", "bench-password"
BATCH = 500
SENDERS = 4
HIGH_CONCURRENCY = 32
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"
FLOOR = "GET / (floor)"
RAW_TABLES = frozenset({"classification_events", "classification_user_groups", "comment_events"})


# --- the server ----------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    peak_rss_mib: dict[int, float] = field(default_factory=dict)


def _is_helper(pid: int) -> bool:
    """multiprocessing's resource tracker, which uvicorn's supervisor also starts."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def _sample_rss(server: Server, stop: threading.Event) -> None:
    """The peak resident memory of each worker (the serving process itself with one worker)."""
    while not stop.wait(0.25):
        pids = [pid for pid in children(server.process.pid) if not _is_helper(pid)]
        for pid in pids or [server.process.pid]:
            rss = status_mib(pid, "VmRSS")
            if rss is not None:
                server.peak_rss_mib[pid] = max(server.peak_rss_mib.get(pid, 0.0), rss)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve(
    database_url: str, workers: int, public_pem: str, panoptes: FakePanoptes
) -> Iterator[Server]:
    port = _free_port()
    environment = {
        **os.environ,
        "ERAS_DATABASE_URL": database_url,
        "ERAS_KINESIS_USERNAME": KINESIS_USER,
        "ERAS_KINESIS_PASSWORD": KINESIS_PASSWORD,
        "ERAS_PANOPTES_PUBLIC_KEY": public_pem,
        "ERAS_PANOPTES_URL": panoptes.url,
        "ERAS_PANOPTES_CLIENT_ID": panoptes.state.client_id,
        "ERAS_PANOPTES_CLIENT_SECRET": panoptes.state.client_secret,
        # A group's settings are looked up once, then served from the cache, as in production.
        "ERAS_GROUP_CACHE_SECONDS": "3600",
    }
    command = [str(ERAS), "serve", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(
        [*command, "--log-level", "warning"],
        env=environment,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", process)
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(server, stop), daemon=True)
    try:
        for _ in range(600):
            try:
                if httpx.get(server.url + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise SystemExit("eras serve did not start")
        sampler.start()
        yield server
    finally:
        stop.set()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


@contextmanager
def serve_peer(app: str, workers: int, database_url: str) -> Iterator[str]:
    """``bench.reference:app`` or ``:floor`` under uvicorn, the way the original runs."""
    port = _free_port()
    environment = {**os.environ, "REFERENCE_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(
        command, env=environment, cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"{app} did not start")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def answers(url: str, calls: list[Call]) -> dict[str, Any]:
    """Each call's JSON answer, to check that the peer answers the same."""
    with httpx.Client(base_url=url, timeout=120) as http:
        return {
            call.name: http.get(call.path, headers=call.headers).json()
            for call in calls
            if call.name != FLOOR
        }


def measure_floor(url: str, requests: int, seconds: float) -> dict[str, float]:
    request = loadgen.get(url, "/", FLOOR)
    single = asyncio.run(loadgen.run(url, [request], count=requests, seconds=60, warmup=20))
    loaded = asyncio.run(loadgen.run(url, [request], concurrency=HIGH_CONCURRENCY, seconds=seconds))
    return {"p50": single[FLOOR].p50, "rps": loaded[FLOOR].rate}


# --- the data ------------------------------------------------------------------------------


@dataclass
class Loaded:
    bulk_events: int = 0
    bulk_seconds: float = 0.0
    bulk_peak_rss_mib: float = 0.0
    bulk_parser_peak_rss_mib: float = 0.0
    classifications: int = 0
    comments: int = 0
    tail: list[bytes] = field(default_factory=list)


def load_dataset(
    database_url: str, events: int, seed: int, tail: int, part_size: int, directory: Path
) -> Loaded:
    """Bulk-load all but the last ``tail`` events, a part at a time; keep the tail."""
    loaded = Loaded()
    lines = _counting(Generator(events, seed).lines(), loaded)
    remaining = events - tail
    part = directory / "part.ndjson"
    while remaining > 0:
        size = min(part_size, remaining)
        with part.open("wb", buffering=1 << 20) as out:
            out.writelines(islice(lines, size))
        result = run_ingest(database_url, [part])
        part.unlink()
        if result.returncode != 0:
            raise SystemExit(f"eras ingest failed with exit status {result.returncode}")
        loaded.bulk_events += size
        loaded.bulk_seconds += result.seconds
        loaded.bulk_peak_rss_mib = max(loaded.bulk_peak_rss_mib, result.peak_rss_mib)
        loaded.bulk_parser_peak_rss_mib = max(
            loaded.bulk_parser_peak_rss_mib, result.worker_peak_rss_mib
        )
        remaining -= size
    loaded.tail = list(lines)
    return loaded


def settle(database_url: str, kind: str) -> None:
    """What an operator runs after a large load on PostgreSQL: VACUUM ANALYZE.

    Without it, autovacuum wakes up for the freshly loaded tables while the queries are being
    measured, and competes with them for the same 2 cores.
    """
    if kind != "postgresql":
        return
    engine = create_engine(driver_url(database_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("VACUUM (ANALYZE)"))
    finally:
        engine.dispose()


def _counting(lines: Iterator[bytes], loaded: Loaded) -> Iterator[bytes]:
    for line in lines:
        if line.startswith(b'{"source":"panoptes"'):
            loaded.classifications += 1
        else:
            loaded.comments += 1
        yield line


def post_tail(url: str, tail: list[bytes]) -> dict[str, float]:
    """``POST /kinesis`` of the tail in batches of 500 from 4 senders, each batch once."""
    auth = loadgen.basic(KINESIS_USER, KINESIS_PASSWORD)
    requests = [
        loadgen.post(
            url,
            "/kinesis",
            "POST /kinesis",
            b'{"payload":[' + b",".join(line.rstrip(b"\n") for line in tail[i : i + BATCH]) + b"]}",
            auth,
        )
        for i in range(0, len(tail), BATCH)
    ]
    measured = asyncio.run(
        loadgen.run(url, requests, concurrency=SENDERS, seconds=3600, once=True)
    )["POST /kinesis"]
    return {
        "events": len(tail),
        "events_per_second": len(tail) / measured.seconds,
        "p50_batch_ms": measured.p50,
        "p99_batch_ms": measured.percentile(0.99),
    }


# --- what to ask for -----------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    heaviest: int
    heaviest_count: int
    median: int
    median_count: int
    project: int
    project_count: int
    workflow_project: int
    workflows: tuple[int, ...]
    group: int
    group_members: int
    first_day: date
    last_day: date


def _engine(database_url: str) -> Engine:
    return create_engine(driver_url(database_url))


def pick_targets(database_url: str) -> Targets:
    """The heaviest and median volunteer, the largest project and group, from the rollups."""
    engine = _engine(database_url)
    try:
        with engine.connect() as connection:

            def one(sql: str) -> Any:
                return connection.execute(text(sql)).one()

            volunteers = one("SELECT COUNT(DISTINCT user_id) FROM classification_user_daily")[0]
            per_user = (
                "SELECT user_id, SUM(count) AS total FROM classification_user_daily "
                "GROUP BY user_id ORDER BY total DESC, user_id"
            )
            heaviest = one(per_user + " LIMIT 1")
            median = one(per_user + f" LIMIT 1 OFFSET {volunteers // 2}")
            project = one(
                "SELECT project_id, SUM(count) AS total FROM classification_project_daily "
                "GROUP BY project_id ORDER BY total DESC, project_id LIMIT 1"
            )
            group = one(
                "SELECT user_group_id, COUNT(DISTINCT user_id) AS members FROM group_user_daily "
                "GROUP BY user_group_id ORDER BY members DESC, user_group_id LIMIT 1"
            )
            first_day, last_day = one("SELECT MIN(day), MAX(day) FROM classification_daily")
    finally:
        engine.dispose()
    workflow_project = generated_project_id(1)
    return Targets(
        heaviest=heaviest[0],
        heaviest_count=int(heaviest[1]),
        median=median[0],
        median_count=int(median[1]),
        project=project[0],
        project_count=int(project[1]),
        workflow_project=workflow_project,
        workflows=tuple(first_workflow_id(1) + n for n in range(LARGEST_PROJECT_WORKFLOWS)),
        group=group[0],
        group_members=int(group[1]),
        first_day=_as_date(first_day),
        last_day=_as_date(last_day),
    )


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# --- the calls -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    name: str
    path: str
    headers: dict[str, str]
    raw: Callable[[Any, str], None] | None  # the same numbers from the raw tables
    # Also asked of the reference (and part of the mixed load): the original's calls are,
    # eras' additions are not.
    peer: bool = True


def _bucket(kind: str, period: str) -> str:
    if kind == "postgresql":
        return f"date_trunc('{period}', event_time)"
    return {
        "day": "date(event_time)",
        "month": "strftime('%Y-%m', event_time)",
        "year": "strftime('%Y', event_time)",
    }[period]


def _run(connection: Any, sql: str, **values: Any) -> None:
    statement = text(sql)
    for name, value in values.items():
        if isinstance(value, tuple):
            statement = statement.bindparams(bindparam(name, expanding=True))
    connection.execute(statement, values).all()


def front_end_calls(targets: Targets, tokens: dict[int, str]) -> list[Call]:
    """The calls the Zooniverse front end makes, with equivalent raw-table aggregations."""
    first, last = targets.first_day, targets.last_day
    week_ago, fortnight_ago = last - timedelta(days=6), last - timedelta(days=13)
    after_last = last + timedelta(days=1)

    def user_all_time(user: int) -> Call:
        def raw(connection: Any, kind: str) -> None:
            where = "user_id = :user AND event_time >= :start AND event_time < :end"
            values = {"user": user, "start": first, "end": after_last}
            _run(
                connection,
                f"SELECT {_bucket(kind, 'year')}, COUNT(*), SUM(session_time) "
                f"FROM classification_events WHERE {where} GROUP BY 1",
                **values,
            )
            _run(
                connection,
                "SELECT project_id, COUNT(*) FROM classification_events "
                f"WHERE {where} GROUP BY project_id",
                **values,
            )

        return Call(
            f"user {user}, all time by year",
            f"/classifications/users/{user}/?period=year&start_date={first}&end_date={last}"
            "&project_contributions=true&time_spent=true",
            {"Authorization": f"Bearer {tokens[user]}"},
            raw,
        )

    def user_project_week(connection: Any, kind: str) -> None:
        _run(
            connection,
            f"SELECT {_bucket(kind, 'day')}, COUNT(*) FROM classification_events "
            "WHERE user_id = :user AND project_id = :project AND event_time >= :start "
            "AND event_time < :end GROUP BY 1",
            user=targets.heaviest,
            project=targets.project,
            start=week_ago,
            end=after_last,
        )

    def project_by_month(connection: Any, kind: str) -> None:
        _run(
            connection,
            f"SELECT {_bucket(kind, 'month')}, COUNT(*) FROM classification_events "
            "WHERE project_id = :project AND event_time >= :start GROUP BY 1",
            project=targets.project,
            start=first,
        )

    def workflows_fortnight(connection: Any, kind: str) -> None:
        _run(
            connection,
            f"SELECT {_bucket(kind, 'day')}, COUNT(*) FROM classification_events "
            "WHERE workflow_id IN :workflows AND event_time >= :start AND event_time < :end "
            "GROUP BY 1",
            workflows=targets.workflows,
            start=fortnight_ago,
            end=after_last,
        )

    def workflows_fortnight_by_id(connection: Any, kind: str) -> None:
        _run(
            connection,
            f"SELECT workflow_id, {_bucket(kind, 'day')}, COUNT(*) FROM classification_events "
            "WHERE workflow_id IN :workflows AND event_time >= :start AND event_time < :end "
            "GROUP BY 1, 2",
            workflows=targets.workflows,
            start=fortnight_ago,
            end=after_last,
        )

    group_where = "user_group_id = :group AND event_time >= :start AND event_time < :end"
    group_values = {"group": targets.group, "start": week_ago, "end": after_last}

    def group_top(connection: Any, kind: str) -> None:
        source = f"FROM classification_user_groups WHERE {group_where}"
        _run(
            connection,
            f"SELECT COUNT(*), SUM(session_time), COUNT(DISTINCT user_id) {source}",
            **group_values,
        )
        _run(
            connection,
            f"SELECT {_bucket(kind, 'day')}, COUNT(*), SUM(session_time) {source} GROUP BY 1",
            **group_values,
        )
        _run(
            connection,
            f"SELECT project_id, COUNT(*), SUM(session_time) {source} GROUP BY project_id",
            **group_values,
        )
        _run(
            connection,
            f"SELECT user_id, COUNT(*) AS n, SUM(session_time) {source} "
            "GROUP BY user_id ORDER BY n DESC LIMIT 10",
            **group_values,
        )

    def group_breakdown(connection: Any, kind: str) -> None:
        _run(
            connection,
            "SELECT user_id, project_id, COUNT(*), SUM(session_time) "
            f"FROM classification_user_groups WHERE {group_where} GROUP BY user_id, project_id",
            **group_values,
        )

    def global_total(connection: Any, kind: str) -> None:
        _run(connection, "SELECT COUNT(*) FROM classification_events")

    workflow_ids = ",".join(map(str, targets.workflows))
    group_path = f"/classifications/user_groups/{targets.group}/"
    return [
        Call(FLOOR, "/", {}, None),
        user_all_time(targets.heaviest),
        user_all_time(targets.median),
        Call(
            f"user {targets.heaviest}, one project, 7 days by day",
            f"/classifications/users/{targets.heaviest}/?project_id={targets.project}"
            f"&period=day&start_date={week_ago}&end_date={last}",
            {"Authorization": f"Bearer {tokens[targets.heaviest]}"},
            user_project_week,
        ),
        Call(
            f"project {targets.project}, by month since launch",
            f"/classifications/?project_id={targets.project}&period=month&start_date={first}",
            {},
            project_by_month,
        ),
        Call(
            f"{len(targets.workflows)} workflows of project {targets.workflow_project}, 14 days",
            f"/classifications/?workflow_id={workflow_ids}&period=day"
            f"&start_date={fortnight_ago}&end_date={last}",
            {},
            workflows_fortnight,
        ),
        Call(
            f"group {targets.group}, 7 days, top 10",
            f"{group_path}?period=day&start_date={week_ago}&end_date={last}&top_contributors=10",
            {},
            group_top,
        ),
        Call(
            f"group {targets.group}, member breakdown, 7 days",
            f"{group_path}?individual_stats_breakdown=true&start_date={week_ago}&end_date={last}",
            {},
            group_breakdown,
        ),
        Call("global total", "/classifications", {}, global_total),
        Call(
            f"{len(targets.workflows)} workflows of project {targets.workflow_project}, "
            "14 days, broken down",
            f"/classifications/?workflow_id={workflow_ids}&period=day"
            f"&start_date={fortnight_ago}&end_date={last}&breakdown=true",
            {},
            workflows_fortnight_by_id,
            peer=False,
        ),
    ]


# --- measuring -----------------------------------------------------------------------------


def check_answers(url: str, loaded: Loaded) -> None:
    """The service counts every generated event: the benchmark measures correct answers."""
    totals = {
        "/classifications": loaded.classifications,
        "/comments": loaded.comments,
    }
    for path, expected in totals.items():
        answered = httpx.get(url + path, timeout=60).json()["total_count"]
        if answered != expected:
            raise SystemExit(f"{path} answered {answered}, but {expected} events were sent")


def measure_queries(url: str, calls: list[Call], requests: int, seconds: float) -> dict[str, Any]:
    prepared = {call.name: loadgen.get(url, call.path, call.name, call.headers) for call in calls}
    single: dict[str, dict[str, float]] = {}
    for name, request in prepared.items():
        measured = asyncio.run(loadgen.run(url, [request], count=requests, seconds=60, warmup=20))[
            name
        ]
        single[name] = {
            "p50": measured.p50,
            "p95": measured.percentile(0.95),
            "p99": measured.percentile(0.99),
        }
    loaded: dict[str, dict[str, float]] = {}
    for name, request in prepared.items():
        measured = asyncio.run(
            loadgen.run(url, [request], concurrency=HIGH_CONCURRENCY, seconds=seconds)
        )[name]
        loaded[name] = {"rps": measured.rate, "p99": measured.percentile(0.99)}
    mixed_requests = [prepared[call.name] for call in calls if call.name != FLOOR and call.peer]
    mixed = asyncio.run(
        loadgen.run(url, mixed_requests, concurrency=HIGH_CONCURRENCY, seconds=2 * seconds)
    )
    every = [value for latencies in mixed.values() for value in latencies.values]
    combined = loadgen.Latencies(every, next(iter(mixed.values())).seconds)
    return {
        "single": single,
        "loaded": loaded,
        "mixed": {"rps": combined.rate, "p99": combined.percentile(0.99)},
    }


def measure_raw(database_url: str, kind: str, calls: list[Call], repeats: int) -> dict[str, float]:
    """Milliseconds (median of ``repeats``) to compute each call's numbers from raw events."""
    engine = _engine(database_url)
    timings: dict[str, float] = {}
    try:
        with engine.connect() as connection:
            for call in calls:
                if call.raw is None:
                    continue
                measured = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    call.raw(connection, kind)
                    measured.append((time.perf_counter() - began) * 1000)
                timings[call.name] = sorted(measured)[len(measured) // 2]
    finally:
        engine.dispose()
    return timings


def rollup_storage(database_url: str, kind: str) -> dict[str, int]:
    """Bytes on disk (tables and their indexes) of the raw tables and of each rollup level."""
    tables = {rollup.name: rollup.level.value for rollup in ROLLUPS.values()}
    sizes: dict[str, int] = {}
    engine = _engine(database_url)
    try:
        with engine.connect() as connection:
            if kind == "sqlite":
                # dbstat names each b-tree; an index's rows point back at its table.
                rows = connection.execute(
                    text(
                        "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
                        "LEFT JOIN sqlite_schema m ON m.name = s.name GROUP BY 1"
                    )
                ).all()
            else:
                rows = connection.execute(
                    text(
                        "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                    )
                ).all()
    finally:
        engine.dispose()
    for table, size in rows:
        level = tables.get(table, "raw" if table in RAW_TABLES else None)
        if level is not None:
            sizes[level] = sizes.get(level, 0) + int(size)
    return sizes


# --- one size on one database --------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    workers: int
    seed: int
    tail: int
    part_size: int
    requests: int
    seconds: float
    postgres_url: str


def bench_one(kind: str, events: int, options: Options, directory: Path) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    databases = Databases(directory, options.postgres_url)
    panoptes = FakePanoptes().start()
    try:
        database_url = databases.create(kind)
        tail = min(options.tail, events // 10)
        log(f"{kind}, {events:,} events: bulk-loading {events - tail:,}")
        loaded = load_dataset(
            database_url, events, options.seed, tail, options.part_size, directory
        )
        settle(database_url, kind)
        with serve(database_url, options.workers, public_pem, panoptes) as server:
            log(f"{kind}, {events:,} events: posting {len(loaded.tail):,} to /kinesis")
            ingest = post_tail(server.url, loaded.tail)
            loaded.tail = []
            check_answers(server.url, loaded)
            targets = pick_targets(database_url)
            panoptes.state.add_group(targets.group, "public_show_all")
            tokens = {
                user: jwt.encode(
                    {"data": {"id": user, "admin": False}, "exp": int(time.time()) + 86_400},
                    key,
                    algorithm="RS512",
                )
                for user in (targets.heaviest, targets.median)
            }
            calls = front_end_calls(targets, tokens)
            log(f"{kind}, {events:,} events: queries")
            queries = measure_queries(server.url, calls, options.requests, options.seconds)
            worker_rss = sorted(server.peak_rss_mib.values())
            expected = answers(server.url, calls)
        log(f"{kind}, {events:,} events: the reference, then the stack's floor")
        shared = [call for call in calls if call.peer]
        with serve_peer("bench.reference:app", options.workers, database_url) as peer:
            differing = [
                name for name, answer in answers(peer, shared).items() if expected[name] != answer
            ]
            reference = measure_queries(peer, shared, options.requests, options.seconds)
        with serve_peer("bench.reference:floor", options.workers, database_url) as floor_url:
            stack_floor = measure_floor(floor_url, options.requests, options.seconds)
        storage = rollup_storage(database_url, kind)
        log(f"{kind}, {events:,} events: raw-table aggregation")
        raw = measure_raw(database_url, kind, calls, repeats=3 if events <= 5_000_000 else 1)
        return {
            "bulk": {
                "events": loaded.bulk_events,
                "events_per_second": loaded.bulk_events / loaded.bulk_seconds
                if loaded.bulk_seconds
                else 0.0,
                "peak_rss_mib": loaded.bulk_peak_rss_mib,
                "parser_peak_rss_mib": loaded.bulk_parser_peak_rss_mib,
            },
            "ingest": ingest,
            "targets": {
                "heaviest volunteer": f"{targets.heaviest} ({targets.heaviest_count:,})",
                "median volunteer": f"{targets.median} ({targets.median_count:,})",
                "largest project": f"{targets.project} ({targets.project_count:,})",
                "largest group": f"{targets.group} ({targets.group_members:,} members)",
                "days": f"{targets.first_day} to {targets.last_day}",
            },
            "calls": [call.name for call in calls],
            "call_paths": {call.name: call.path for call in calls},
            "queries": queries,
            "reference": reference,
            "reference_differs": differing,
            "stack_floor": stack_floor,
            "raw_ms": raw,
            "worker_peak_rss_mib": worker_rss,
            "storage_bytes": storage,
            "classifications": loaded.classifications,
            "comments": loaded.comments,
        }
    finally:
        panoptes.stop()
        databases.drop_all()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the report ----------------------------------------------------------------------------


def _versions(postgres_url: str) -> dict[str, str]:
    engine = _engine(postgres_url)
    try:
        with engine.connect() as connection:
            postgres = connection.execute(text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": str(postgres),
    }


def _bulk_memory(bulk: dict[str, Any]) -> str:
    if "parser_peak_rss_mib" not in bulk:
        # Results of an earlier harness, which read wait4's ru_maxrss: on Linux that counts the
        # harness's own pages, mapped in the child until exec, so it overstated the loader.
        return "not measured"
    return f"{bulk['peak_rss_mib']:.0f} MiB, {bulk['parser_peak_rss_mib']:.0f} MiB"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def render(results: dict[str, Any]) -> str:
    """Markdown tables of one run."""
    machine, runs, command = results["machine"], results["runs"], results["command"]
    sizes = sorted({int(size) for size in runs})
    kinds = [kind for kind in ("sqlite", "postgresql") if any(kind in runs[s] for s in runs)]
    lines = [
        f"Run on {results['date']}: {machine['cpus']} CPUs ({machine['cpu']}), "
        f"Python {machine['python']}, SQLite {machine['sqlite']}, "
        f"PostgreSQL {machine['postgresql']}, `eras serve --workers {results['workers']}`; "
        "the server, the database and the load generator share the machine.",
        "",
        f"    {command}",
        "",
        "### Loading",
        "",
        _row(
            "database",
            "events",
            "bulk load events/s",
            "bulk peak RSS: loader, parsers",
            "POST /kinesis events/s",
            "p99 batch",
        ),
        _row(*["---"] * 6),
    ]
    present = [(size, kind) for size in sizes for kind in kinds if kind in runs[str(size)]]
    for size, kind in present:
        run = runs[str(size)][kind]
        bulk, ingest = run["bulk"], run["ingest"]
        lines.append(
            _row(
                kind,
                f"{size:,}",
                f"{bulk['events_per_second']:,.0f}",
                _bulk_memory(bulk),
                f"{ingest['events_per_second']:,.0f}",
                f"{ingest['p99_batch_ms']:.0f} ms",
            )
        )
    stored = [(size, kind) for size, kind in present if "storage_bytes" in runs[str(size)][kind]]
    if stored:
        lines += [
            "",
            "### Storage, bytes per event (tables and indexes)",
            "",
            _row(
                "database",
                "events",
                "raw tables",
                "daily rollups",
                "monthly",
                "totals",
                "all rollups",
                "all rollups against daily only",
            ),
            _row(*["---"] * 8),
        ]
    for size, kind in stored:
        run = runs[str(size)][kind]
        stored_bytes = run["storage_bytes"]
        count = run["classifications"] + run["comments"]
        per = {
            level: stored_bytes.get(level, 0) / count
            for level in ("raw", "daily", "monthly", "total")
        }
        rollups = per["daily"] + per["monthly"] + per["total"]
        lines.append(
            _row(
                kind,
                f"{size:,}",
                f"{per['raw']:,.0f}",
                f"{per['daily']:,.0f}",
                f"{per['monthly']:,.0f}",
                f"{per['total']:,.0f}",
                f"{rollups:,.0f}",
                f"{rollups / per['daily']:.2f}x" if per["daily"] else "",
            )
        )
    for size, kind in present:
        run = runs[str(size)][kind]
        queries, raw = run["queries"], run["raw_ms"]
        floor_rps = queries["loaded"][FLOOR]["rps"]
        lines += [
            "",
            f"### Queries: {kind}, {size:,} events",
            "",
            "Targets: " + "; ".join(f"{k} {v}" for k, v in run["targets"].items()) + ".",
            "",
            _row(
                "call",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                f"req/s at {HIGH_CONCURRENCY}",
                f"p99 ms at {HIGH_CONCURRENCY}",
                "% of GET / req/s",
                "reference p50 ms",
                "faster than the reference at c=1",
                f"reference req/s at {HIGH_CONCURRENCY}",
                "req/s against the reference",
                "raw tables ms",
                "rollups faster by",
            ),
            _row(*["---"] * 13),
        ]
        reference = run.get("reference")
        for name in run["calls"]:
            single, loaded = queries["single"][name], queries["loaded"][name]
            peer_single = reference["single"].get(name) if reference else None
            peer_loaded = reference["loaded"].get(name) if reference else None
            raw_ms = raw.get(name)
            lines.append(
                _row(
                    name,
                    f"{single['p50']:.2f}",
                    f"{single['p95']:.2f}",
                    f"{single['p99']:.2f}",
                    f"{loaded['rps']:,.0f}",
                    f"{loaded['p99']:.1f}",
                    f"{100 * loaded['rps'] / floor_rps:.0f}%",
                    "" if peer_single is None else f"{peer_single['p50']:.2f}",
                    "" if peer_single is None else f"{peer_single['p50'] / single['p50']:.2f}x",
                    "" if peer_loaded is None else f"{peer_loaded['rps']:,.0f}",
                    "" if peer_loaded is None else f"{loaded['rps'] / peer_loaded['rps']:.2f}x",
                    "" if raw_ms is None else f"{raw_ms:,.1f}",
                    "" if raw_ms is None else f"{raw_ms / single['p50']:,.0f}x",
                )
            )
        stack = run.get("stack_floor")
        if stack:
            lines += [
                "",
                f"Bare FastAPI on the same server (`bench.reference:floor`, {results['workers']} "
                f"workers): `GET /` p50 {stack['p50']:.2f} ms, {stack['rps']:,.0f} req/s at "
                f"{HIGH_CONCURRENCY}; eras' `GET /` serves "
                f"**{floor_rps / stack['rps']:.2f}x** of that.",
            ]
        summed, broken = run["calls"][5], run["calls"][-1]
        if broken.endswith("broken down") and summed in queries["single"]:
            p50s = [queries["single"][name]["p50"] for name in (broken, summed)]
            rates = [queries["loaded"][name]["rps"] for name in (broken, summed)]
            lines += [
                "",
                f"`breakdown=true` over the {summed.split()[0]} workflows: p50 {p50s[0]:.2f} ms "
                f"against {p50s[1]:.2f} ms for the summed call (**{p50s[0] / p50s[1]:.2f}x**), "
                f"{rates[0]:,.0f} against {rates[1]:,.0f} req/s at {HIGH_CONCURRENCY}; "
                "without it a client makes one call per workflow.",
            ]
        if run.get("reference_differs"):
            lines.append(
                "The reference answered differently from eras for: "
                + ", ".join(run["reference_differs"])
                + "."
            )
        mixed = queries["mixed"]
        rss = ", ".join(f"{value:.0f}" for value in run["worker_peak_rss_mib"])
        lines += [
            "",
            f"Mixed front-end calls at concurrency {HIGH_CONCURRENCY}: "
            f"**{mixed['rps']:,.0f} requests/s**, p99 {mixed['p99']:.1f} ms. "
            f"Peak RSS per worker: {rss} MiB.",
        ]
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        lines += [
            "",
            f"### Growth: p50 at {large:,} events against {small:,}",
            "",
            _row("database", "call", f"p50 ms at {small:,}", f"p50 ms at {large:,}", "ratio"),
            _row(*["---"] * 5),
        ]
        for kind in kinds:
            if kind not in runs[str(small)] or kind not in runs[str(large)]:
                continue
            before, after = runs[str(small)][kind], runs[str(large)][kind]
            for position, name in enumerate(before["calls"]):
                later = after["calls"][position]
                p50_before = before["queries"]["single"][name]["p50"]
                p50_after = after["queries"]["single"][later]["p50"]
                lines.append(
                    _row(
                        kind,
                        _generic(name, position),
                        f"{p50_before:.2f}",
                        f"{p50_after:.2f}",
                        f"{p50_after / p50_before:.2f}x",
                    )
                )
    return "\n".join(lines) + "\n"


_GENERIC_NAMES = (
    FLOOR,
    "heaviest volunteer, all time by year",
    "median volunteer, all time by year",
    "heaviest volunteer, one project, 7 days",
    "largest project, by month since launch",
    "48 workflows, 14 days",
    "largest group, 7 days, top 10",
    "largest group, member breakdown",
    "global total",
    "48 workflows, 14 days, broken down",
)


def _generic(name: str, position: int) -> str:
    """Targets differ between sizes; the row names what the call is about."""
    return _GENERIC_NAMES[position] if position < len(_GENERIC_NAMES) else name


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs as one: their results per size and database, and every command."""
    combined = {**results[0], "runs": {}}
    combined["command"] = "\n    ".join(dict.fromkeys(result["command"] for result in results))
    for result in results:
        for size, runs in result["runs"].items():
            combined["runs"].setdefault(size, {}).update(runs)
    return combined


def write_report(path: Path, markdown: str) -> None:
    block = f"{RESULTS_START}\n{markdown}{RESULTS_END}\n"
    if path.exists():
        current = path.read_text()
        if RESULTS_START in current and RESULTS_END in current:
            head, rest = current.split(RESULTS_START, 1)
            tail = rest.split(RESULTS_END, 1)[1].lstrip("\n")
            path.write_text(head + block + tail)
            return
    path.write_text("# Benchmarks\n\n" + block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000000,20000000", help="comma-separated events")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tail", type=int, default=100_000, help="events sent to /kinesis")
    parser.add_argument("--part-size", type=int, default=2_000_000)
    parser.add_argument("--requests", type=int, default=500, help="per call at concurrency 1")
    parser.add_argument("--seconds", type=float, default=8.0, help="per call at concurrency 32")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--work-dir", type=Path, help="for the data files and SQLite databases")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ERAS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test"),
    )
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        help="only rewrite the report from --json files of earlier runs; a later file's "
        "results replace an earlier one's for the same size and database",
    )
    arguments = parser.parse_args()
    if arguments.render:
        markdown = render(merged([json.loads(path.read_text()) for path in arguments.render]))
        print(markdown)
        write_report(arguments.report, markdown)
        return
    options = Options(
        workers=arguments.workers,
        seed=arguments.seed,
        tail=arguments.tail,
        part_size=arguments.part_size,
        requests=arguments.requests,
        seconds=arguments.seconds,
        postgres_url=arguments.postgres_url,
    )
    sizes = [int(value) for value in arguments.sizes.split(",")]
    kinds = arguments.databases.split(",")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m bench.run " + " ".join(sys.argv[1:]),
        "workers": arguments.workers,
        "machine": _versions(arguments.postgres_url),
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="eras-bench-", dir=arguments.work_dir) as work:
        for size in sizes:
            for kind in kinds:
                run = bench_one(kind, size, options, Path(work))
                results["runs"].setdefault(str(size), {})[kind] = run
                if arguments.json:
                    arguments.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    markdown = render(results)
    print(markdown)
    write_report(arguments.report, markdown)
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

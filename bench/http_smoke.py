"""A small HTTP benchmark of a live ``eras serve``: ingest rate and query latency.

    .venv/bin/python bench/http_smoke.py [--events 40000] [--workers 2] [--requests 300]

For each database: starts ``eras serve`` on a fresh database, posts ``--events`` synthetic
classifications in batches of 500 from 4 concurrent senders (events/s, p99 batch latency),
then times the front end's read calls one at a time next to ``GET /``, the floor of the web
stack measured in the same run. Prints numbers only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bulk_load import Databases, _stream_event, synthetic_events

ERAS = Path(sys.executable).with_name("eras")
USER, PASSWORD = "bench", "bench-password"
BATCH = 500
SENDERS = 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start(database_url: str, workers: int, public_pem: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {
        **os.environ,
        "ERAS_DATABASE_URL": database_url,
        "ERAS_KINESIS_USERNAME": USER,
        "ERAS_KINESIS_PASSWORD": PASSWORD,
        "ERAS_PANOPTES_PUBLIC_KEY": public_pem,
    }
    process = subprocess.Popen(
        [
            str(ERAS),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("eras serve did not start")


async def ingest(url: str, events: list[dict[str, object]]) -> tuple[float, float]:
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    latencies: list[float] = []
    auth = httpx.BasicAuth(USER, PASSWORD)
    async with httpx.AsyncClient(base_url=url, auth=auth, timeout=120) as http:

        async def sender(mine: list[list[dict[str, object]]]) -> None:
            for batch in mine:
                began = time.perf_counter()
                response = await http.post("/kinesis", json={"payload": batch})
                response.raise_for_status()
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(sender(batches[n::SENDERS]) for n in range(SENDERS)))
        elapsed = time.perf_counter() - began
    return len(events) / elapsed, percentile(latencies, 0.99) * 1000


def latencies(url: str, path: str, headers: dict[str, str], count: int) -> list[float]:
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for _ in range(20):
            http.get(path).raise_for_status()
        measured = []
        for _ in range(count):
            began = time.perf_counter()
            http.get(path).raise_for_status()
            measured.append((time.perf_counter() - began) * 1000)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ERAS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test"),
    )
    arguments = parser.parse_args()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    generated = list(synthetic_events(arguments.events, arguments.seed))
    events = [_stream_event(event) for event in generated]
    heaviest = Counter(e.user_id for e in generated if e.user_id is not None).most_common(1)[0][0]
    project = Counter(e.project_id for e in generated).most_common(1)[0][0]
    token = jwt.encode(
        {"data": {"id": heaviest, "admin": False}, "exp": int(time.time()) + 3600},
        key,
        algorithm="RS512",
    )
    calls = {
        "GET / (floor)": ("/", {}),
        "global total": ("/classifications", {}),
        "project by month": (f"/classifications?project_id={project}&period=month", {}),
        "heaviest volunteer, contributions": (
            f"/classifications/users/{heaviest}?period=year&time_spent=true"
            "&project_contributions=true",
            {"Authorization": f"Bearer {token}"},
        ),
    }

    print(f"{len(events)} events, {arguments.workers} workers, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as directory:
        databases = Databases(Path(directory), arguments.postgres_url)
        try:
            for kind in ("sqlite", "postgresql"):
                process, url = start(databases.create(kind), arguments.workers, public_pem)
                try:
                    rate, p99 = asyncio.run(ingest(url, events))
                    print(f"\n{kind}: POST /kinesis {rate:,.0f} events/s, p99 batch {p99:.0f} ms")
                    floor = None
                    print(
                        f"  {'call':<36} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'x floor':>8}"
                    )
                    for name, (path, headers) in calls.items():
                        measured = latencies(url, path, headers, arguments.requests)
                        p50 = statistics.median(measured)
                        floor = floor or p50
                        print(
                            f"  {name:<36} {p50:>7.2f} {percentile(measured, 0.95):>7.2f} "
                            f"{percentile(measured, 0.99):>7.2f} {p50 / floor:>8.2f}"
                        )
                finally:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=30)
        finally:
            databases.drop_all()


if __name__ == "__main__":
    main()

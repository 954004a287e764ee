"""SIGKILL the server in the middle of a stream of ingest requests, then restart it.

Every batch answered 2xx must be fully counted, no batch may be half applied, and the rollups
must still equal a recomputation from the raw events (``eras verify``). Until the kill, every
batch must be answered 2xx: a refusal or a dropped connection before it is a failure, not a
sign that the server is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.environment import child_environment
from tests.factories import INGEST_PASSWORD, INGEST_USER, basic_auth, classification
from tests.test_serve import free_port

ERAS = Path(sys.executable).with_name("eras")
BATCH_SIZE = 200
SENDERS = 4
FIRST_PROJECT = 10_000


def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    environment = child_environment(
        ERAS_DATABASE_URL=database_url,
        ERAS_KINESIS_USERNAME=INGEST_USER,
        ERAS_KINESIS_PASSWORD=INGEST_PASSWORD,
    )
    process = subprocess.Popen(
        [str(ERAS), "serve", "--port", str(port), "--log-level", "warning"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so SIGKILL reaches every process
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "eras serve exited early"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("eras serve did not answer within 30 s")


def batch(number: int) -> list[dict[str, object]]:
    """Batch ``number`` is the only one with its project, so its count shows how much landed."""
    first_id = number * BATCH_SIZE + 1
    return [
        classification(
            first_id + offset,
            project=FIRST_PROJECT + number,
            workflow=number % 7 + 1,
            user=None if offset % 12 == 0 else 1000 + offset % 40,
            groups=[offset % 3] if offset % 5 == 0 else None,
            created_at=f"2024-0{1 + number % 9}-{1 + offset % 28:02d}T12:00:00.000Z",
        )
        for offset in range(BATCH_SIZE)
    ]


@dataclass
class Stream:
    acknowledged: set[int] = field(default_factory=set)  # batches answered 2xx
    sent: int = 0  # batches 0 .. sent - 1 were sent
    killed: bool = False
    # Anything but a 2xx answer, and transport errors before the kill: each one a failure.
    failures: list[str] = field(default_factory=list)


async def stream_until_killed(port: int, process: subprocess.Popen[bytes]) -> Stream:
    """Send batches from several senders; kill the server once a few have been answered."""
    stream = Stream()
    kill_after = 12

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

        async def sender() -> None:
            while True:
                number = stream.sent
                stream.sent += 1
                try:
                    response = await http.post(
                        "/kinesis", json={"payload": batch(number)}, headers=basic_auth()
                    )
                except httpx.TransportError as error:
                    if not stream.killed:
                        stream.failures.append(f"batch {number}: {error!r} before the kill")
                    return  # after the kill: the server is gone
                if response.is_success:
                    stream.acknowledged.add(number)
                else:
                    stream.failures.append(
                        f"batch {number}: {response.status_code} {response.text[:200]}"
                    )
                    return
                if len(stream.acknowledged) >= kill_after and not stream.killed:
                    stream.killed = True
                    os.killpg(process.pid, signal.SIGKILL)

        await asyncio.gather(*(sender() for _ in range(SENDERS)))
    process.wait(timeout=10)
    return stream


async def test_sigkill_mid_stream_loses_nothing_acknowledged(empty_database_url):
    port = free_port()
    process = start_server(empty_database_url, port)
    try:
        stream = await stream_until_killed(port, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert stream.failures == []
    assert stream.killed and process.returncode == -signal.SIGKILL
    acknowledged, sent = stream.acknowledged, stream.sent
    assert len(acknowledged) >= 12 and sent > len(acknowledged)

    restarted = start_server(empty_database_url, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            landed = {}
            for number in range(sent):
                response = http.get(
                    "/classifications", params={"project_id": FIRST_PROJECT + number}
                )
                assert response.status_code == 200, response.text
                landed[number] = response.json()["total_count"]
        for number in acknowledged:
            assert landed[number] == BATCH_SIZE, f"acknowledged batch {number} is incomplete"
        for number, count in landed.items():
            assert count in (0, BATCH_SIZE), f"batch {number} is half applied: {count}"
    finally:
        restarted.terminate()
        restarted.wait(timeout=15)

    verify = subprocess.run(
        [str(ERAS), "verify", "--no-progress"],
        env=child_environment(ERAS_DATABASE_URL=empty_database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

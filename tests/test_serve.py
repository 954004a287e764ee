"""``eras serve`` as a real process: migrates at start, ingests and answers over TCP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.environment import child_environment
from tests.factories import (
    INGEST_PASSWORD,
    INGEST_USER,
    basic_auth,
    classification,
    fixture_event,
)

ERAS = Path(sys.executable).with_name("eras")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(environment: dict[str, str], *arguments: str) -> Iterator[str]:
    """``eras serve`` on a free port with ``environment``, until it answers ``GET /``; its URL.
    Fails the test with the server's output if it exits first."""
    port = free_port()
    process = subprocess.Popen(
        [str(ERAS), "serve", "--port", str(port), *arguments, "--log-level", "warning"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"eras serve exited early:\n{process.stdout.read() if process.stdout else ''}"
                )
            try:
                if httpx.get(f"{base_url}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("eras serve did not answer within 30 s")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def server(empty_database_url: str) -> Iterator[str]:
    environment = child_environment(
        ERAS_DATABASE_URL=empty_database_url,
        ERAS_KINESIS_USERNAME=INGEST_USER,
        ERAS_KINESIS_PASSWORD=INGEST_PASSWORD,
        ERAS_REVISION="live-test",
    )
    with serving(environment, "--workers", "2") as base_url:
        yield base_url


def test_serve_migrates_ingests_and_answers(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as http:
        assert http.get("/").json() == {"revision": "live-test"}
        events = [
            fixture_event("kinesis-classification-event.json"),
            fixture_event("kinesis-comment-event.json"),
        ]
        response = http.post("/kinesis", json={"payload": events}, headers=basic_auth())
        assert response.status_code == 200
        assert response.json()["inserted"] == 2
        # Two workers share the database: every request sees the committed batch at once.
        for _ in range(4):
            assert http.get("/classifications", params={"project_id": "24779"}).json() == {
                "total_count": 1
            }
            assert http.get("/comments", params={"user_id": "1326056"}).json() == {"total_count": 1}


async def test_concurrent_ingest_and_reads_across_two_workers_are_exact(server: str) -> None:
    """16 senders with overlapping batches, and readers, against two processes on one database.

    On SQLite this is two processes contending for the single writer: no request may fail
    (no "database is locked"), and readers never see a total go down or past the end.
    """
    events = [
        classification(
            i, user=100 + i % 7, groups=[i % 4], created_at=f"2023-09-{1 + i % 28:02d}T10:00:00Z"
        )
        for i in range(1, 801)
    ]
    # 32 batches of 50 overlapping by half; sent by 16 concurrent senders, two batches each.
    batches = [events[start : start + 50] for start in range(0, 800, 25)]
    senders = [batches[n::16] for n in range(16)]
    async with httpx.AsyncClient(base_url=server, timeout=120) as http:
        done = asyncio.Event()
        # One list per reader: each reader's requests are sequential, so its totals never fall.
        seen_totals: list[list[int]] = [[] for _ in range(4)]

        async def send(mine: list[list[dict[str, object]]]) -> list[httpx.Response]:
            return [
                await http.post("/kinesis", json={"payload": batch}, headers=basic_auth())
                for batch in mine
            ]

        async def read(seen: list[int]) -> None:
            while not done.is_set():
                response = await http.get("/classifications", params={"project_id": "1"})
                assert response.status_code == 200, response.text
                seen.append(response.json()["total_count"])
                group = await http.get("/classifications", params={"workflow_id": "10"})
                assert group.status_code == 200, group.text

        readers = [asyncio.create_task(read(seen)) for seen in seen_totals]
        results = await asyncio.gather(*(send(mine) for mine in senders))
        done.set()
        await asyncio.gather(*readers)

        responses = [response for sent in results for response in sent]
        assert [response.status_code for response in responses] == [200] * len(batches)
        assert sum(response.json()["inserted"] for response in responses) == 800
        for seen in seen_totals:
            assert seen == sorted(seen) and all(total <= 800 for total in seen)
        assert (await http.get("/classifications")).json() == {"total_count": 800}
        by_day = (await http.get("/classifications", params={"period": "day"})).json()["data"]
        assert sum(bucket["count"] for bucket in by_day) == 800
        assert len(by_day) == 28


def test_metrics_count_the_requests_of_every_worker(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as http:
        before = _request_count(http.get("/metrics").text)
        for _ in range(20):
            # New connections, so the requests spread over both workers.
            assert httpx.get(f"{server}/comments", timeout=10).status_code == 200
        after = _request_count(http.get("/metrics").text)
    assert after - before == 20


def _request_count(metrics: str) -> float:
    prefix = 'eras_http_request_duration_seconds_count{method="GET",route="/comments",status="200"}'
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _sockets_by_process(port: int) -> tuple[dict[int, int], dict[int, int]]:
    """{pid: listening sockets} and {pid: accepted connections} on ``port``, from /proc."""
    states: dict[str, str] = {}  # socket inode -> state ("0A" listening, "01" established)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                states[fields[9]] = fields[3]
    listening: dict[int, int] = {}
    accepted: dict[int, int] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        pid = int(fd_dir.parent.name)
        for link in links:
            state = states.get(link.removeprefix("socket:[").removesuffix("]"))
            if state == "0A":
                listening[pid] = listening.get(pid, 0) + 1
            elif state == "01":
                accepted[pid] = accepted.get(pid, 0) + 1
    return listening, accepted


async def _connected(server: str, count: int) -> list[httpx.AsyncClient]:
    """``count`` clients, each with one kept-alive connection, opened one after another."""
    clients = [httpx.AsyncClient(base_url=server, timeout=10) for _ in range(count)]
    for client in clients:
        assert (await client.get("/")).status_code == 200
    return clients


async def _close(clients: list[httpx.AsyncClient]) -> None:
    for client in clients:
        await client.aclose()


async def _serving_processes(server: str) -> tuple[dict[int, int], dict[int, int]]:
    """Which process listens, and which two serve, found through two connections."""
    clients = await _connected(server, 2)
    try:
        listening, accepted = _sockets_by_process(int(server.rsplit(":", 1)[1]))
    finally:
        await _close(clients)
    assert len(listening) == 1 and len(accepted) == 2, (listening, accepted)
    return listening, accepted


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")
async def test_keep_alive_connections_are_handed_to_the_workers_in_turn(server: str) -> None:
    """The serving process accepts every connection and hands them to the workers in turn, so
    four keep-alive senders over two workers are two on each, every time; spread by a hash of
    their addresses, they would all be on one worker an eighth of the time."""
    port = int(server.rsplit(":", 1)[1])
    for count in (4, 4, 16):
        clients = await _connected(server, count)
        try:
            listening, accepted = _sockets_by_process(port)
            assert len(listening) == 1, listening  # the serving process's, and only that
            assert not set(accepted) & set(listening), (listening, accepted)
            assert sorted(accepted.values()) == [count // 2, count // 2], accepted
        finally:
            await _close(clients)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")
async def test_connections_wait_for_busy_workers_rather_than_being_dropped(server: str) -> None:
    """More new connections than the workers' queues hold, while neither worker takes any
    (both stopped): each waits its turn in the serving process, and none is dropped."""
    port = int(server.rsplit(":", 1)[1])
    _listening, accepted = await _serving_processes(server)

    async def one() -> bytes:
        # A bare request: 800 of them, at once, from one test process.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: eras\r\nConnection: close\r\n\r\n")
            return (await asyncio.wait_for(reader.readline(), timeout=60)).split(b" ")[1]
        finally:
            writer.close()

    for worker in accepted:
        os.kill(worker, signal.SIGSTOP)
    try:
        requests = asyncio.gather(*(one() for _ in range(800)))
        await asyncio.sleep(2)
    finally:
        for worker in accepted:
            os.kill(worker, signal.SIGCONT)
    assert await requests == [b"200"] * 800


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")
async def test_a_worker_that_dies_is_skipped_until_it_is_restarted(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    _listening, accepted = await _serving_processes(server)
    killed, survivor = sorted(accepted)
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{killed}").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)

    # Every new connection meanwhile is served, by the worker left.
    clients = await _connected(server, 6)
    try:
        _listening, accepted = _sockets_by_process(port)
        assert accepted == {survivor: 6}, (survivor, accepted)
    finally:
        await _close(clients)

    # A new worker takes its turn again once started.
    while time.monotonic() < deadline:
        clients = await _connected(server, 4)
        try:
            _listening, accepted = _sockets_by_process(port)
        finally:
            await _close(clients)
        if len(accepted) == 2:
            break
        await asyncio.sleep(0.2)
    assert survivor in accepted and killed not in accepted, accepted
    assert sorted(accepted.values()) == [2, 2], accepted


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # exited; its new parent has not reaped it yet


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")
async def test_the_workers_stop_when_the_serving_process_is_gone(server: str) -> None:
    """No connection can reach a worker without the serving process, and no signal to stop
    would come: killed alone, it leaves no worker behind."""
    listening, accepted = await _serving_processes(server)
    (serving_process,) = listening
    os.kill(serving_process, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not all(_gone(worker) for worker in accepted) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert all(_gone(worker) for worker in accepted), accepted

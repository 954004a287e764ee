"""A lean HTTP/1.1 load generator: keep-alive connections replaying prepared requests.

A general-purpose client spends a few hundred microseconds of CPU per request, which on a
2-core machine shared with the server would measure the client as much as the server. This
one writes prepared request bytes and reads the answer by its ``Content-Length`` only.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    """One prepared GET or POST; ``name`` groups the latencies in reports."""

    name: str
    data: bytes


def get(url: str, path: str, name: str, headers: dict[str, str] | None = None) -> Request:
    return Request(name, _encode("GET", url, path, headers or {}, b""))


def post(
    url: str, path: str, name: str, body: bytes, headers: dict[str, str] | None = None
) -> Request:
    return Request(name, _encode("POST", url, path, headers or {}, body))


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _encode(method: str, url: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    host = urlsplit(url).netloc
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Latencies:
    """Milliseconds per request, and how long the whole run took."""

    values: list[float] = field(default_factory=list)
    seconds: float = 0.0
    failures: int = 0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.values)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def rate(self) -> float:
        return len(self.values) / self.seconds if self.seconds else 0.0


class ResponseError(Exception):
    pass


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    else:
        raise ResponseError("an answer without Content-Length")
    body = await reader.readexactly(length)
    if status != 200:
        raise ResponseError(f"HTTP {status}: {body[:200]!r}")
    return length


async def _connection(
    url: str,
    requests: Sequence[Request],
    start: int,
    step: int,
    deadline: float,
    limit: int | None,
    results: dict[str, Latencies],
    once: bool,
) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 22)
    try:
        index = start
        done = 0
        while time.perf_counter() < deadline and (limit is None or done < limit):
            if once and index >= len(requests):
                break
            request = requests[index % len(requests)]
            began = time.perf_counter()
            await _exchange(reader, writer, request.data)
            results[request.name].values.append((time.perf_counter() - began) * 1000)
            index += step
            done += 1
    finally:
        writer.close()


async def run(
    url: str,
    requests: Sequence[Request],
    *,
    concurrency: int = 1,
    seconds: float = 10.0,
    count: int | None = None,
    warmup: int = 0,
    once: bool = False,
) -> dict[str, Latencies]:
    """Send ``requests`` round-robin from ``concurrency`` connections.

    Stops after ``seconds`` or, with ``count``, once every connection has sent its share of
    ``count`` requests, whichever comes first; with ``once``, each request is sent exactly
    once. Any answer but 200 stops the run with an error.
    """
    if warmup:
        await run(url, requests, concurrency=concurrency, count=warmup, seconds=seconds)
    results = {request.name: Latencies() for request in requests}
    share = None if count is None else max(1, count // concurrency)
    began = time.perf_counter()
    deadline = began + seconds
    await asyncio.gather(
        *(
            _connection(url, requests, n, concurrency, deadline, share, results, once)
            for n in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - began
    for latencies in results.values():
        latencies.seconds = elapsed
    return results

"""``eras serve``: uvicorn, with each worker on a listening socket of its own.

With several workers sharing one listening socket, whichever worker wakes first takes a new
connection, and a few long-lived keep-alive connections (a stream forwarder, a load balancer's
pool) can all land on the same one. Here every worker binds the address itself with
``SO_REUSEPORT``, and the kernel spreads new connections across the workers evenly. The serving
process only supervises: it checks the address can be bound, starts the workers, restarts one
that dies, and stops them all on SIGINT or SIGTERM.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final

_APP: Final = "eras.cli:serving_app"
_RESTART_PAUSE_SECONDS: Final = 1.0
# A worker that stops this soon after it started is failing to start (an unreachable database,
# an out-of-date schema): after a few in a row the service gives up rather than loop.
_FAILED_START_SECONDS: Final = 10.0
_FAILED_STARTS: Final = 3


def _config(host: str, port: int, log_level: str) -> Any:
    import uvicorn

    from eras.api.observability import logging_config

    return uvicorn.Config(
        _APP,
        factory=True,
        host=host,
        port=port,
        log_config=logging_config(log_level),
        access_log=False,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(host: str, port: int, log_level: str) -> None:
    import uvicorn

    sock = _bind(host, port)
    sock.listen(2048)
    uvicorn.Server(_config(host, port, log_level)).run(sockets=[sock])


def serve(host: str, port: int, workers: int, log_level: str) -> int:
    import uvicorn

    if workers <= 1:
        uvicorn.Server(_config(host, port, log_level)).run()
        return 0
    if not hasattr(socket, "SO_REUSEPORT"):  # not on every platform: one shared socket then
        uvicorn.run(_APP, factory=True, host=host, port=port, workers=workers, access_log=False)
        return 0
    try:
        # Bound, never listening: fails now if the address is taken, and keeps it meanwhile.
        holder = _bind(host, port)
    except OSError as error:
        sys.stderr.write(f"eras serve: error: cannot listen on {host}:{port}: {error.strerror}\n")
        return 2
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> tuple[BaseProcess, float]:
        process = context.Process(target=_worker, args=(host, port, log_level), daemon=False)
        process.start()
        return process, time.monotonic()

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    processes = [start() for _ in range(workers)]
    failed_starts = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for index, (process, started) in enumerate(processes):
                if process.is_alive() or stopping:
                    continue
                quick = time.monotonic() - started < _FAILED_START_SECONDS
                failed_starts = failed_starts + 1 if quick else 0
                if failed_starts >= _FAILED_STARTS:
                    sys.stderr.write("eras serve: error: the workers keep stopping at start\n")
                    return 1
                time.sleep(_RESTART_PAUSE_SECONDS)
                processes[index] = start()
    finally:
        for process, _started in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process, _started in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        holder.close()
    return 0

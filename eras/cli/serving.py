"""``eras serve``: uvicorn workers, each handed the next new connection in turn.

With several workers on one listening socket, whichever worker wakes first takes a new
connection; with a listening socket in each worker (``SO_REUSEPORT``), the kernel picks one by a
hash of the connection's addresses. Either way a few long-lived keep-alive connections (the
stream forwarder's senders, a load balancer's pool) can land on one worker while another idles:
by hash, four connections over two workers all land on one an eighth of the time, and three on
one half of the time. Here the serving process accepts every connection itself and hands it to
the workers in turn, over a Unix socket (``SCM_RIGHTS``); a worker serves it as if it had
accepted it. A worker whose queue is full, or that is being restarted, is skipped for the next;
when every worker's is, the connection waits in the serving process for the next try.

The serving process also supervises: it binds the address before anything starts (so a taken
address fails at once), starts the workers, restarts one that dies, and stops them all on
SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final

_APP: Final = "eras.cli:serving_app"
_RESTART_PAUSE_SECONDS: Final = 1.0
# A worker that stops this soon after it started is failing to start (an unreachable database,
# an out-of-date schema): after a few in a row the service gives up rather than loop.
_FAILED_START_SECONDS: Final = 10.0
_FAILED_STARTS: Final = 3
_BACKLOG: Final = 2048
# How often the serving process looks at its workers between connections.
_SUPERVISE_SECONDS: Final = 0.2
# Connections accepted but not yet handed to a worker, because every worker's queue was full:
# how many may wait here (more wait in the listen backlog), and how soon they are tried again.
_WAITING_LIMIT: Final = 1024
_RETRY_SECONDS: Final = 0.005


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


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(_BACKLOG)
    return sock


def _handed_server(config: Any, channel: socket.socket) -> Any:
    """A uvicorn server that listens on nothing and serves the connections that arrive on
    ``channel``, one per message."""
    import uvicorn

    class HandedConnections(uvicorn.Server):
        def __init__(self) -> None:
            super().__init__(config)
            self._serving: set[asyncio.Task[Any]] = set()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            loop = asyncio.get_running_loop()

            def protocol() -> asyncio.Protocol:
                # What uvicorn makes for a connection its own listener accepts.
                made: asyncio.Protocol = config.http_protocol_class(
                    config=config, server_state=self.server_state, app_state=self.lifespan.state
                )
                return made

            channel.setblocking(False)
            loop.add_reader(channel.fileno(), self._take, loop, protocol)

        def _take(
            self, loop: asyncio.AbstractEventLoop, protocol: Callable[[], asyncio.Protocol]
        ) -> None:
            while True:
                try:
                    message, descriptors, _flags, _address = socket.recv_fds(channel, 1, 1)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    message, descriptors = b"", []
                if not message:
                    # The serving process is gone: no connection will come, and no signal to
                    # stop either, so finish the requests in flight and exit.
                    loop.remove_reader(channel.fileno())
                    self.should_exit = True
                    return
                for descriptor in descriptors:
                    task = loop.create_task(
                        self._serve_handed(loop, socket.socket(fileno=descriptor), protocol)
                    )
                    self._serving.add(task)
                    task.add_done_callback(self._serving.discard)

        async def _serve_handed(
            self,
            loop: asyncio.AbstractEventLoop,
            connection: socket.socket,
            protocol: Callable[[], asyncio.Protocol],
        ) -> None:
            try:
                await loop.connect_accepted_socket(protocol, connection)
            except OSError:
                connection.close()  # the client left before it was served

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # Stop taking connections, then let uvicorn finish the requests in flight.
            asyncio.get_running_loop().remove_reader(channel.fileno())
            await super().shutdown(sockets=sockets)

    return HandedConnections()


def _worker(channel: socket.socket, host: str, port: int, log_level: str) -> None:
    _handed_server(_config(host, port, log_level), channel).run()


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    started: float
    channel: socket.socket  # the serving process's end
    restart_at: float | None = None  # once it has stopped


def _accept(listener: socket.socket, waiting: deque[socket.socket]) -> None:
    """Accept the connections the listener holds, as many as may wait here."""
    while len(waiting) < _WAITING_LIMIT:
        try:
            connection, _address = listener.accept()
        except OSError:  # none left, or out of descriptors: they wait in the backlog
            return
        waiting.append(connection)


def _hand_out(
    waiting: deque[socket.socket], workers: list[_Worker], turn: itertools.count[int]
) -> None:
    """Hand each waiting connection to the next worker that takes it; when none can (their
    queues are full, or they are being restarted), the rest wait for the next try."""
    while waiting:
        connection = waiting[0]
        for _ in range(len(workers)):
            worker = workers[next(turn) % len(workers)]
            try:
                socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
            except OSError:
                continue  # its queue is full, or it is gone: the next one
            waiting.popleft()
            connection.close()  # the worker holds its own copy now
            break
        else:
            return


def serve(host: str, port: int, workers: int, log_level: str) -> int:
    import uvicorn

    if workers <= 1:
        uvicorn.Server(_config(host, port, log_level)).run()
        return 0
    if not hasattr(socket, "send_fds"):  # not on every platform: one shared socket then
        uvicorn.run(_APP, factory=True, host=host, port=port, workers=workers, access_log=False)
        return 0
    try:
        listener = _listen(host, port)
    except OSError as error:
        sys.stderr.write(f"eras serve: error: cannot listen on {host}:{port}: {error.strerror}\n")
        return 2
    listener.setblocking(False)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = context.Process(
            target=_worker, args=(theirs, host, port, log_level), daemon=False
        )
        process.start()
        theirs.close()
        ours.setblocking(False)
        return _Worker(process, time.monotonic(), ours)

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    running = [start() for _ in range(workers)]
    turn = itertools.count()
    failed_starts = 0
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    waiting: deque[socket.socket] = deque()
    supervised = time.monotonic()
    try:
        while not stopping:
            if len(waiting) >= _WAITING_LIMIT:
                time.sleep(_RETRY_SECONDS)
            elif selector.select(timeout=_RETRY_SECONDS if waiting else _SUPERVISE_SECONDS):
                _accept(listener, waiting)
            _hand_out(waiting, running, turn)
            if time.monotonic() - supervised < _SUPERVISE_SECONDS:
                continue
            supervised = now = time.monotonic()
            for index, worker in enumerate(running):
                if worker.restart_at is not None:
                    if now >= worker.restart_at:
                        running[index] = start()
                    continue
                if worker.process.is_alive() or stopping:
                    continue
                worker.channel.close()  # connections go to the others meanwhile
                quick = now - worker.started < _FAILED_START_SECONDS
                failed_starts = failed_starts + 1 if quick else 0
                if failed_starts >= _FAILED_STARTS:
                    sys.stderr.write("eras serve: error: the workers keep stopping at start\n")
                    return 1
                worker.restart_at = now + _RESTART_PAUSE_SECONDS
    finally:
        selector.close()
        listener.close()
        for connection in waiting:
            connection.close()
        for worker in running:
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for worker in running:
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
            worker.channel.close()
    return 0

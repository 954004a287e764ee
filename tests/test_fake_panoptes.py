"""The fake Panoptes itself: a failure of its own is recorded (and fails the test using it), a
client hanging up is not, and a held answer keeps its connection busy until released."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.fake_panoptes import API_ACCEPT, FakePanoptes


def wait_until(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` became true (polled, for at most 10 s)."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_an_exception_in_a_handler_is_recorded() -> None:
    fake = FakePanoptes().start()
    try:
        # Not a number: the handler's int() raises, as a bug of the fake would.
        token = fake.state.current_app_token()
        headers = {"Accept": API_ACCEPT, "Authorization": f"Bearer {token}"}
        with pytest.raises(httpx.RemoteProtocolError):  # it broke off without an answer
            httpx.get(f"{fake.url}/api/user_groups/abc", headers=headers, timeout=5)
    finally:
        fake.stop()
    assert len(fake.errors) == 1
    assert "ValueError: invalid literal for int()" in fake.errors[0]


def test_a_client_hanging_up_is_not_an_error() -> None:
    fake = FakePanoptes().start()
    fake.state.delay_seconds = 0.5
    try:
        with socket.create_connection(("127.0.0.1", fake.server.server_address[1])) as sock:
            sock.sendall(b"GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n")
            assert wait_until(lambda: len(fake.state.calls("/api/me")) == 1)
            # Hang up with a reset (linger 0) while the fake waits to answer: its write fails.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert wait_until(lambda: fake.clients_gone == 1)
    finally:
        fake.stop()
    assert fake.errors == []


def test_a_held_answer_keeps_its_connection_until_released() -> None:
    fake = FakePanoptes().start()
    fake.state.stall = True
    results: list[httpx.Response | Exception] = []

    def ask() -> None:
        try:
            results.append(httpx.get(f"{fake.url}/api/me", timeout=0.5))
        except httpx.HTTPError as error:
            results.append(error)

    askers = [threading.Thread(target=ask) for _ in range(3)]
    try:
        for asker in askers:
            asker.start()
        assert wait_until(lambda: fake.state.stalled == 3), f"{fake.state.stalled} held"
        # Past the clients' read timeout: the bytes trickling in keep them waiting.
        time.sleep(1.0)
        assert results == []
        assert fake.state.in_flight == 3
        fake.state.release.set()
        for asker in askers:
            asker.join(10)
    finally:
        fake.stop()
    # The answer was broken off: its declared body never came.
    assert len(results) == 3
    assert all(isinstance(result, httpx.RemoteProtocolError) for result in results), results
    assert fake.state.max_in_flight == 3 and fake.state.stalled == 0
    assert fake.errors == []

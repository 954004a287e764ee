"""A fake Panoptes API: a real HTTP server on loopback, scripted by the tests.

It serves /api/me, /oauth/token, /api/user_groups/{id} and /api/memberships like Panoptes does,
answers 404 when the versioned Accept header is missing (as Panoptes' router does), and records
every request so tests can count calls and inspect headers. It also counts the requests it is
serving at once, and keeps every exception its own handlers raise (``FakePanoptes.errors``) so
a test can tell a scripted failure from a broken fake.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_ACCEPT = "application/vnd.api+json; version=1"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: str


@dataclass
class PanoptesState:
    users_by_token: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    # (user id, group id) -> roles of an active membership
    memberships: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    inactive: set[tuple[int, int]] = field(default_factory=set)
    client_id: str = "eras-client"
    client_secret: str = "eras-secret"
    app_token_lifetime: int = 7200
    app_tokens_issued: int = 0
    delay_seconds: float = 0.0
    fail_status: int | None = None
    garbage: bool = False
    # Start every answer, then hold it, sending a byte now and then so the client keeps
    # waiting, until ``release`` is set; then break the answer off.
    stall: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    stalled: int = 0  # answers being held now
    in_flight: int = 0  # connections being served now
    max_in_flight: int = 0
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self, path_prefix: str) -> list[Recorded]:
        with self.lock:
            return [request for request in self.requests if request.path.startswith(path_prefix)]

    def add_user(self, token: str, user_id: int, *, admin: bool = False) -> None:
        self.users_by_token[token] = {
            "id": str(user_id),
            "login": f"user{user_id}",
            "display_name": f"User {user_id}",
            "admin": admin,
        }

    def add_group(self, group_id: int, stats_visibility: str) -> None:
        self.groups[group_id] = {
            "id": str(group_id),
            "name": f"group-{group_id}",
            "display_name": f"Group {group_id}",
            "stats_visibility": stats_visibility,
        }

    def current_app_token(self) -> str:
        return f"app-token-{self.app_tokens_issued}"


class _Handler(BaseHTTPRequestHandler):
    state: PanoptesState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        state = self.state
        with state.lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            super().handle()
        finally:
            with state.lock:
                state.in_flight -= 1

    def _send(self, status: int, body: Any) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _record(self, body: str) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        with self.state.lock:
            self.state.requests.append(
                Recorded(self.command, parts.path, query, dict(self.headers.items()), body)
            )
        return parts.path, query

    def _bearer(self) -> str | None:
        header = self.headers.get("Authorization", "")
        return header[len("Bearer ") :] if header.startswith("Bearer ") else None

    def _hold(self) -> None:
        state = self.state
        with state.lock:
            state.stalled += 1
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            # A byte every 50 ms: far more often than any read timeout the tests set.
            while not state.release.wait(0.05):
                self.wfile.write(b" ")
        finally:
            with state.lock:
                state.stalled -= 1

    def _misbehave(self) -> bool:
        state = self.state
        if state.stall:
            self._hold()
            return True
        if state.delay_seconds:
            time.sleep(state.delay_seconds)
        if state.fail_status is not None:
            self._send(state.fail_status, {"errors": [{"message": "scripted failure"}]})
            return True
        if state.garbage:
            self._send(200, b"<html>not json</html>")
            return True
        return False

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        path, _ = self._record(body)
        if self._misbehave():
            return
        if path != "/oauth/token":
            self._send(404, {"errors": [{"message": "not found"}]})
            return
        form = {key: values[0] for key, values in parse_qs(body).items()}
        state = self.state
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != state.client_id
            or form.get("client_secret") != state.client_secret
        ):
            self._send(401, {"error": "invalid_client"})
            return
        with state.lock:
            state.app_tokens_issued += 1
            token = state.current_app_token()
        self._send(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": state.app_token_lifetime,
                "created_at": int(time.time()),
            },
        )

    def do_GET(self) -> None:
        path, query = self._record("")
        if self._misbehave():
            return
        if self.headers.get("Accept") != API_ACCEPT:
            self._send(404, {"errors": [{"message": "no route without the versioned Accept"}]})
            return
        state = self.state
        token = self._bearer()
        if path == "/api/me":
            user = state.users_by_token.get(token or "")
            if user is None:
                self._send(401, {"errors": [{"message": "not logged in"}]})
            else:
                self._send(200, {"users": [user]})
            return
        if path.startswith("/api/user_groups/"):
            if token != state.current_app_token():
                self._send(401, {"errors": [{"message": "application token required"}]})
                return
            group = state.groups.get(int(path.rsplit("/", 1)[1]))
            if group is None:
                self._send(404, {"errors": [{"message": "Could not find user_group"}]})
            else:
                self._send(200, {"user_groups": [group]})
            return
        if path == "/api/memberships":
            user = state.users_by_token.get(token or "")
            if user is None:
                self._send(401, {"errors": [{"message": "not logged in"}]})
                return
            user_id = int(query.get("user_id", ["0"])[0])
            group_id = int(query.get("user_group_id", ["0"])[0])
            roles = state.memberships.get((user_id, group_id))
            memberships = []
            if roles is not None and user_id == int(user["id"]):
                memberships.append(
                    {
                        "id": f"{user_id}{group_id}",
                        "state": "inactive" if (user_id, group_id) in state.inactive else "active",
                        "roles": roles,
                        "links": {"user": str(user_id), "user_group": str(group_id)},
                    }
                )
            self._send(200, {"memberships": memberships})
            return
        self._send(404, {"errors": [{"message": "not found"}]})


# A client that gave up (a timeout test) closes the socket mid-answer: expected here.
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        super().__init__(address, handler)
        self.errors: list[str] = []
        self.clients_gone = 0
        self._errors_lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        # Called inside the ``except`` around the handler, so the exception is the current one.
        error = sys.exc_info()[1]
        with self._errors_lock:
            if isinstance(error, CLIENT_GONE):
                self.clients_gone += 1
            else:
                self.errors.append(traceback.format_exc())


class FakePanoptes:
    def __init__(self) -> None:
        self.state = PanoptesState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def errors(self) -> list[str]:
        """Tracebacks of the exceptions raised by the fake's own handlers."""
        return self.server.errors

    @property
    def clients_gone(self) -> int:
        """Answers cut short because the client closed the connection."""
        return self.server.clients_gone

    def start(self) -> FakePanoptes:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.release.set()  # no answer stays held past the test
        self.server.shutdown()
        self.server.server_close()

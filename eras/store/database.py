"""The engine and the two transaction shapes the service uses: read and write."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from eras.store.backend import Backend, backend_for

T = TypeVar("T")


class Database:
    """One engine and its backend; hands out connections inside transactions."""

    def __init__(self, url: str, *, pool_size: int = 10, sqlite_busy_timeout_ms: int = 60_000):
        self.url = url
        self.backend: Backend = backend_for(url, sqlite_busy_timeout_ms=sqlite_busy_timeout_ms)
        self.engine = self.backend.create_engine(url, pool_size=pool_size)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: every statement inside sees the same snapshot."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed when the block exits without an exception."""
        with self.backend.write_lock(), self.engine.connect() as connection:
            connection = self.backend.for_writing(connection)
            with connection.begin():
                yield connection

    def run_write(self, work: Callable[[Connection], T], *, attempts: int = 5) -> T:
        """Run ``work`` in a write transaction, retrying it whole after a deadlock."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as connection:
                    return work(connection)
            except DBAPIError as error:
                if attempt == attempts or not self.backend.is_retryable(error):
                    raise
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()

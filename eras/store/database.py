"""The engine, the two transaction shapes the service uses (read and write), and the reader
that answers the read routes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from eras.store.backend import Backend, backend_for
from eras.store.reads import Plan

T = TypeVar("T")


class Database:
    """One engine and its backend; hands out connections inside transactions."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        sqlite_busy_timeout_ms: int = 60_000,
        bulk: bool = False,
    ):
        self.url = url
        self.backend: Backend = backend_for(
            url, sqlite_busy_timeout_ms=sqlite_busy_timeout_ms, bulk=bulk
        )
        self.engine = self.backend.create_engine(url, pool_size=pool_size)
        self.reader = self.backend.create_reader(url, self.engine, pool_size=pool_size)

    async def answer(self, plan: Plan[T]) -> T:
        """Run the reads of ``plan`` in one snapshot and make its answer from their rows."""
        return plan.answer(await self.reader.fetch(plan.reads))

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

    async def aclose(self) -> None:
        await self.reader.aclose()
        self.engine.dispose()

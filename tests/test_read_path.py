"""The read path: the reads of one answer see one snapshot of the database, on both backends,
even when a write commits between them."""

from __future__ import annotations

import asyncio
import threading
import time

from sqlalchemy import text

from eras.store.database import Database
from eras.store.reads import Read, Shape

# A first read that takes its snapshot, then keeps the database busy for about half a second.
SLOW_COUNT = {
    "postgresql": "SELECT count(*), pg_sleep(0.5) FROM snapshot_probe",
    "sqlite": (
        "SELECT (SELECT count(*) FROM snapshot_probe),"
        " (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000)"
        " SELECT count(*) FROM n)"
    ),
}
COUNT = "SELECT count(*) FROM snapshot_probe"


def _read(sql: str) -> Read:
    return Read(Shape(sql=sql, defaults={}, make_row=tuple))


async def test_the_reads_of_one_answer_share_a_snapshot(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.write() as connection:
            connection.execute(text("CREATE TABLE snapshot_probe (x INTEGER)"))
            connection.execute(text("INSERT INTO snapshot_probe VALUES (1)"))
        committed = threading.Event()

        def write_meanwhile() -> None:
            time.sleep(0.15)
            with database.write() as connection:
                connection.execute(text("INSERT INTO snapshot_probe VALUES (2)"))
            committed.set()

        writer = asyncio.create_task(asyncio.to_thread(write_meanwhile))
        started = time.perf_counter()
        slow, after = await database.reader.fetch(
            [_read(SLOW_COUNT[database.backend.name]), _read(COUNT)]
        )
        took = time.perf_counter() - started
        await writer
        # The write committed while the first read ran, before the second one began ...
        assert committed.is_set()
        assert took > 0.3, f"the first read took {took:.2f} s: too fast to overlap the write"
        # ... and neither read saw it; a read that starts now does.
        assert slow[0][0] == 1
        assert after == [(1,)]
        assert await database.reader.fetch([_read(COUNT)]) == [[(2,)]]
    finally:
        await database.reader.aclose()
        database.dispose()


# About a third of a second of SQLite's work, reading nothing.
SLOW_SQLITE = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000)"
    " SELECT count(*) FROM n"
)


async def test_sqlite_reads_a_short_plan_on_the_event_loop(tmp_path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'eras.db'}")
    try:
        with database.write() as connection:
            connection.execute(text("CREATE TABLE snapshot_probe (x INTEGER)"))
            connection.execute(text("INSERT INTO snapshot_probe VALUES (1), (2)"))
        loop_thread = threading.get_ident()
        reads = [_read(COUNT), _read("SELECT max(x) FROM snapshot_probe")]
        for _ in range(20):
            assert await database.reader.fetch(reads) == [[(2,)], [(2,)]]
        assert database.reader.moved_to_thread == 0  # type: ignore[attr-defined]
        assert threading.get_ident() == loop_thread
    finally:
        await database.reader.aclose()
        database.dispose()


async def test_sqlite_moves_a_long_plan_off_the_event_loop(tmp_path) -> None:
    """The other requests of the worker wait for a long read at most its deadline, not for the
    whole read: the read is run again in a worker thread, with the same answer."""
    database = Database(f"sqlite:///{tmp_path / 'eras.db'}")
    try:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        rows = await database.reader.fetch([_read(SLOW_SQLITE), _read("SELECT 7")])
        took = time.perf_counter() - started
        done.set()
        await ticking
        assert rows == [[(3000000,)], [(7,)]]
        assert database.reader.moved_to_thread == 1  # type: ignore[attr-defined]
        assert took > 0.1, f"the read took {took:.3f} s: too fast to tell"
        # Run on the event loop, the read would have held it for the whole of `took`.
        assert max(gaps) < took / 2, f"the event loop stalled {max(gaps):.3f} s of {took:.3f} s"
        # The event loop's connection still serves the next short read.
        assert await database.reader.fetch([_read("SELECT 8")]) == [[(8,)]]
        assert database.reader.moved_to_thread == 1  # type: ignore[attr-defined]
    finally:
        await database.reader.aclose()
        database.dispose()

"""The read path: the reads of one answer see one snapshot of the database, on both backends,
even when a write commits between them."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from sqlalchemy import text

from eras.store.backend import sqlite as sqlite_backend
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
        assert database.reader.sent_to_thread == 1  # type: ignore[attr-defined]
    finally:
        await database.reader.aclose()
        database.dispose()


async def test_sqlite_sends_a_plan_that_outran_its_deadline_straight_to_a_thread(
    tmp_path,
) -> None:
    """Only the first run of a long plan pays the deadline on the event loop; the same plan
    with other values is tried on the event loop again."""
    database = Database(f"sqlite:///{tmp_path / 'eras.db'}")
    reader: Any = database.reader
    try:
        slow = Shape(sql=SLOW_SQLITE + " WHERE :n > 0", defaults={}, make_row=tuple)
        assert await reader.fetch([Read(slow, {"n": 1})]) == [[(3000000,)]]
        assert (reader.moved_to_thread, reader.sent_to_thread) == (1, 1)
        assert await reader.fetch([Read(slow, {"n": 1})]) == [[(3000000,)]]
        # Straight to a worker thread: not tried on the event loop, so not moved again.
        assert (reader.moved_to_thread, reader.sent_to_thread) == (1, 2)
        # Other values are another plan (a short one here): read on the event loop.
        assert await reader.fetch([Read(slow, {"n": 0})]) == [[(0,)]]
        assert (reader.moved_to_thread, reader.sent_to_thread) == (1, 2)
    finally:
        await database.reader.aclose()
        database.dispose()


async def test_sqlite_counts_the_deadline_in_cpu_time_not_the_clock(tmp_path, monkeypatch) -> None:
    """A short read whose thread the system preempts has outrun nothing: it stays on the event
    loop, and is not remembered as slow. Sleeping inside the read stands in for preemption.

    The deadline is widened to 10 ms of CPU, ten times less than the pause: on a shared machine
    the hypervisor's stolen time can count as the thread's own, and the read itself (about
    0.2 ms) must not be taken for slow because of it."""
    monkeypatch.setattr(sqlite_backend, "_INLINE_SECONDS", 0.01)
    database = Database(f"sqlite:///{tmp_path / 'eras.db'}")
    reader: Any = database.reader
    try:
        assert await reader.fetch([_read("SELECT 1")]) == [[(1,)]]
        reader._inline.driver_connection.create_function("pause", 0, lambda: time.sleep(0.1))
        paused = _read(
            "SELECT pause(), (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n"
            " WHERE x < 1000) SELECT count(*) FROM n)"
        )
        assert await reader.fetch([paused]) == [[(None, 1000)]]
        assert (reader.moved_to_thread, reader.sent_to_thread) == (0, 0)
    finally:
        await database.reader.aclose()
        database.dispose()


# Rows of several types, in a stated order.
TYPED = {
    "postgresql": (
        "SELECT x, CAST('2024-01-0' || x AS DATE) AS day, CAST(x AS BIGINT) * 10000000000 AS big,"
        " 'a' || x AS label, CAST(NULL AS TIMESTAMP) AS nothing,"
        " CAST('2024-11-28 10:11:12.345' AS TIMESTAMP) + x * INTERVAL '1 day' AS moment"
        " FROM generate_series(1, 9) AS x ORDER BY x DESC"
    ),
    "sqlite": (
        "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 9)"
        " SELECT x, '2024-01-0' || x, x * 10000000000, 'a' || x, NULL,"
        " datetime('2024-11-28 10:11:12.345', '+' || x || ' days') FROM s ORDER BY x DESC"
    ),
}
NONE_FOUND = "SELECT 1 WHERE 1 = 0"
# The same name in two reads, with a value of each read's own, and twice in one read.
SUMMED = {
    "postgresql": "SELECT %(a)s::int + %(b)s::int + %(a)s::int, 7 %% 3",
    "sqlite": "SELECT :a + :b + :a, 7 % 3",
}


async def test_several_reads_come_back_as_each_alone(database_url: str) -> None:
    database = Database(database_url)
    try:
        kind = database.backend.name
        typed, none_found = _read(TYPED[kind]), _read(NONE_FOUND)
        summed = Shape(sql=SUMMED[kind], defaults={"b": 100}, make_row=tuple)
        alone = [await database.reader.fetch([read]) for read in (typed, none_found)]
        together = await database.reader.fetch(
            [typed, Read(summed, {"a": 1}), none_found, typed, Read(summed, {"a": 20, "b": 3})]
        )
        assert together == [alone[0][0], [(102, 1)], [], alone[0][0], [(43, 1)]]
        assert [row[0] for row in together[0]] == list(range(9, 0, -1))
        assert together[0][0][2] == 90000000000 and together[0][0][4] is None
    finally:
        await database.reader.aclose()
        database.dispose()


async def test_a_cancelled_read_leaves_no_connection_behind(postgres_url: str) -> None:
    """A request cancelled mid-statement (its client went away) must not hand the next request
    a connection still busy with the old statement."""
    database = Database(postgres_url, pool_size=1)
    try:
        slow = asyncio.create_task(database.reader.fetch([_read("SELECT pg_sleep(5) IS NULL")]))
        await asyncio.sleep(0.3)
        slow.cancel()
        started = time.perf_counter()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        assert await database.reader.fetch([_read("SELECT 41 + 1")]) == [[(42,)]]
        assert time.perf_counter() - started < 2, "the next read waited for the cancelled one"
    finally:
        await database.reader.aclose()
        database.dispose()

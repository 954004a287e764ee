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

"""SQLite's writers: a queue across processes, and the log copied outside the write.

SQLite alone: PostgreSQL's writers meet on row locks and it has no log to checkpoint, so there
is nothing of this on its side to test.

- A writer that finds another process writing waits in the queue (an ``flock`` of the file
  beside the database) rather than in SQLite's busy handler, and writes as soon as it is let
  through; readers are never held up by it.
- A process forked from one that has used the queue queues apart from its parent.
- The pages a write adds to the log are copied into the database file after the write, with no
  reader or other writer to do it (SQLite by default copies them inside the commit that takes
  the log past 1,000 pages, so a small write would leave them in the log); a database removed
  meanwhile is not created again by the checkpoint.
- A long log is begun again (``RESTART``, in the writers' queue) once, not again before a
  writer has begun it anew.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eras.store.backend import sqlite as sqlite_backend
from eras.store.backend.sqlite import Checkpointer, WritersQueue
from eras.store.database import Database
from eras.store.migrate import migrate
from tests.conftest import client_for, make_settings
from tests.factories import classification, post_events


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    path = tmp_path / "eras.db"
    database = Database(f"sqlite:///{path}")
    migrate(database)
    database.dispose()
    return path


def _hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another process holding the writers' queue until told to let go on its stdin."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            f"descriptor = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(descriptor, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


async def test_a_writer_waits_for_another_process_in_the_queue_then_writes(
    database_path: Path,
) -> None:
    holder = _hold_lock(Path(f"{database_path}-writers"))
    try:
        async with client_for(make_settings(f"sqlite:///{database_path}")) as client:
            write = asyncio.ensure_future(post_events(client, [classification(1)]))
            # SQLite's own lock is free: only the queue keeps this writer back.
            done, _pending = await asyncio.wait({write}, timeout=1.5)
            assert not done
            # Readers do not queue.
            response = await client.get("/classifications")
            assert response.json() == {"total_count": 0}

            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert (await asyncio.wait_for(write, timeout=30))["inserted"] == 1
            response = await client.get("/classifications")
            assert response.json() == {"total_count": 1}
    finally:
        holder.kill()
        holder.wait()


def _queue_in_child(
    queue: WritersQueue, go: multiprocessing.synchronize.Event, got: multiprocessing.Queue[str]
) -> None:
    go.wait()
    with queue.held():
        got.put("held")


def test_a_forked_process_queues_apart_from_its_parent(tmp_path: Path) -> None:
    queue = WritersQueue(str(tmp_path / "eras.db-writers"))
    with queue.held():
        pass  # the parent's descriptor is open when the child is forked
    context = multiprocessing.get_context("fork")
    go, got = context.Event(), context.Queue()
    child = context.Process(target=_queue_in_child, args=(queue, go, got))
    child.start()
    try:
        with queue.held():
            go.set()
            # Sharing the parent's descriptor, the child would share its lock and get through.
            time.sleep(1.0)
            assert got.empty()
        assert got.get(timeout=30) == "held"
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0


def _uncopied_frames(database_path: Path) -> tuple[int, int]:
    """The log's frames and how many of them are not yet copied into the database file, read
    from the shared-memory index (its header: ``mxFrame`` at byte 16, ``nBackfill`` at 96,
    sqlite.org/walformat.html) without checkpointing anything."""
    header = Path(f"{database_path}-shm").read_bytes()[:100]
    frames = struct.unpack_from("=I", header, 16)[0]
    copied = struct.unpack_from("=I", header, 96)[0]
    return frames, frames - copied


async def test_a_write_is_copied_from_the_log_after_it_commits(database_path: Path) -> None:
    async with client_for(make_settings(f"sqlite:///{database_path}")) as client:
        await post_events(client, [classification(number) for number in range(1, 51)])
        deadline = time.monotonic() + 30
        while True:
            frames, uncopied = _uncopied_frames(database_path)
            if uncopied == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert frames > 0
        assert uncopied == 0
        response = await client.get("/classifications")
        assert response.json() == {"total_count": 50}


def test_a_checkpoint_does_not_create_a_removed_database(tmp_path: Path) -> None:
    path = tmp_path / "removed.db"
    checkpointer = Checkpointer(str(path), WritersQueue(f"{path}-writers"))
    checkpointer.after_write()
    deadline = time.monotonic() + 30
    while checkpointer.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not checkpointer.running
    assert not path.exists()


def _log_writer(path: Path) -> sqlite3.Connection:
    """A connection that writes to the log with SQLite's own checkpoints off; while it is open,
    the log is not removed."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE IF NOT EXISTS filler (data BLOB)")
    return connection


def _write_pages(connection: sqlite3.Connection, pages: int) -> None:
    connection.execute("INSERT INTO filler VALUES (randomblob(?))", (pages * 4096,))


def _settled(checkpointer: Checkpointer, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while checkpointer.running and time.monotonic() < deadline:
        time.sleep(0.01)
    return not checkpointer.running


def test_a_long_log_is_restarted_once_until_a_writer_begins_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "_RESTART_PAGES", 8)
    path = tmp_path / "eras.db"
    writers = WritersQueue(f"{path}-writers")
    checkpointer = Checkpointer(str(path), writers)
    writer = _log_writer(path)
    try:
        _write_pages(writer, 20)
        checkpointer.after_write()  # copies the log, then restarts it in the queue
        assert _settled(checkpointer, 30)
        frames, uncopied = _uncopied_frames(path)
        assert frames > 20
        assert uncopied == 0

        # Nothing written since: the log is as the RESTART left it, and the next writer begins
        # it again anyway, so the checkpoint does not queue behind the writers for another.
        with writers.held():
            checkpointer.after_write()
            assert _settled(checkpointer, 5)

        # A writer has begun a new long log: now the checkpoint queues for a RESTART, behind
        # the writer holding the queue.
        _write_pages(writer, 20)
        assert _uncopied_frames(path)[0] < frames  # begun again
        with writers.held():
            checkpointer.after_write()
            assert not _settled(checkpointer, 1)
        assert _settled(checkpointer, 30)
        assert _uncopied_frames(path)[1] == 0
    finally:
        writer.close()

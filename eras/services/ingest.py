"""Stream events in: a batch of ``POST /kinesis``, or rejected events replayed.

Events are parsed before the write transaction starts: on SQLite it holds the database's only
write lock, so anything done inside it is done by one process of the server at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from eras.domain.events import EventBytes, as_json, parse_event
from eras.domain.records import Classification, Comment, InvalidEvent, Rejection
from eras.domain.summary import IngestSummary
from eras.store.backend import Backend
from eras.store.database import Database
from eras.store.rejections import store_rejections
from eras.store.write import Batch, PreparedBatch, prepare_batch, write_batch


@dataclass(slots=True)
class ParsedEvents:
    """A batch of stream events read into records: everything about it that needs no database."""

    batch: Batch = field(default_factory=Batch)
    rejections: list[Rejection] = field(default_factory=list)
    ignored: int = 0


def parse_events(events: Sequence[EventBytes]) -> ParsedEvents:
    """Parse ``events``; a bad one is set aside as a rejection, it never sinks the batch."""
    parsed = ParsedEvents()
    classifications, comments = parsed.batch.classifications, parsed.batch.comments
    for event in events:
        try:
            record = parse_event(event)
        except InvalidEvent as error:
            parsed.rejections.append(Rejection(reason=error.reason, event=as_json(event)))
            continue
        if isinstance(record, Classification):
            classifications.append(record)
        elif isinstance(record, Comment):
            comments.append(record)
        else:
            parsed.ignored += 1
    return parsed


def store_events(
    connection: Connection, backend: Backend, parsed: ParsedEvents, batch: PreparedBatch
) -> IngestSummary:
    """Store parsed events (``batch`` is their records, prepared) and their rejections in the
    caller's transaction."""
    now = datetime.now(UTC).replace(tzinfo=None)
    summary = write_batch(connection, backend, batch, now=now)
    store_rejections(connection, backend, parsed.rejections, now=now)
    summary.ignored = parsed.ignored
    summary.rejected = len(parsed.rejections)
    return summary


def ingest_events(database: Database, events: Sequence[EventBytes]) -> IngestSummary:
    """Parse and store one batch of stream events in one transaction of its own."""
    parsed = parse_events(events)
    batch = prepare_batch(database.backend, parsed.batch)
    return database.run_write(
        lambda connection: store_events(connection, database.backend, parsed, batch)
    )

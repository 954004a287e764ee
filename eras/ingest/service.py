"""Ingest a batch of stream events inside a transaction owned by the caller."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import Connection

from eras.ingest.events import (
    Classification,
    Comment,
    Deltas,
    EventRejected,
    Ignored,
    first_per_key,
    latest_per_key,
    parse_event,
)
from eras.store.dialect import Dialect
from eras.store.ingest import (
    Rejection,
    apply_deltas,
    store_classifications,
    store_comments,
    store_rejections,
)


@dataclass(slots=True)
class IngestSummary:
    """What happened to each event of a batch; the counts add up to the batch size."""

    inserted: int = 0
    duplicates: int = 0
    updated: int = 0
    ignored: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def rejection_for(event: object, reason: str) -> Rejection:
    payload = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    return Rejection(
        payload=payload.decode(),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        reason=reason,
    )


def ingest_events(
    connection: Connection, dialect: Dialect, events: Sequence[object]
) -> IngestSummary:
    """Parse, store and count ``events``. A bad event is set aside; it never sinks the batch."""
    now = datetime.now(UTC).replace(tzinfo=None)
    summary = IngestSummary()
    classifications: list[Classification] = []
    comments: list[Comment] = []
    rejections: list[Rejection] = []
    for event in events:
        try:
            parsed = parse_event(event)
        except EventRejected as error:
            rejections.append(rejection_for(event, error.reason))
            continue
        if isinstance(parsed, Classification):
            classifications.append(parsed)
        elif isinstance(parsed, Comment):
            comments.append(parsed)
        else:
            assert isinstance(parsed, Ignored)
            summary.ignored += 1
    summary.rejected = len(rejections)

    distinct_classifications = latest_per_key(classifications)
    distinct_comments = first_per_key(comments)
    repeats_in_batch = (len(classifications) - len(distinct_classifications)) + (
        len(comments) - len(distinct_comments)
    )

    deltas: Deltas = {}
    stored = [
        store_classifications(connection, dialect, distinct_classifications, deltas, now=now),
        store_comments(connection, dialect, distinct_comments, deltas, now=now),
    ]
    store_rejections(connection, dialect, rejections, now=now)
    apply_deltas(connection, dialect, deltas)

    summary.inserted = sum(outcome.inserted for outcome in stored)
    summary.updated = sum(outcome.updated for outcome in stored)
    summary.duplicates = repeats_in_batch + sum(outcome.duplicates for outcome in stored)
    return summary

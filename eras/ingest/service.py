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
    delete_rejections,
    list_rejections,
    store_classifications,
    store_comments,
    store_rejections,
    update_rejection_reasons,
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

    def add(self, other: IngestSummary) -> None:
        for name, value in other.as_dict().items():
            setattr(self, name, getattr(self, name) + value)


def rejection_for(event: object, reason: str) -> Rejection:
    payload = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    return Rejection(
        payload=payload.decode(),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """A batch of events read into records: everything about it that needs no database."""

    classifications: list[Classification]  # distinct keys, in key order
    comments: list[Comment]  # distinct keys, in key order
    rejections: list[Rejection]
    ignored: int
    repeats_in_batch: int


def parse_batch(events: Sequence[object]) -> ParsedBatch:
    """Parse ``events``, set bad ones aside and collapse repeats inside the batch."""
    classifications: list[Classification] = []
    comments: list[Comment] = []
    rejections: list[Rejection] = []
    ignored = 0
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
            ignored += 1

    distinct_classifications = latest_per_key(classifications)
    distinct_comments = first_per_key(comments)
    return ParsedBatch(
        classifications=distinct_classifications,
        comments=distinct_comments,
        rejections=rejections,
        ignored=ignored,
        repeats_in_batch=(len(classifications) - len(distinct_classifications))
        + (len(comments) - len(distinct_comments)),
    )


def store_batch(connection: Connection, dialect: Dialect, batch: ParsedBatch) -> IngestSummary:
    """Store a parsed batch and apply its rollup changes; safe to run again after a rollback."""
    now = datetime.now(UTC).replace(tzinfo=None)
    deltas: Deltas = {}
    stored = [
        store_classifications(connection, dialect, batch.classifications, deltas, now=now),
        store_comments(connection, dialect, batch.comments, deltas, now=now),
    ]
    store_rejections(connection, dialect, batch.rejections, now=now)
    apply_deltas(connection, dialect, deltas)

    return IngestSummary(
        inserted=sum(outcome.inserted for outcome in stored),
        duplicates=batch.repeats_in_batch + sum(outcome.duplicates for outcome in stored),
        updated=sum(outcome.updated for outcome in stored),
        ignored=batch.ignored,
        rejected=len(batch.rejections),
    )


def ingest_events(
    connection: Connection, dialect: Dialect, events: Sequence[object]
) -> IngestSummary:
    """Parse, store and count ``events``. A bad event is set aside; it never sinks the batch."""
    return store_batch(connection, dialect, parse_batch(events))


@dataclass(slots=True)
class ReplaySummary:
    """Replayed events went through ingest; the others stay rejected, with a fresh reason."""

    replayed: IngestSummary
    still_rejected: int = 0


def replay_rejections(
    connection: Connection, *, dialect: Dialect, after_id: int = 0, limit: int = 500
) -> tuple[ReplaySummary, int | None]:
    """Re-run one page of rejected events through today's parser.

    Returns the summary and the id to continue after, or ``None`` when the table is exhausted.
    """
    page = list_rejections(connection, after_id=after_id, limit=limit)
    events: list[object] = []
    accepted_ids: list[int] = []
    reasons: dict[int, str] = {}
    for rejection in page:
        event = orjson.loads(rejection.payload)
        try:
            parse_event(event)
        except EventRejected as error:
            if error.reason != rejection.reason:
                reasons[rejection.id] = error.reason
            continue
        events.append(event)
        accepted_ids.append(rejection.id)
    delete_rejections(connection, accepted_ids)
    update_rejection_reasons(connection, reasons)
    summary = ReplaySummary(
        replayed=ingest_events(connection, dialect, events),
        still_rejected=len(page) - len(accepted_ids),
    )
    next_after = page[-1].id if len(page) == limit else None
    return summary, next_after

"""``eras rejected``: look at the events ingest set aside, and replay those that parse now."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Connection

from eras.domain.events import parse_event
from eras.domain.records import InvalidEvent
from eras.domain.summary import IngestSummary
from eras.services.ingest import parse_events, store_events
from eras.store.backend import Backend
from eras.store.database import Database
from eras.store.rejections import (
    StoredRejection,
    delete_rejections,
    list_rejections,
    update_rejection_reasons,
)
from eras.store.write import prepare_batch

PAGE = 500


@dataclass(slots=True)
class ReplaySummary:
    """Replayed events went through ingest; the others stay rejected, with a fresh reason."""

    replayed: IngestSummary = field(default_factory=IngestSummary)
    still_rejected: int = 0


def _replay_page(
    connection: Connection, backend: Backend, page: list[StoredRejection]
) -> ReplaySummary:
    events: list[bytes] = []
    accepted: list[int] = []
    reasons: dict[int, str] = {}
    for rejection in page:
        payload = rejection.payload.encode()
        try:
            parse_event(payload)
        except InvalidEvent as error:
            if error.reason != rejection.reason:
                reasons[rejection.id] = error.reason
            continue
        events.append(payload)
        accepted.append(rejection.id)
    delete_rejections(connection, accepted)
    update_rejection_reasons(connection, reasons)
    parsed = parse_events(events)
    return ReplaySummary(
        replayed=store_events(connection, backend, parsed, prepare_batch(backend, parsed.batch)),
        still_rejected=len(page) - len(accepted),
    )


def _replay_after(
    connection: Connection, backend: Backend, after_id: int
) -> tuple[ReplaySummary, int | None]:
    """One page of rejected events; returns the id to continue after, ``None`` at the end."""
    page = list_rejections(connection, after_id=after_id, limit=PAGE)
    next_after = page[-1].id if len(page) == PAGE else None
    return _replay_page(connection, backend, page), next_after


def replay_rejections(database: Database) -> ReplaySummary:
    """Every rejected event through today's parser, a page per transaction."""
    total = ReplaySummary()
    after_id: int | None = 0
    while after_id is not None:
        summary, after_id = database.run_write(
            partial(_replay_after, backend=database.backend, after_id=after_id)
        )
        total.replayed += summary.replayed
        total.still_rejected += summary.still_rejected
    return total


def rejected_events(database: Database, *, limit: int) -> list[StoredRejection]:
    with database.read() as connection:
        return list_rejections(connection, limit=limit)

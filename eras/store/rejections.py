"""Events ``POST /kinesis`` could not store, kept in ``rejected_events`` for inspection and
replay."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Connection, bindparam, delete, select, update

from eras.domain.records import Rejection
from eras.store.backend import Backend
from eras.store.schema import rejected_events

# Keeps every statement's bound parameters well under SQLite's limit of 32,766 variables.
_SLICE = 500


def payload_text(event: object) -> str:
    """The event as JSON with sorted keys, so a re-delivered event hashes the same."""
    try:
        return orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # an integer beyond 64 bits, which only the standard library writes
        return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def store_rejections(
    connection: Connection, backend: Backend, rejections: Sequence[Rejection], *, now: datetime
) -> None:
    """Keep each rejected event once, however often the stream re-delivers it."""
    if not rejections:
        return
    rows = []
    for rejection in rejections:
        payload = payload_text(rejection.event)
        rows.append(
            {
                "payload_sha256": hashlib.sha256(payload.encode()).hexdigest(),
                "received_at": now,
                "reason": rejection.reason,
                "payload": payload,
            }
        )
    connection.execute(backend.insert(rejected_events).on_conflict_do_nothing(), rows)


@dataclass(frozen=True, slots=True)
class StoredRejection:
    id: int
    received_at: datetime
    reason: str
    payload: str


def list_rejections(
    connection: Connection, *, after_id: int = 0, limit: int = 100
) -> list[StoredRejection]:
    """Rejected events in arrival order, a page at a time."""
    table = rejected_events
    rows = connection.execute(
        select(table.c.id, table.c.received_at, table.c.reason, table.c.payload)
        .where(table.c.id > after_id)
        .order_by(table.c.id)
        .limit(limit)
    )
    return [
        StoredRejection(
            id=row.id, received_at=row.received_at, reason=row.reason, payload=row.payload
        )
        for row in rows
    ]


def delete_rejections(connection: Connection, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), _SLICE):
        part = ids[start : start + _SLICE]
        connection.execute(delete(rejected_events).where(rejected_events.c.id.in_(part)))


def update_rejection_reasons(connection: Connection, reasons: dict[int, str]) -> None:
    if reasons:
        connection.execute(
            update(rejected_events)
            .where(rejected_events.c.id == bindparam("rejection_id"))
            .values(reason=bindparam("new_reason")),
            [{"rejection_id": key, "new_reason": value} for key, value in reasons.items()],
        )

"""SQL for storing events: idempotent raw inserts, in-place updates, and rollup deltas.

Every function runs inside a transaction the caller owns; none of them commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, and_, bindparam, delete, select, tuple_, update

from eras.ingest.events import (
    Classification,
    ClassificationKey,
    Comment,
    Deltas,
    GroupMembership,
    add_contribution,
    add_contributions,
    group_memberships,
    is_newer,
)
from eras.store.dialect import Dialect
from eras.store.schema import (
    REPLACEABLE_CLASSIFICATION_COLUMNS,
    ROLLUP_TABLES,
    classification_events,
    classification_user_groups,
    comment_events,
    rejected_events,
)

# Keeps every statement's bound parameters well under SQLite's limit of 32,766 variables.
_CHUNK = 500

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(slots=True)
class StoreOutcome:
    inserted: int = 0
    duplicates: int = 0
    updated: int = 0


# --- classifications -----------------------------------------------------------------------


def _classification_row(record: Classification, now: datetime) -> dict[str, Any]:
    return {
        "classification_id": record.classification_id,
        "event_time": record.event_time,
        "classification_updated_at": record.updated_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "project_id": record.project_id,
        "workflow_id": record.workflow_id,
        "user_id": record.user_id,
        "user_group_ids": list(record.user_group_ids)
        if record.user_group_ids is not None
        else None,
        "session_time": record.session_time,
        "already_seen": record.already_seen,
        "created_at": now,
        "updated_at": now,
    }


def _group_rows(memberships: Iterable[GroupMembership], now: datetime) -> list[dict[str, Any]]:
    # Spelled out: dataclasses.asdict deep-copies every value, which costs more than the insert.
    return [
        {
            "classification_id": membership.classification_id,
            "event_time": membership.event_time,
            "user_group_id": membership.user_group_id,
            "session_time": membership.session_time,
            "project_id": membership.project_id,
            "user_id": membership.user_id,
            "workflow_id": membership.workflow_id,
            "created_at": now,
            "updated_at": now,
        }
        for membership in memberships
    ]


# Built INSERT statements by dialect, table, columns, conflict clause and returned columns.
# Building one, and working out its cache key, costs more than SQLite takes to run it.
_INSERTS: dict[tuple[str, Table, tuple[str, ...], Callable[[Any], Any], tuple[str, ...]], Any] = {}


def _insert_rows(
    connection: Connection,
    dialect: Dialect,
    table: Table,
    rows: Sequence[dict[str, Any]],
    on_conflict: Callable[[Any], Any],
    returning: Sequence[Any] = (),
) -> list[Any]:
    """INSERT ``rows`` (all with the same keys) in order.

    ``on_conflict``, a module-level function so that the statement can be kept, adds the
    ON CONFLICT clause to the dialect's INSERT; ``returning`` columns come back for the rows
    actually written.
    """
    if not rows:
        return []
    columns = tuple(rows[0])
    cache_key = (dialect.name, table, columns, on_conflict, tuple(c.name for c in returning))
    statement = _INSERTS.get(cache_key)
    if statement is None:
        source = dialect.rows_source(table, columns)
        insert = dialect.insert(table)
        statement = on_conflict(insert if source is None else insert.from_select(columns, source))
        if returning:
            statement = statement.returning(*returning)
        _INSERTS[cache_key] = statement
    parameters: Any = (
        rows if statement.select is None else dialect.rows_parameters(table, columns, rows)
    )
    result = connection.execute(statement, parameters)
    return list(result) if returning else []


def _do_nothing(statement: Any) -> Any:
    return statement.on_conflict_do_nothing()


def _add_to_existing(statement: Any) -> Any:
    table = statement.table
    increments = {"count": table.c.count + statement.excluded.count}
    if "session_ms" in table.c:
        increments["session_ms"] = table.c.session_ms + statement.excluded.session_ms
    return statement.on_conflict_do_update(
        index_elements=table.primary_key.columns, set_=increments
    )


def _insert_new(
    connection: Connection, dialect: Dialect, table: Table, rows: list[dict[str, Any]], key: Any
) -> set[tuple[Any, ...]]:
    """Insert rows whose key is not stored yet; return the keys that were actually inserted."""
    written = _insert_rows(connection, dialect, table, rows, _do_nothing, returning=key)
    return {tuple(row) for row in written}


@dataclass(frozen=True, slots=True)
class _Stored:
    classification: Classification
    memberships: list[GroupMembership]


def _load_stored(
    connection: Connection, keys: Sequence[ClassificationKey]
) -> dict[ClassificationKey, _Stored]:
    """The stored versions of ``keys`` and their group rows, locked until commit."""
    table, groups = classification_events, classification_user_groups
    stored: dict[ClassificationKey, Classification] = {}
    memberships: dict[ClassificationKey, list[GroupMembership]] = defaultdict(list)
    membership_columns = [groups.c[field.name] for field in fields(GroupMembership)]
    for chunk in _chunks(keys):
        wanted = tuple_(table.c.classification_id, table.c.event_time).in_(chunk)
        rows = connection.execute(
            select(table)
            .where(wanted)
            .order_by(table.c.classification_id, table.c.event_time)
            .with_for_update()
        )
        for row in rows:
            stored[(row.classification_id, row.event_time)] = _row_to_classification(row)
        group_rows = connection.execute(
            select(*membership_columns).where(
                tuple_(groups.c.classification_id, groups.c.event_time).in_(chunk)
            )
        )
        for group_row in group_rows:
            membership = GroupMembership(*group_row)
            memberships[(membership.classification_id, membership.event_time)].append(membership)
    return {key: _Stored(record, memberships.get(key, [])) for key, record in stored.items()}


def _row_to_classification(row: Any) -> Classification:
    return Classification(
        classification_id=row.classification_id,
        event_time=row.event_time,
        updated_at=row.classification_updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        project_id=row.project_id,
        workflow_id=row.workflow_id,
        user_id=row.user_id,
        user_group_ids=tuple(row.user_group_ids) if row.user_group_ids is not None else None,
        session_time=row.session_time,
        already_seen=row.already_seen,
    )


def _replace_stored(
    connection: Connection, records: Sequence[Classification], deltas: Deltas, now: datetime
) -> None:
    """Overwrite stored classifications and replace their group rows, crediting the new ones."""
    table, groups = classification_events, classification_user_groups
    key_matches = and_(
        table.c.classification_id == bindparam("key_id"),
        table.c.event_time == bindparam("key_time"),
    )
    values: dict[str, Any] = {
        name: bindparam(name) for name in (*REPLACEABLE_CLASSIFICATION_COLUMNS, "updated_at")
    }
    rows = []
    for record in records:
        row = _classification_row(record, now)
        del row["created_at"], row["classification_id"], row["event_time"]
        row["key_id"], row["key_time"] = record.key
        rows.append(row)
    connection.execute(update(table).where(key_matches).values(values), rows)
    for chunk in _chunks([record.key for record in records]):
        connection.execute(
            delete(groups).where(tuple_(groups.c.classification_id, groups.c.event_time).in_(chunk))
        )
    memberships = [membership for record in records for membership in group_memberships(record)]
    if memberships:
        connection.execute(groups.insert(), _group_rows(memberships, now))
    add_contributions(deltas, memberships)


def _insert_memberships(
    connection: Connection,
    dialect: Dialect,
    records: Sequence[Classification],
    deltas: Deltas,
    now: datetime,
) -> None:
    """Group rows of new classifications; only rows actually inserted are credited.

    A group row can exist before its classification when the original service's tables were
    loaded in pieces; it was counted when it was loaded.
    """
    memberships = [membership for record in records for membership in group_memberships(record)]
    if not memberships:
        return
    groups = classification_user_groups
    inserted = _insert_new(
        connection,
        dialect,
        groups,
        _group_rows(memberships, now),
        (groups.c.classification_id, groups.c.event_time, groups.c.user_group_id),
    )
    add_contributions(
        deltas, (membership for membership in memberships if membership.key in inserted)
    )


def store_classifications(
    connection: Connection,
    dialect: Dialect,
    records: Sequence[Classification],
    deltas: Deltas,
    *,
    now: datetime,
) -> StoreOutcome:
    """Store ``records`` (distinct keys, in key order) and add their rollup changes to ``deltas``.

    New keys are inserted and counted. A key already stored is replaced only by a version with
    a later ``updated_at``: what the stored row and its stored group rows counted for is
    withdrawn and the new version's contribution added, so every total reflects the newest
    values exactly once, and equals what a rebuild from the raw tables gives.
    """
    outcome = StoreOutcome()
    if not records:
        return outcome
    table = classification_events
    inserted = _insert_new(
        connection,
        dialect,
        table,
        [_classification_row(record, now) for record in records],
        (table.c.classification_id, table.c.event_time),
    )
    new_records = [record for record in records if record.key in inserted]
    add_contributions(deltas, new_records)
    _insert_memberships(connection, dialect, new_records, deltas, now)
    outcome.inserted = len(new_records)

    repeats = [record for record in records if record.key not in inserted]
    if repeats:
        stored = _load_stored(connection, [record.key for record in repeats])
        replacements = []
        for record in repeats:
            previous = stored[record.key]
            if is_newer(record, previous.classification):
                replacements.append(record)
                add_contribution(deltas, previous.classification, -1)
                for membership in previous.memberships:
                    add_contribution(deltas, membership, -1)
                add_contribution(deltas, record)
        if replacements:
            _replace_stored(connection, replacements, deltas, now)
        outcome.updated = len(replacements)
        outcome.duplicates = len(repeats) - len(replacements)
    return outcome


# --- comments ------------------------------------------------------------------------------


def store_comments(
    connection: Connection,
    dialect: Dialect,
    records: Sequence[Comment],
    deltas: Deltas,
    *,
    now: datetime,
) -> StoreOutcome:
    """Insert comments not seen before; Talk never re-publishes, so repeats are duplicates."""
    if not records:
        return StoreOutcome()
    table = comment_events
    rows = [
        {
            "comment_id": record.comment_id,
            "event_time": record.event_time,
            "comment_updated_at": None,
            "project_id": record.project_id,
            "user_id": record.user_id,
            "created_at": now,
            "updated_at": now,
        }
        for record in records
    ]
    inserted = _insert_new(
        connection, dialect, table, rows, (table.c.comment_id, table.c.event_time)
    )
    add_contributions(deltas, (record for record in records if record.key in inserted))
    return StoreOutcome(inserted=len(inserted), duplicates=len(records) - len(inserted))


# --- rejected events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    payload: str
    payload_sha256: str
    reason: str


def store_rejections(
    connection: Connection, dialect: Dialect, rejections: Sequence[Rejection], *, now: datetime
) -> None:
    if not rejections:
        return
    rows = [
        {
            "payload_sha256": rejection.payload_sha256,
            "received_at": now,
            "reason": rejection.reason,
            "payload": rejection.payload,
        }
        for rejection in rejections
    ]
    _insert_rows(connection, dialect, rejected_events, rows, _do_nothing)


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
    return [StoredRejection(*row) for row in rows]


def delete_rejections(connection: Connection, ids: Sequence[int]) -> None:
    for chunk in _chunks(ids):
        connection.execute(delete(rejected_events).where(rejected_events.c.id.in_(chunk)))


def update_rejection_reasons(connection: Connection, reasons: dict[int, str]) -> None:
    if reasons:
        connection.execute(
            update(rejected_events)
            .where(rejected_events.c.id == bindparam("rejection_id"))
            .values(reason=bindparam("new_reason")),
            [{"rejection_id": key, "new_reason": value} for key, value in reasons.items()],
        )


# --- rollups -------------------------------------------------------------------------------


def _lock_order(name: str) -> tuple[int, str]:
    """Rollups with more dimensions (fewer writers per row) first; the global ones last."""
    return (-len(ROLLUP_TABLES[name].primary_key.columns), name)


def apply_deltas(connection: Connection, dialect: Dialect, deltas: Deltas) -> None:
    """Add ``deltas`` to the rollup tables.

    Tables are visited in a fixed order and keys sorted within each, so two concurrent batches
    lock rollup rows in the same order and cannot deadlock. The order goes from the most
    specific rollups to the global ones: every batch of a day updates the same global row, and
    taking its lock last keeps it held for the shortest time. Rows a withdrawal brings to zero
    are deleted, so a rollup holds exactly the rows a rebuild from raw events would.
    """
    by_table: dict[str, list[tuple[tuple[Any, ...], int, int]]] = defaultdict(list)
    for (name, key), delta in deltas.items():
        if not delta.is_zero():
            by_table[name].append((key, delta.count, delta.session_ms))
    for name in sorted(by_table, key=_lock_order):
        table = ROLLUP_TABLES[name]
        key_columns = [column.name for column in table.primary_key.columns]
        has_session = "session_ms" in table.c
        entries = sorted(by_table[name], key=lambda entry: entry[0])
        rows = []
        for key, count, session_ms in entries:
            row = dict(zip(key_columns, key, strict=True))
            row["count"] = count
            if has_session:
                row["session_ms"] = session_ms
            rows.append(row)
        _insert_rows(connection, dialect, table, rows, _add_to_existing)
        emptied = [key for key, count, _ in entries if count < 0]
        for chunk in _chunks(emptied):
            connection.execute(
                delete(table).where(
                    tuple_(*(table.c[column] for column in key_columns)).in_(chunk),
                    table.c.count <= 0,
                )
            )

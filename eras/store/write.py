"""The one write path. ``POST /kinesis``, ``eras ingest`` and ``eras rejected replay`` all store
their records through :func:`write_batch`, inside a transaction the caller owns.

1. **Stage.** Repeats inside the batch are collapsed (the version that wins, by
   :func:`eras.domain.rules.latest_per_key`; the first copy of a comment or a group row) and
   the rows put in the backend's form (:func:`prepare_batch`, without a database); then the
   backend copies them into temporary staging tables: binary ``COPY`` on PostgreSQL, one
   ``executemany`` on SQLite.
2. **Insert the new ones.** One ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` per raw table
   inserts the staged rows whose key is not stored yet, and marks exactly those ``NEW``.
3. **Find the ones a later version replaces.** The stored versions of the other staged
   classifications are locked (PostgreSQL, in key order) and those with an earlier
   ``updated_at`` than the staged one are marked ``NEWER``. Anything else is a duplicate and
   changes nothing.
4. **Withdraw the old contributions, add the new ones.** What each replaced version and its
   group rows counted for goes into a table of contributions with sign -1, and is overwritten
   by the new version; every row that arrives (a new or newer classification, its group rows,
   a new group row of the original's table, a new comment) goes in with sign +1.
5. **Apply.** Each rollup, at every level (days, months, all-time totals), adds the sums of
   the contributions with one ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE``,
   rollups in the one lock order of the catalogue (:data:`eras.domain.rollups.LOCK_ORDER`) and
   keys in order within each. Rows brought to zero are deleted, and where a withdrawal may
   have taken a row's first or latest time, it is read again.

The raw tables are touched in a fixed order too (classifications, group rows, comments) and
always before any rollup, so two writers, whatever they carry, lock rows in the same order and
queue instead of deadlocking. Nothing is issued per row.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Executable,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from eras.domain.records import Classification, Comment, GroupMembership
from eras.domain.rollups import LOCK_ORDER, Rollup, Source
from eras.domain.rules import (
    first_membership_per_key,
    first_per_key,
    group_memberships,
    latest_per_key,
)
from eras.domain.summary import IngestSummary
from eras.store import staging
from eras.store.backend import Backend
from eras.store.rollups import grouped, period_of, refresh_times
from eras.store.schema import (
    REPLACEABLE_CLASSIFICATION_COLUMNS,
    ROLLUP_TABLES,
    classification_events,
    classification_user_groups,
    comment_events,
)
from eras.store.staging import (
    State,
    classification_deltas,
    comment_deltas,
    group_deltas,
    stage_classifications,
    stage_comments,
    stage_groups,
    stage_memberships,
)

_WRITTEN_IN = "eras_batch_transaction"
_CLASSIFICATION_KEY = ("classification_id", "event_time")
_MEMBERSHIP_KEY = ("classification_id", "event_time", "user_group_id")
_COMMENT_KEY = ("comment_id", "event_time")
_DIMENSIONS = ("user_group_id", "project_id", "workflow_id", "user_id")
_DELTAS = {
    Source.CLASSIFICATIONS: classification_deltas,
    Source.MEMBERSHIPS: group_deltas,
    Source.COMMENTS: comment_deltas,
}


@dataclass(slots=True)
class Batch:
    """Records to store in one transaction.

    ``memberships`` are rows of the original service's ``classification_user_groups`` table;
    the group rows of stream classifications come with the classifications themselves.
    """

    classifications: list[Classification] = field(default_factory=list)
    memberships: list[GroupMembership] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.classifications) + len(self.memberships) + len(self.comments)


def replaces(incoming: ColumnElement[Any], stored: ColumnElement[Any]) -> ColumnElement[bool]:
    """:func:`eras.domain.rules.is_newer` in SQL: only a strictly later ``updated_at`` replaces,
    and a version without one never does."""
    return and_(incoming.is_not(None), or_(stored.is_(None), incoming > stored))


def _same_key(left: Any, right: Any, names: Sequence[str]) -> list[ColumnElement[bool]]:
    return [left.c[name] == right.c[name] for name in names]


# --- staging rows ----------------------------------------------------------------------------


def _classification_row(record: Classification) -> tuple[Any, ...]:
    return (
        record.classification_id,
        record.event_time,
        record.updated_at,
        record.started_at,
        record.finished_at,
        record.project_id,
        record.workflow_id,
        record.user_id,
        record.user_group_ids,
        record.session_time,
        record.already_seen,
        record.group_ids is not None,
    )


def _membership_row(record: GroupMembership) -> tuple[Any, ...]:
    return (
        record.classification_id,
        record.event_time,
        record.user_group_id,
        record.session_time,
        record.project_id,
        record.user_id,
        record.workflow_id,
    )


def _comment_row(record: Comment) -> tuple[Any, ...]:
    return (record.comment_id, record.event_time, record.project_id, record.user_id)


# --- the steps ---------------------------------------------------------------------------
#
# Every statement below is made once per backend and shape (the builders are cached) and run
# through Backend.execute_compiled, which compiles it once: the statements hold no values of a
# batch but the batch's time, bound as ``now`` (_now).


def _now(backend: Backend, now: datetime) -> dict[str, Any]:
    return {"now": backend.time_value(now)}


class _Counted(enum.Enum):
    """Which rows of a source a contribution counts."""

    EVERY = "every row"  # every staged row was inserted
    NEW = "rows marked NEW"
    ARRIVED = "rows marked NEW or NEWER"
    # The stored classifications that the staged NEWER versions replace.
    REPLACED = "replaced versions"
    # The stored group rows of those, where the new version brings group rows of its own.
    REPLACED_GROUPS = "replaced versions' group rows"


def _counted(source: Table, which: _Counted) -> list[ColumnElement[bool]]:
    stage, key = stage_classifications, _CLASSIFICATION_KEY
    if which is _Counted.EVERY:
        return [true()]
    if which is _Counted.NEW:
        return [source.c.state == State.NEW]
    if which is _Counted.ARRIVED:
        return [source.c.state != State.DUPLICATE]
    if which is _Counted.REPLACED:
        return [*_same_key(source, stage, key), stage.c.state == State.NEWER]
    return [*_same_key(source, stage, key), stage.c.state == State.NEWER, stage.c.own_groups]


@dataclass(frozen=True, slots=True)
class _NewRows:
    """What step 2 inserts into a raw table from its staging table."""

    rows: Select[Any]  # in key order
    columns: tuple[str, ...]


@cache
def _new_rows(stage: Table, target: Table, key: tuple[str, ...]) -> _NewRows:
    names = [name for name in staging.staged_columns(stage) if name in target.c]
    stamp = bindparam("now", type_=DateTime)
    rows = select(
        *(stage.c[name] for name in names), stamp.label("created_at"), stamp.label("updated_at")
    ).order_by(*(stage.c[name] for name in key))
    return _NewRows(rows, (*names, "created_at", "updated_at"))


@dataclass(frozen=True, slots=True)
class _Inserted:
    rows: int
    # Which staged rows were just inserted: every one of them when none was stored already
    # (then the backend may leave them unmarked), else those marked NEW.
    counted: _Counted


def _insert_new(
    connection: Connection,
    backend: Backend,
    stage: Table,
    target: Table,
    key: tuple[str, ...],
    staged: int,
    now: datetime,
) -> _Inserted:
    """Step 2 for one raw table: the staged rows whose key is not stored yet."""
    new = _new_rows(stage, target, key)
    inserted = backend.insert_new(
        connection,
        stage=stage,
        target=target,
        key=key,
        rows=new.rows,
        columns=new.columns,
        staged=staged,
        values=_now(backend, now),
    )
    return _Inserted(inserted, _Counted.EVERY if inserted == staged else _Counted.NEW)


@cache
def _contribution(
    backend: Backend, deltas: Table, source: Table, sign: int, which: _Counted
) -> Executable:
    dimensions = [name for name in _DIMENSIONS if name in deltas.c]
    keys = [*(source.c[name] for name in dimensions), backend.day_of(source.c.event_time)]
    factor = literal(sign, BigInteger)
    measures: list[ColumnElement[Any]] = [factor * func.count()]
    columns = [*dimensions, "day", "count"]
    if "session_ms" in deltas.c:
        measures.append(factor * func.sum(backend.session_ms_of(source.c.session_time)))
        measures.extend((func.min(source.c.event_time), func.max(source.c.event_time)))
        columns.extend(("session_ms", "first_at", "last_at"))
    rows = select(*keys, *measures).where(*_counted(source, which)).group_by(*keys)
    return deltas.insert().from_select(columns, rows)


def _contribute(
    connection: Connection,
    backend: Backend,
    deltas: Table,
    source: Table,
    sign: int,
    which: _Counted,
) -> int:
    """Add what the rows of ``source`` that ``which`` names count for to ``deltas``, summed per
    key and day, with ``sign`` +1 for rows that arrive and -1 for rows that leave."""
    return backend.execute_compiled(connection, _contribution(backend, deltas, source, sign, which))


@dataclass(slots=True)
class _Changes:
    """Which contribution tables received rows, and whether any was a withdrawal."""

    sources: set[Source] = field(default_factory=set)
    withdrawn: bool = False

    def note(self, source: Source, rows: int) -> None:
        if rows:
            self.sources.add(source)


@cache
def _stored_duplicates() -> Select[Any]:
    """The stored versions of the staged classifications not inserted, in key order."""
    stage, stored, key = stage_classifications, classification_events, _CLASSIFICATION_KEY
    return (
        select(stored.c.classification_id)
        .where(*_same_key(stored, stage, key), stage.c.state == State.DUPLICATE)
        .order_by(*(stored.c[name] for name in key))
    )


@cache
def _mark_newer() -> Executable:
    stage, stored, key = stage_classifications, classification_events, _CLASSIFICATION_KEY
    later = replaces(stage.c.classification_updated_at, stored.c.classification_updated_at)
    return (
        update(stage)
        .where(
            stage.c.state == State.DUPLICATE, exists().where(*_same_key(stored, stage, key), later)
        )
        .values(state=State.NEWER)
    )


def _write_classifications(
    connection: Connection,
    backend: Backend,
    staged: int,
    changes: _Changes,
    now: datetime,
) -> IngestSummary:
    stage, stored = stage_classifications, classification_events
    inserted = _insert_new(connection, backend, stage, stored, _CLASSIFICATION_KEY, staged, now)
    arrived = inserted.counted
    newer = 0
    if inserted.rows < staged:
        # Step 3. Every staged row is marked now: NEW, NEWER or a DUPLICATE.
        arrived = _Counted.ARRIVED
        backend.lock_stored(connection, _stored_duplicates(), of=stored)
        newer = backend.execute_compiled(connection, _mark_newer())
    if newer:
        _replace(connection, backend, changes, now)
    if inserted.rows or newer:
        added = _contribute(connection, backend, classification_deltas, stage, 1, arrived)
        changes.note(Source.CLASSIFICATIONS, added)
    return IngestSummary(
        inserted=inserted.rows, updated=newer, duplicates=staged - inserted.rows - newer
    )


@cache
def _delete_replaced_groups() -> Executable:
    stage, groups = stage_classifications, classification_user_groups
    replaced_keys = select(stage.c.classification_id, stage.c.event_time).where(
        stage.c.state == State.NEWER, stage.c.own_groups
    )
    return delete(groups).where(
        tuple_(groups.c.classification_id, groups.c.event_time).in_(replaced_keys)
    )


@cache
def _overwrite_replaced() -> Executable:
    stage, stored = stage_classifications, classification_events
    values: dict[str, Any] = {name: stage.c[name] for name in REPLACEABLE_CLASSIFICATION_COLUMNS}
    values["updated_at"] = bindparam("now", type_=DateTime)
    return (
        update(stored)
        .where(*_same_key(stored, stage, _CLASSIFICATION_KEY), stage.c.state == State.NEWER)
        .values(values)
    )


def _replace(connection: Connection, backend: Backend, changes: _Changes, now: datetime) -> None:
    """Step 4 for the stored versions staged NEWER ones replace: withdraw what they counted
    for, and overwrite them."""
    stored, groups = classification_events, classification_user_groups
    changes.withdrawn = True
    withdrawn = _contribute(
        connection, backend, classification_deltas, stored, -1, _Counted.REPLACED
    )
    changes.note(Source.CLASSIFICATIONS, withdrawn)
    # A classification that brings its own group rows replaces the stored ones with them.
    changes.note(
        Source.MEMBERSHIPS,
        _contribute(connection, backend, group_deltas, groups, -1, _Counted.REPLACED_GROUPS),
    )
    backend.execute_compiled(connection, _delete_replaced_groups())
    backend.execute_compiled(connection, _overwrite_replaced(), _now(backend, now))


def _write_memberships(
    connection: Connection,
    backend: Backend,
    stage: Table,
    staged: int,
    changes: _Changes,
    now: datetime,
) -> int:
    """New group rows of ``stage`` are inserted and counted; returns how many."""
    inserted = _insert_new(
        connection, backend, stage, classification_user_groups, _MEMBERSHIP_KEY, staged, now
    )
    if inserted.rows:
        changes.note(
            Source.MEMBERSHIPS,
            _contribute(connection, backend, group_deltas, stage, 1, inserted.counted),
        )
    return inserted.rows


@cache
def _drop_groups_of_duplicates() -> Executable:
    """Only classifications inserted or replaced bring their group rows."""
    duplicates = select(
        stage_classifications.c.classification_id, stage_classifications.c.event_time
    ).where(stage_classifications.c.state == State.DUPLICATE)
    return delete(stage_groups).where(
        tuple_(stage_groups.c.classification_id, stage_groups.c.event_time).in_(duplicates)
    )


@cache
def _apply_statements(backend: Backend, rollup: Rollup, withdrawn: bool) -> tuple[Executable, ...]:
    """The statements that add the contributions to ``rollup``, then (after a withdrawal)
    delete the rows they emptied."""
    table, deltas = ROLLUP_TABLES[rollup.name], _DELTAS[rollup.source]
    period = period_of(backend, rollup, deltas.c.day)
    times = rollup.with_times
    sums = grouped(
        rollup,
        deltas,
        period=period,
        count=deltas.c.count,
        session_ms=deltas.c.session_ms if rollup.with_session else None,
        first_at=deltas.c.first_at if times else None,
        last_at=deltas.c.last_at if times else None,
    )
    measures, key = rollup.measures, list(rollup.key)
    nonzero = [func.sum(deltas.c[measure]) != 0 for measure in measures]
    key_order: list[ColumnElement[Any]] = [deltas.c[name] for name in rollup.dimensions]
    if period is not None:
        key_order.append(period)
    sums = sums.having(or_(*nonzero)).order_by(*key_order)
    statement = backend.insert(table).from_select([*key, *measures, *rollup.times], sums)
    updates = {measure: table.c[measure] + statement.excluded[measure] for measure in measures}
    if times:
        updates["first_at"] = backend.earliest(table.c.first_at, statement.excluded.first_at)
        updates["last_at"] = backend.latest(table.c.last_at, statement.excluded.last_at)
    statements: list[Executable] = [
        statement.on_conflict_do_update(index_elements=key, set_=updates)
    ]
    if withdrawn:
        statements.append(delete(table).where(table.c.count <= 0, _emptied_key(rollup, period)))
    return tuple(statements)


def _emptied(rollup: Rollup, period: ColumnElement[Any] | None) -> Select[Any]:
    """The keys of ``rollup`` that contributions took something away from."""
    deltas = _DELTAS[rollup.source]
    withdrawn: list[ColumnElement[Any]] = [deltas.c[name] for name in rollup.dimensions]
    if period is not None:
        withdrawn.append(period)
    return select(*withdrawn).where(deltas.c.count < 0)


def _emptied_key(rollup: Rollup, period: ColumnElement[Any] | None) -> ColumnElement[bool]:
    table = ROLLUP_TABLES[rollup.name]
    row_key = tuple_(*(table.c[name] for name in rollup.key))
    return row_key.in_(_emptied(rollup, period))


def _apply(connection: Connection, backend: Backend, changes: _Changes) -> None:
    """Step 5: every rollup, at every level, of a source that changed adds its contributions,
    in lock order."""
    for rollup in LOCK_ORDER:
        if rollup.source not in changes.sources:
            continue
        for statement in _apply_statements(backend, rollup, changes.withdrawn):
            backend.execute_compiled(connection, statement)
        if changes.withdrawn and rollup.with_times:
            period = period_of(backend, rollup, _DELTAS[rollup.source].c.day)
            refresh_times(connection, backend, rollup, _emptied(rollup, period))


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch ready to stage: repeats collapsed, group rows derived, and every row in the
    form the backend stages. Made without a database, so before the write transaction (or,
    in a load, while the previous batch is being written)."""

    rows: tuple[tuple[Table, Sequence[Any]], ...]  # staging table, its rows
    records: int  # in the batch, repeats included
    classifications: int
    derived: int  # group rows the classifications bring
    memberships: int
    comments: int


def prepare_batch(backend: Backend, batch: Batch) -> PreparedBatch:
    """Step 1 up to the copy: what the batch stages."""
    classifications = latest_per_key(batch.classifications)
    memberships = first_membership_per_key(batch.memberships)
    comments = first_per_key(batch.comments)
    derived = [row for record in classifications for row in group_memberships(record)]
    rows = (
        (stage_classifications, [_classification_row(record) for record in classifications]),
        (stage_groups, [_membership_row(row) for row in derived]),
        (stage_memberships, [_membership_row(row) for row in memberships]),
        (stage_comments, [_comment_row(record) for record in comments]),
    )
    return PreparedBatch(
        rows=tuple((table, backend.prepare(table, staged)) for table, staged in rows if staged),
        records=len(batch),
        classifications=len(classifications),
        derived=len(derived),
        memberships=len(memberships),
        comments=len(comments),
    )


def write_batch(
    connection: Connection,
    backend: Backend,
    batch: PreparedBatch,
    *,
    now: datetime | None = None,
) -> IngestSummary:
    """Store every record of ``batch`` and bring every rollup up to date with it.

    One batch per transaction. Idempotent: repeats change nothing, a classification updated
    later replaces the stored version in every total, and the rollups equal a rebuild from the
    raw tables afterwards.
    Counts ``inserted``, ``duplicates`` and ``updated``; the caller adds what it ignored and
    rejected.
    """
    transaction = connection.get_transaction()
    if transaction is None or connection.info.get(_WRITTEN_IN) is transaction:
        # PostgreSQL empties the staging tables only when the transaction ends.
        raise RuntimeError("write_batch needs a transaction of its own")
    connection.info[_WRITTEN_IN] = transaction
    now = now or datetime.now(UTC).replace(tzinfo=None)
    used = [table for table, _rows in batch.rows]
    for table, rows in batch.rows:
        backend.stage(connection, table, rows)
    backend.analyze_staging(connection, used, batch.records)

    distinct = batch.classifications + batch.memberships + batch.comments
    summary = IngestSummary(duplicates=batch.records - distinct)
    changes = _Changes()
    if batch.classifications:
        written = _write_classifications(connection, backend, batch.classifications, changes, now)
        summary += written
        if batch.derived:
            if written.duplicates:
                backend.execute_compiled(connection, _drop_groups_of_duplicates())
            _write_memberships(connection, backend, stage_groups, batch.derived, changes, now)
    if batch.memberships:
        inserted = _write_memberships(
            connection, backend, stage_memberships, batch.memberships, changes, now
        )
        summary += IngestSummary(inserted=inserted, duplicates=batch.memberships - inserted)
    if batch.comments:
        new = _insert_new(
            connection, backend, stage_comments, comment_events, _COMMENT_KEY, batch.comments, now
        )
        if new.rows:
            added = _contribute(connection, backend, comment_deltas, stage_comments, 1, new.counted)
            changes.note(Source.COMMENTS, added)
        summary += IngestSummary(inserted=new.rows, duplicates=batch.comments - new.rows)
    _apply(connection, backend, changes)
    backend.release_staging(connection, [*used, *(_DELTAS[source] for source in changes.sources)])
    return summary

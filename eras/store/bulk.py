"""Bulk storage: a chunk of records in one transaction, with set-based SQL only.

A chunk is copied into temporary staging tables (``COPY`` on PostgreSQL, one ``executemany`` on
SQLite), then a fixed number of statements does what ``eras.store.ingest`` does row by row for
``POST /kinesis``, with the same outcome:

1. insert the staged rows whose key is not stored yet, marking them ``NEW``;
2. mark the others whose ``updated_at`` is later than the stored one ``NEWER`` (under row locks
   on PostgreSQL); what remains is a duplicate and changes nothing;
3. write the contribution of every row that leaves (a replaced version, its group rows) with
   sign -1, and of every row that arrives with sign +1, into a contributions table;
4. add the contributions to each rollup with ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT
   DO UPDATE``, in a fixed table and key order, and delete the rows brought to zero.

Nothing here commits: the caller owns the transaction, one per chunk.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from psycopg import sql as pgsql
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    MetaData,
    SmallInteger,
    Table,
    bindparam,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from eras.ingest.events import (
    CLASSIFICATION_ROLLUPS,
    COMMENT_ROLLUPS,
    Classification,
    Comment,
    GroupMembership,
)
from eras.store.dialect import Dialect
from eras.store.ingest import StoreOutcome
from eras.store.rollups import day_of, grouped, session_ms_of
from eras.store.schema import (
    REPLACEABLE_CLASSIFICATION_COLUMNS,
    ROLLUP_TABLES,
    classification_events,
    classification_user_groups,
    comment_events,
)


class State(enum.IntEnum):
    """What became of a staged row."""

    DUPLICATE = 0  # stored already, and not by an older version: changes nothing
    NEW = 1  # inserted
    NEWER = 2  # replaces the stored version, which had an earlier updated_at


# classification_id, event_time, classification_updated_at, started_at, finished_at, project_id,
# workflow_id, user_id, user_group_ids (JSON text), session_time, already_seen; then, not staged,
# the groups the classification counts toward (Classification.group_ids).
ClassificationRow = tuple[
    int,
    str,
    str | None,
    str | None,
    str | None,
    int,
    int,
    int | None,
    str | None,
    float,
    bool | None,
    tuple[int, ...],
]
# comment_id, event_time, project_id, user_id
CommentRow = tuple[int, str, int | None, int | None]


@dataclass(slots=True)
class Chunk:
    """Records to store in one transaction: classifications and comments as staging rows
    (:func:`classification_row`, :func:`comment_row`), group rows of the original's dump as they
    were read.

    ``replace_groups`` says where group membership comes from. For stream events (ndjson,
    Panoptes exports) it is each classification's ``group_ids``: the group rows are written with
    the classification and replaced with it, as ``POST /kinesis`` does. For the original
    service's dump, its ``classification_user_groups`` rows are the membership and arrive as
    ``group_rows``; loading a ``classification_events`` row then leaves group rows alone.
    """

    classifications: list[ClassificationRow]
    comments: list[CommentRow]
    group_rows: list[GroupMembership]
    replace_groups: bool = True

    def __len__(self) -> int:
        return len(self.classifications) + len(self.comments) + len(self.group_rows)


# --- staging tables ------------------------------------------------------------------------

_staging = MetaData()


def _temporary(name: str, *columns: Column[Any], **options: Any) -> Table:
    # PostgreSQL drops them at commit or rollback; SQLite drops them at the end of store_chunk
    # (a rollback undoes their creation there too, since SQLite DDL is transactional).
    return Table(
        name, _staging, *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP", **options
    )


def _state() -> Column[Any]:
    return Column("state", SmallInteger, nullable=False, server_default=text("0"))


def _staged(name: str, raw: Table) -> Table:
    """A staging copy of a raw table: its columns, without the bookkeeping, plus ``state``."""
    columns = [
        Column(column.name, column.type, primary_key=column.primary_key, nullable=column.nullable)
        for column in raw.columns
        if column.name not in ("created_at", "updated_at", "comment_updated_at")
    ]
    # Every staged row has its state updated: room left in each page keeps those updates on the
    # page (HOT), instead of writing every row again elsewhere and into the key's index.
    return _temporary(name, *columns, _state(), postgresql_with={"fillfactor": 50})


stage_classifications = _staged("eras_stage_classifications", classification_events)
stage_groups = _staged("eras_stage_groups", classification_user_groups)
stage_comments = _staged("eras_stage_comments", comment_events)
# Signed contributions: one row per raw row that arrives (+1) or leaves (-1).
classification_deltas = _temporary(
    "eras_classification_deltas",
    Column("sign", SmallInteger, nullable=False),
    Column("project_id", BigInteger, nullable=False),
    Column("workflow_id", BigInteger, nullable=False),
    Column("user_id", BigInteger),
    Column("day", Date, nullable=False),
    Column("session_ms", BigInteger, nullable=False),
)
group_deltas = _temporary(
    "eras_group_deltas",
    Column("sign", SmallInteger, nullable=False),
    Column("user_group_id", BigInteger, nullable=False),
    Column("project_id", BigInteger, nullable=False),
    Column("workflow_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("day", Date, nullable=False),
    Column("session_ms", BigInteger, nullable=False),
)
comment_deltas = _temporary(
    "eras_comment_deltas",
    Column("sign", SmallInteger, nullable=False),
    Column("project_id", BigInteger),
    Column("user_id", BigInteger),
    Column("day", Date, nullable=False),
)
_STAGING_TABLES: Final = (
    stage_classifications,
    stage_groups,
    stage_comments,
    classification_deltas,
    group_deltas,
    comment_deltas,
)

# Rollup name -> the contributions table it is summed from.
_DELTA_SOURCES: Final[dict[str, Table]] = {
    **{
        name: group_deltas if "user_group_id" in dimensions else classification_deltas
        for name, dimensions in CLASSIFICATION_ROLLUPS.items()
    },
    **{name: comment_deltas for name in COMMENT_ROLLUPS},
}


# --- filling the staging tables ------------------------------------------------------------
#
# Records reach the writer as rows in the column order of the staging tables, built where they
# are parsed (in parser processes for ndjson), so the writer binds them as they are. Timestamps
# are the text SQLAlchemy stores on SQLite ('YYYY-MM-DD HH:MM:SS.ffffff'): there staged keys then
# compare equal to the keys POST /kinesis stored, PostgreSQL's COPY reads the same text as a
# timestamp, and being fixed-width it orders and compares like the datetimes it comes from.

_CLASSIFICATION_COLUMNS: Final = 11  # staged columns of a ClassificationRow


def _text(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")


def _optional_text(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(" ", "microseconds")


def classification_row(record: Classification) -> ClassificationRow:
    event_time = record.event_time
    text = _text(event_time)
    # A stream event mostly carries one moment several times (created, updated, finished):
    # comparing is far cheaper than formatting it again.
    updated_at, finished_at = record.updated_at, record.finished_at
    return (
        record.classification_id,
        text,
        text if updated_at == event_time else _optional_text(updated_at),
        _optional_text(record.started_at),
        text if finished_at == event_time else _optional_text(finished_at),
        record.project_id,
        record.workflow_id,
        record.user_id,
        None if record.user_group_ids is None else orjson.dumps(record.user_group_ids).decode(),
        record.session_time,
        record.already_seen,
        record.group_ids,
    )


def comment_row(record: Comment) -> CommentRow:
    return (
        record.comment_id,
        _text(record.event_time),
        record.project_id,
        record.user_id,
    )


def _latest_per_key(rows: Iterable[ClassificationRow]) -> list[ClassificationRow]:
    """``latest_per_key`` for rows: repeats collapse to the version updated last (the first of
    equals), in key order."""
    latest: dict[tuple[int, str], ClassificationRow] = {}
    for row in rows:
        key = (row[0], row[1])
        kept = latest.get(key)
        # is_newer: a version without updated_at never replaces; one with it replaces a version
        # without, or with an earlier one.
        if kept is None or (row[2] is not None and (kept[2] is None or row[2] > kept[2])):
            latest[key] = row
    return [latest[key] for key in sorted(latest)]


def _first_per_key(rows: Iterable[CommentRow]) -> list[CommentRow]:
    """``first_per_key`` for rows: the first copy of a repeat wins, in key order."""
    first: dict[tuple[int, str], CommentRow] = {}
    for row in rows:
        first.setdefault((row[0], row[1]), row)
    return [first[key] for key in sorted(first)]


def _staged_classifications(rows: Iterable[ClassificationRow]) -> list[tuple[Any, ...]]:
    return [row[:_CLASSIFICATION_COLUMNS] for row in rows]


def _group_rows(rows: Iterable[GroupMembership]) -> list[tuple[Any, ...]]:
    return [
        (
            row.classification_id,
            _text(row.event_time),
            row.user_group_id,
            row.session_time,
            row.project_id,
            row.user_id,
            row.workflow_id,
        )
        for row in rows
    ]


def _groups_of(rows: Iterable[ClassificationRow]) -> list[tuple[Any, ...]]:
    """The group rows stream classifications bring (``group_memberships``): one per counted
    group, in the column order of the staged group rows."""
    return [
        (row[0], row[1], group_id, row[9], row[5], row[7], row[6])
        for row in rows
        for group_id in row[11]
    ]


def _fill(
    connection: Connection, dialect: Dialect, table: Table, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Copy ``rows`` (values of every column but ``state``, in table order) into ``table``."""
    if not rows:
        return
    names = [column.name for column in table.columns if column.name != "state"]
    if dialect.name == "postgresql":
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            pgsql.Identifier(table.name), pgsql.SQL(", ").join(map(pgsql.Identifier, names))
        )
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        return
    # One executemany straight to the driver: the rows are already in their stored form.
    insert = table.insert().values({name: bindparam(name) for name in names})
    connection.exec_driver_sql(str(insert.compile(dialect=connection.dialect)), list(rows))


# --- set-based steps -----------------------------------------------------------------------


def _same_key(left: Table, right: Any, names: Sequence[str]) -> list[ColumnElement[bool]]:
    return [left.c[name] == right.c[name] for name in names]


def _insert_new(
    connection: Connection,
    dialect: Dialect,
    stage: Table,
    target: Table,
    key: Sequence[str],
    *,
    now: datetime,
) -> None:
    """Insert the staged rows whose key is not stored yet, and mark exactly those ``NEW``."""
    names = [column.name for column in stage.columns if column.name != "state"]
    stamp = literal(now, DateTime)
    rows = select(
        *(stage.c[name] for name in names), stamp.label("created_at"), stamp.label("updated_at")
    ).order_by(*(stage.c[name] for name in key))
    columns = [*names, "created_at", "updated_at"]
    if dialect.name == "postgresql":
        # The keys RETURNING gives back are the rows this statement inserted: a row another
        # transaction inserted first, even concurrently, is a conflict and stays unmarked.
        inserted = (
            dialect.insert(target)
            .from_select(columns, rows)
            .on_conflict_do_nothing()
            .returning(*(target.c[name] for name in key))
            .cte("inserted")
        )
        connection.execute(
            update(stage).where(*_same_key(stage, inserted, key)).values(state=State.NEW)
        )
        return
    # SQLite has one writer at a time and this transaction holds the write lock, so the keys
    # absent now are still absent when the INSERT runs.
    stored = exists().where(*_same_key(target, stage, key))
    connection.execute(update(stage).where(~stored).values(state=State.NEW))
    connection.execute(target.insert().from_select(columns, rows.where(stage.c.state == State.NEW)))


def _mark_newer(connection: Connection, dialect: Dialect) -> None:
    """Mark staged classifications updated later than their stored version ``NEWER``."""
    stage, stored = stage_classifications, classification_events
    key = ("classification_id", "event_time")
    if dialect.name == "postgresql":
        # Lock the stored versions in key order, as POST /kinesis does, so a concurrent update
        # of the same classification waits and the comparison below sees the final version.
        locked = (
            select(stored.c.classification_id)
            .where(*_same_key(stored, stage, key), stage.c.state == State.DUPLICATE)
            .order_by(stored.c.classification_id, stored.c.event_time)
            .with_for_update(of=stored)
        )
        connection.execute(select(func.count()).select_from(locked.subquery()))
    later = or_(
        stored.c.classification_updated_at.is_(None),
        stage.c.classification_updated_at > stored.c.classification_updated_at,
    )
    connection.execute(
        update(stage)
        .where(
            stage.c.state == State.DUPLICATE,
            stage.c.classification_updated_at.is_not(None),
            exists().where(*_same_key(stored, stage, key), later),
        )
        .values(state=State.NEWER)
    )


def _contributions(
    dialect: Dialect,
    target: Table,
    source: Table,
    sign: int,
    *conditions: ColumnElement[bool],
) -> Any:
    """INSERT into ``target`` (a deltas table) one signed contribution per matching row."""
    dimensions = [
        name
        for name in ("user_group_id", "project_id", "workflow_id", "user_id")
        if name in target.c
    ]
    return target.insert().from_select(
        ["sign", *dimensions, "day", "session_ms"],
        select(
            literal(sign, SmallInteger),
            *(source.c[name] for name in dimensions),
            day_of(dialect, source.c.event_time),
            session_ms_of(dialect, source.c.session_time),
        ).where(*conditions),
    )


def _replace_newer(
    connection: Connection, dialect: Dialect, *, replace_groups: bool, now: datetime
) -> None:
    """Withdraw the stored versions the staged ones replace, then overwrite them."""
    stage, stored, groups = stage_classifications, classification_events, classification_user_groups
    key = ("classification_id", "event_time")
    newer = stage.c.state == State.NEWER
    connection.execute(
        _contributions(
            dialect, classification_deltas, stored, -1, *_same_key(stored, stage, key), newer
        )
    )
    if replace_groups:
        connection.execute(
            _contributions(dialect, group_deltas, groups, -1, *_same_key(groups, stage, key), newer)
        )
        replaced = select(stage.c.classification_id, stage.c.event_time).where(newer)
        connection.execute(
            delete(groups).where(
                tuple_(groups.c.classification_id, groups.c.event_time).in_(replaced)
            )
        )
    values: dict[str, Any] = {name: stage.c[name] for name in REPLACEABLE_CLASSIFICATION_COLUMNS}
    values["updated_at"] = literal(now, DateTime)
    connection.execute(update(stored).where(*_same_key(stored, stage, key), newer).values(values))


def _state_counts(connection: Connection, stage: Table) -> dict[State, int]:
    rows = connection.execute(select(stage.c.state, func.count()).group_by(stage.c.state))
    return {State(state): count for state, count in rows}


def _outcome(counts: dict[State, int], collapsed: int) -> StoreOutcome:
    return StoreOutcome(
        inserted=counts.get(State.NEW, 0),
        duplicates=counts.get(State.DUPLICATE, 0) + collapsed,
        updated=counts.get(State.NEWER, 0),
    )


def _store_classifications(
    connection: Connection,
    dialect: Dialect,
    rows: Sequence[ClassificationRow],
    *,
    replace_groups: bool,
    now: datetime,
) -> tuple[StoreOutcome, bool]:
    """Returns the outcome and whether any stored version was replaced (rows withdrawn)."""
    distinct = _latest_per_key(rows)
    _fill(connection, dialect, stage_classifications, _staged_classifications(distinct))
    if replace_groups:
        _fill(connection, dialect, stage_groups, _groups_of(distinct))
    _analyze(connection, dialect, stage_classifications, stage_groups)
    key = ("classification_id", "event_time")
    _insert_new(connection, dialect, stage_classifications, classification_events, key, now=now)
    _mark_newer(connection, dialect)
    counts = _state_counts(connection, stage_classifications)
    if counts.get(State.NEWER):
        _replace_newer(connection, dialect, replace_groups=replace_groups, now=now)
    stage = stage_classifications
    connection.execute(
        _contributions(dialect, classification_deltas, stage, 1, stage.c.state != State.DUPLICATE)
    )
    if replace_groups:
        # Only the classifications that were inserted or replaced bring their group rows.
        if counts.get(State.DUPLICATE):
            duplicates = select(stage.c.classification_id, stage.c.event_time).where(
                stage.c.state == State.DUPLICATE
            )
            group_key = tuple_(stage_groups.c.classification_id, stage_groups.c.event_time)
            connection.execute(delete(stage_groups).where(group_key.in_(duplicates)))
        _store_staged_groups(connection, dialect, now=now)
    return _outcome(counts, len(rows) - len(distinct)), bool(counts.get(State.NEWER))


def _store_staged_groups(connection: Connection, dialect: Dialect, *, now: datetime) -> None:
    key = ("classification_id", "event_time", "user_group_id")
    _insert_new(connection, dialect, stage_groups, classification_user_groups, key, now=now)
    connection.execute(
        _contributions(dialect, group_deltas, stage_groups, 1, stage_groups.c.state == State.NEW)
    )


def _store_group_rows(
    connection: Connection, dialect: Dialect, rows: Sequence[GroupMembership], *, now: datetime
) -> StoreOutcome:
    """Group rows of the original's dump: each new key is a membership; repeats change nothing."""
    # The first copy of a key wins, as for comments.
    distinct = list({row.key: row for row in reversed(rows)}.values())
    distinct.sort(key=lambda row: row.key)
    _fill(connection, dialect, stage_groups, _group_rows(distinct))
    _analyze(connection, dialect, stage_groups)
    _store_staged_groups(connection, dialect, now=now)
    return _outcome(_state_counts(connection, stage_groups), len(rows) - len(distinct))


def _store_comments(
    connection: Connection, dialect: Dialect, rows: Sequence[CommentRow], *, now: datetime
) -> StoreOutcome:
    distinct = _first_per_key(rows)
    _fill(connection, dialect, stage_comments, distinct)
    _analyze(connection, dialect, stage_comments)
    _insert_new(
        connection, dialect, stage_comments, comment_events, ("comment_id", "event_time"), now=now
    )
    stage = stage_comments
    connection.execute(
        comment_deltas.insert().from_select(
            ["sign", "project_id", "user_id", "day"],
            select(
                literal(1, SmallInteger),
                stage.c.project_id,
                stage.c.user_id,
                day_of(dialect, stage.c.event_time),
            ).where(stage.c.state == State.NEW),
        )
    )
    return _outcome(_state_counts(connection, stage), len(rows) - len(distinct))


def _analyze(connection: Connection, dialect: Dialect, *tables: Table) -> None:
    """Give PostgreSQL's planner the staging tables' real sizes (temporary tables are never
    auto-analyzed), so it joins them to the raw tables through their primary keys."""
    if dialect.name != "postgresql":
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    for table in tables:
        driver.execute(pgsql.SQL("ANALYZE {}").format(pgsql.Identifier(table.name)))


def _apply_contributions(
    connection: Connection, dialect: Dialect, names: Iterable[str], *, withdrawn: bool
) -> None:
    """Add the summed contributions to each rollup, tables and keys in a fixed order.

    A fixed order means two loads, or a load and ``POST /kinesis``, lock rollup rows in the same
    order and cannot deadlock. Rows a withdrawal brings to zero are deleted, as at ingest.
    """
    for name in sorted(names):
        table, source = ROLLUP_TABLES[name], _DELTA_SOURCES[name]
        with_session = "session_ms" in table.c
        sums = grouped(
            name,
            source,
            day=source.c.day,
            weight=source.c.sign,
            session_ms=source.c.session_ms if with_session else None,
        )
        nonzero = [func.sum(source.c.sign) != 0]
        if with_session:
            nonzero.append(func.sum(source.c.sign * source.c.session_ms) != 0)
        key = [column.name for column in table.primary_key.columns]
        sums = sums.having(or_(*nonzero)).order_by(*(source.c[column] for column in key))
        measures = ["count", "session_ms"] if with_session else ["count"]
        statement = dialect.insert(table).from_select([*key, *measures], sums)
        statement = statement.on_conflict_do_update(
            index_elements=key,
            set_={column: table.c[column] + statement.excluded[column] for column in measures},
        )
        connection.execute(statement)
        if withdrawn:
            emptied = select(*(source.c[column] for column in key)).where(source.c.sign < 0)
            connection.execute(
                delete(table).where(
                    table.c.count <= 0,
                    tuple_(*(table.c[column] for column in key)).in_(emptied),
                )
            )


def store_chunk(connection: Connection, dialect: Dialect, chunk: Chunk) -> StoreOutcome:
    """Store every record of ``chunk`` and bring every rollup up to date with it.

    Idempotent like ``POST /kinesis``: repeats change nothing, a classification updated later
    replaces the stored version in every total, and rollups equal a rebuild afterwards.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    for table in _STAGING_TABLES:
        table.create(connection)
    outcome = StoreOutcome()
    touched: set[str] = set()
    withdrawn = False
    if chunk.classifications:
        stored, replaced = _store_classifications(
            connection,
            dialect,
            chunk.classifications,
            replace_groups=chunk.replace_groups,
            now=now,
        )
        _add(outcome, stored)
        withdrawn = replaced
        touched.update(
            name
            for name, dimensions in CLASSIFICATION_ROLLUPS.items()
            if chunk.replace_groups or "user_group_id" not in dimensions
        )
    if chunk.group_rows:
        _add(outcome, _store_group_rows(connection, dialect, chunk.group_rows, now=now))
        touched.update(
            name
            for name, dimensions in CLASSIFICATION_ROLLUPS.items()
            if "user_group_id" in dimensions
        )
    if chunk.comments:
        _add(outcome, _store_comments(connection, dialect, chunk.comments, now=now))
        touched.update(COMMENT_ROLLUPS)
    _apply_contributions(connection, dialect, touched, withdrawn=withdrawn)
    if dialect.name == "sqlite":
        for table in _STAGING_TABLES:
            table.drop(connection)
    return outcome


def _add(total: StoreOutcome, part: StoreOutcome) -> None:
    total.inserted += part.inserted
    total.duplicates += part.duplicates
    total.updated += part.updated

"""Pure translation of stream events into records and rollup contributions.

Nothing here touches a database: every function takes plain data and returns plain data, so the
rules of the spec (session time, group membership, identity of an event) are tested in one place
and shared by ``POST /kinesis`` and the bulk loaders.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

MAX_SESSION_SECONDS: Final = 10_800.0
_MAX_ID: Final = 2**63 - 1

ClassificationKey = tuple[int, datetime]
CommentKey = tuple[int, datetime]


class EventRejected(ValueError):
    """The event is well-formed JSON but cannot be stored; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Classification:
    classification_id: int
    event_time: datetime
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    project_id: int
    workflow_id: int
    user_id: int | None
    user_group_ids: tuple[int, ...] | None
    session_time: float
    already_seen: bool | None
    # The groups this classification counts toward: distinct ids, and none for anonymous users.
    group_ids: tuple[int, ...] = field(default=())

    @property
    def key(self) -> ClassificationKey:
        return (self.classification_id, self.event_time)


@dataclass(frozen=True, slots=True)
class Comment:
    comment_id: int
    event_time: datetime
    project_id: int | None
    user_id: int | None

    @property
    def key(self) -> CommentKey:
        return (self.comment_id, self.event_time)


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event of a source/type this service does not count."""

    source: object
    type: object


ParsedEvent = Classification | Comment | Ignored


# --- field parsing -------------------------------------------------------------------------


def parse_timestamp(value: object) -> datetime | None:
    """ISO 8601 text to a naive UTC datetime; ``None`` when missing or unparseable.

    Naive UTC is what both databases store, so keys compare equal after a round trip.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    # Almost every stream timestamp ends in "Z": read it as naive UTC directly, which is
    # several times faster than parsing the zone and converting.
    if text.endswith("Z"):
        text = text[:-1]
    elif text.endswith(" UTC"):
        text = text[:-4]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _required_timestamp(value: object, name: str) -> datetime:
    if value is None or value == "":
        raise EventRejected(f"missing {name}")
    parsed = parse_timestamp(value)
    if parsed is None:
        raise EventRejected(f"{name} is not an ISO 8601 timestamp: {str(value)[:64]!r}")
    return parsed


def parse_id(value: object, name: str, *, required: bool) -> int | None:
    """A numeric id given as an integer or a string of digits."""
    if value is None or value == "":
        if required:
            raise EventRejected(f"missing {name}")
        return None
    if isinstance(value, bool):
        raise EventRejected(f"{name} is not a numeric id: {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise EventRejected(f"{name} is not a numeric id: {str(value)[:64]!r}")
    if not 0 <= number <= _MAX_ID:
        raise EventRejected(f"{name} is out of range: {number}")
    return number


def _required_id(value: object, name: str) -> int:
    number = parse_id(value, name, required=True)
    assert number is not None
    return number


def session_seconds(started_at: datetime | None, finished_at: datetime | None) -> float:
    """Seconds between start and finish: 0 if either is unknown or negative, capped at 3 hours."""
    if started_at is None or finished_at is None:
        return 0.0
    seconds = (finished_at - started_at).total_seconds()
    if seconds <= 0:
        return 0.0
    return min(seconds, MAX_SESSION_SECONDS)


def parse_already_seen(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return None


def parse_group_ids(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise EventRejected("metadata.user_group_ids is not a list")
    return tuple(_required_id(item, "metadata.user_group_ids[]") for item in value)


def counted_group_ids(user_id: int | None, user_group_ids: Iterable[int] | None) -> tuple[int, ...]:
    """Groups credited with a classification: each distinct id once, only for logged-in users."""
    if user_id is None or not user_group_ids:
        return ()
    return tuple(sorted(set(user_group_ids)))


# --- envelopes -----------------------------------------------------------------------------


def _mapping(value: object, name: str) -> Mapping[str, Any]:
    # Events come from JSON, so objects are dicts; dict is much cheaper to test than Mapping.
    if not isinstance(value, dict):
        raise EventRejected(f"{name} is not an object")
    return value


def parse_classification(data: Mapping[str, Any]) -> Classification:
    links = _mapping(data.get("links"), "data.links")
    raw_metadata = data.get("metadata")
    metadata = {} if raw_metadata is None else _mapping(raw_metadata, "data.metadata")
    selection = metadata.get("subject_selection_state")
    selection = selection if isinstance(selection, Mapping) else {}

    started_at = parse_timestamp(metadata.get("started_at"))
    finished_at = parse_timestamp(metadata.get("finished_at"))
    user_id = parse_id(links.get("user"), "data.links.user", required=False)
    user_group_ids = parse_group_ids(metadata.get("user_group_ids"))
    return Classification(
        classification_id=_required_id(data.get("id"), "data.id"),
        event_time=_required_timestamp(data.get("created_at"), "data.created_at"),
        updated_at=parse_timestamp(data.get("updated_at")),
        started_at=started_at,
        finished_at=finished_at,
        project_id=_required_id(links.get("project"), "data.links.project"),
        workflow_id=_required_id(links.get("workflow"), "data.links.workflow"),
        user_id=user_id,
        user_group_ids=user_group_ids,
        session_time=session_seconds(started_at, finished_at),
        already_seen=parse_already_seen(selection.get("already_seen")),
        group_ids=counted_group_ids(user_id, user_group_ids),
    )


def parse_comment(data: Mapping[str, Any]) -> Comment:
    return Comment(
        comment_id=_required_id(data.get("id"), "data.id"),
        event_time=_required_timestamp(data.get("created_at"), "data.created_at"),
        project_id=parse_id(data.get("project_id"), "data.project_id", required=False),
        user_id=parse_id(data.get("user_id"), "data.user_id", required=False),
    )


def parse_event(event: object) -> ParsedEvent:
    """One stream envelope to a record; raises :class:`EventRejected` for a bad counted event."""
    envelope = _mapping(event, "event")
    source, kind = envelope.get("source"), envelope.get("type")
    if source == "panoptes" and kind == "classification":
        return parse_classification(_mapping(envelope.get("data"), "data"))
    if source == "talk" and kind == "comment":
        return parse_comment(_mapping(envelope.get("data"), "data"))
    return Ignored(source=source, type=kind)


# --- rollup contributions ------------------------------------------------------------------

# Rollup name -> the dimensions it is keyed by, ahead of the day. Order matters only for the
# primary key: the leading dimension is the one a sharded PostgreSQL would distribute on.
CLASSIFICATION_ROLLUPS: Final[Mapping[str, tuple[str, ...]]] = {
    "classification_daily": (),
    "classification_project_daily": ("project_id",),
    "classification_workflow_daily": ("workflow_id",),
    "classification_user_daily": ("user_id",),
    "classification_user_project_daily": ("user_id", "project_id"),
    "classification_user_workflow_daily": ("user_id", "workflow_id"),
    "group_daily": ("user_group_id",),
    "group_project_daily": ("user_group_id", "project_id"),
    "group_workflow_daily": ("user_group_id", "workflow_id"),
    "group_user_daily": ("user_group_id", "user_id"),
    "group_user_project_daily": ("user_group_id", "user_id", "project_id"),
    "group_user_workflow_daily": ("user_group_id", "user_id", "workflow_id"),
}
COMMENT_ROLLUPS: Final[Mapping[str, tuple[str, ...]]] = {
    "comment_daily": (),
    "comment_project_daily": ("project_id",),
    "comment_user_daily": ("user_id",),
    "comment_project_user_daily": ("project_id", "user_id"),
}

RollupKey = tuple[Any, ...]  # dimension values..., day


@dataclass(slots=True)
class Delta:
    count: int = 0
    session_ms: int = 0

    def is_zero(self) -> bool:
        return self.count == 0 and self.session_ms == 0


# (rollup name, key) -> delta. Keys end with the UTC day.
Deltas = dict[tuple[str, RollupKey], Delta]


def session_milliseconds(session_time: float) -> int:
    """Rollups sum whole milliseconds, so adding and later subtracting a value is exact."""
    return round(session_time * 1000)


@dataclass(frozen=True, slots=True)
class GroupMembership:
    """One group a classification counts toward, with the values it counts there with.

    For stream events these are the classification's own values; rows migrated from the
    original service carry theirs, which the group rollups must follow.
    """

    classification_id: int
    event_time: datetime
    user_group_id: int
    session_time: float
    project_id: int
    user_id: int
    workflow_id: int

    @property
    def key(self) -> tuple[int, datetime, int]:
        return (self.classification_id, self.event_time, self.user_group_id)


def group_memberships(record: Classification) -> list[GroupMembership]:
    """The groups a stream classification counts toward (none for an anonymous volunteer)."""
    user_id = record.user_id
    if user_id is None:
        return []
    return [
        GroupMembership(
            classification_id=record.classification_id,
            event_time=record.event_time,
            user_group_id=group_id,
            session_time=record.session_time,
            project_id=record.project_id,
            user_id=user_id,
            workflow_id=record.workflow_id,
        )
        for group_id in record.group_ids
    ]


def _rollup_keys(
    rollups: Mapping[str, tuple[str, ...]], values: Mapping[str, int | None], day: date
) -> Iterator[tuple[str, RollupKey]]:
    """The row of each rollup that ``values`` count toward; none where a dimension is null."""
    for name, dimensions in rollups.items():
        key = tuple(values[dimension] for dimension in dimensions)
        if None not in key:
            yield name, (*key, day)


_PER_CLASSIFICATION_ROLLUPS: Final = {
    name: dimensions
    for name, dimensions in CLASSIFICATION_ROLLUPS.items()
    if "user_group_id" not in dimensions
}
_PER_GROUP_ROLLUPS: Final = {
    name: dimensions
    for name, dimensions in CLASSIFICATION_ROLLUPS.items()
    if "user_group_id" in dimensions
}


def _contribution_keys(
    record: Classification | GroupMembership | Comment,
) -> Iterator[tuple[str, RollupKey]]:
    if isinstance(record, Comment):
        values: dict[str, int | None] = {"project_id": record.project_id, "user_id": record.user_id}
        return _rollup_keys(COMMENT_ROLLUPS, values, record.event_time.date())
    values = {
        "project_id": record.project_id,
        "workflow_id": record.workflow_id,
        "user_id": record.user_id,
    }
    rollups = _PER_CLASSIFICATION_ROLLUPS
    if isinstance(record, GroupMembership):
        values["user_group_id"] = record.user_group_id
        rollups = _PER_GROUP_ROLLUPS
    return _rollup_keys(rollups, values, record.event_time.date())


def _add(
    deltas: Deltas, keys: Iterable[tuple[str, RollupKey]], count: int, session_ms: int
) -> None:
    for rollup_key in keys:
        delta = deltas.get(rollup_key)
        if delta is None:
            delta = deltas[rollup_key] = Delta()
        delta.count += count
        delta.session_ms += session_ms


def add_contribution(
    deltas: Deltas, record: Classification | GroupMembership | Comment, sign: int = 1
) -> None:
    """Add (``sign=1``) or withdraw (``sign=-1``) what ``record`` counts for.

    A :class:`Classification` counts for the global, project, workflow and user rollups; each
    of its :class:`GroupMembership` rows for the group rollups.
    """
    session_ms = 0 if isinstance(record, Comment) else session_milliseconds(record.session_time)
    _add(deltas, _contribution_keys(record), sign, session_ms * sign)


def add_contributions(
    deltas: Deltas,
    records: Iterable[Classification | GroupMembership | Comment],
    sign: int = 1,
) -> None:
    """:func:`add_contribution` for each of ``records``, with the same result in fewer steps.

    Records that count with the same values on the same day are summed first, each with its
    own rounded milliseconds: the classifications of one sitting then reach each rollup row
    once instead of once each.
    """
    totals: dict[tuple[Any, ...], list[Any]] = {}
    for record in records:
        identity: tuple[Any, ...]
        if isinstance(record, Classification):
            identity = (
                Classification,
                record.project_id,
                record.workflow_id,
                record.user_id,
                record.event_time.date(),
            )
            session_ms = session_milliseconds(record.session_time)
        elif isinstance(record, GroupMembership):
            identity = (
                GroupMembership,
                record.user_group_id,
                record.project_id,
                record.workflow_id,
                record.user_id,
                record.event_time.date(),
            )
            session_ms = session_milliseconds(record.session_time)
        else:
            identity = (Comment, record.project_id, record.user_id, record.event_time.date())
            session_ms = 0
        total = totals.get(identity)
        if total is None:
            totals[identity] = [record, 1, session_ms]
        else:
            total[1] += 1
            total[2] += session_ms
    for representative, count, session_ms in totals.values():
        _add(deltas, _contribution_keys(representative), count * sign, session_ms * sign)


def is_newer(incoming: Classification, stored: Classification) -> bool:
    """A re-published classification replaces the stored one only if it was updated later."""
    if incoming.updated_at is None:
        return False
    return stored.updated_at is None or incoming.updated_at > stored.updated_at


def latest_per_key(records: Iterable[Classification]) -> list[Classification]:
    """Collapse repeats inside one batch to the most recently updated version, in key order."""
    latest: dict[ClassificationKey, Classification] = {}
    for record in records:
        kept = latest.get(record.key)
        if kept is None or is_newer(record, kept):
            latest[record.key] = record
    return [latest[key] for key in sorted(latest)]


def first_per_key(records: Iterable[Comment]) -> list[Comment]:
    """Comments are never updated: the first copy of a repeat wins, in key order."""
    first: dict[CommentKey, Comment] = {}
    for record in records:
        first.setdefault(record.key, record)
    return [first[key] for key in sorted(first)]

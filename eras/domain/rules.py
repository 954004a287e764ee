"""The counting rules of the spec, each written once: session time, group membership, and
which version of a classification wins."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from eras.domain.records import Classification, Comment, EventKey, GroupMembership

MAX_SESSION_SECONDS: Final = 10_800.0


def session_seconds(started_at: datetime | None, finished_at: datetime | None) -> float:
    """Seconds between start and finish: 0 if either is unknown or negative, capped at 3 hours."""
    if started_at is None or finished_at is None:
        return 0.0
    seconds = (finished_at - started_at).total_seconds()
    if seconds <= 0:
        return 0.0
    return min(seconds, MAX_SESSION_SECONDS)


def session_milliseconds(session_time: float) -> int:
    """Rollups sum whole milliseconds, so adding and later withdrawing a value is exact.

    Python's ``round`` takes a tie to the even integer; the store's SQL form of this rule
    (``Backend.session_ms_of``) does the same, and a test holds the two together.
    """
    return round(session_time * 1000)


def counted_group_ids(user_id: int | None, user_group_ids: Iterable[int] | None) -> tuple[int, ...]:
    """Groups credited with a classification: each distinct id once, only for logged-in users."""
    if user_id is None or not user_group_ids:
        return ()
    return tuple(sorted(set(user_group_ids)))


def group_memberships(record: Classification) -> list[GroupMembership]:
    """The group rows a classification brings with it (none when anonymous, or when its
    membership is kept in the original service's own table)."""
    user_id = record.user_id
    if user_id is None or not record.group_ids:
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


def is_newer(incoming: datetime | None, stored: datetime | None) -> bool:
    """Whether a version updated at ``incoming`` replaces one updated at ``stored``.

    Panoptes re-publishes a classification when it changes, with a later ``updated_at``; only a
    strictly later one replaces, and a version without ``updated_at`` never does. The store
    applies the same rule in SQL to stored versions (``eras.store.write``), and a test holds
    the two together.
    """
    if incoming is None:
        return False
    return stored is None or incoming > stored


def latest_per_key(records: Iterable[Classification]) -> list[Classification]:
    """Repeats collapsed to the version that wins (the first of equals), in key order."""
    latest: dict[EventKey, Classification] = {}
    for record in records:
        key = (record.classification_id, record.event_time)
        kept = latest.get(key)
        if kept is None or is_newer(record.updated_at, kept.updated_at):
            latest[key] = record
    return [latest[key] for key in sorted(latest)]


def first_per_key(records: Iterable[Comment]) -> list[Comment]:
    """Comments are never updated: the first copy of a repeat wins, in key order."""
    first: dict[EventKey, Comment] = {}
    for record in records:
        first.setdefault((record.comment_id, record.event_time), record)
    return [first[key] for key in sorted(first)]


def first_membership_per_key(records: Iterable[GroupMembership]) -> list[GroupMembership]:
    """Group rows of the original's table: the first copy of a repeated key wins, in key
    order (that table has no primary key, so a row may appear twice)."""
    first: dict[tuple[int, datetime, int], GroupMembership] = {}
    for record in records:
        first.setdefault(
            (record.classification_id, record.event_time, record.user_group_id), record
        )
    return [first[key] for key in sorted(first)]

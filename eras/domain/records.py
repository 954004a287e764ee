"""The records eras stores, as the parsers make them and the store writes them.

They are msgspec structs: cheap to build in the parsers' hot loop, and encoded to MessagePack
and back several times faster than pickle when parser processes hand them to the writer.
``array_like`` keeps that encoding small; ``gc=False`` is safe because they only ever hold
numbers, text, times and tuples of those.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

# (id, event_time): what identifies a classification or a comment.
EventKey = tuple[int, datetime]


class Classification(msgspec.Struct, frozen=True, array_like=True, gc=False):
    classification_id: int
    event_time: datetime  # created_at, naive UTC
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    project_id: int
    workflow_id: int
    user_id: int | None  # None: the volunteer was not logged in
    user_group_ids: tuple[int, ...] | None  # as published
    session_time: float  # seconds
    already_seen: bool | None
    # The groups this classification counts toward, each once (see rules.counted_group_ids).
    # None for a row of the original service's classification_events table: there group
    # membership is kept in its own table and arrives as GroupMembership records.
    group_ids: tuple[int, ...] | None

    @property
    def key(self) -> EventKey:
        return (self.classification_id, self.event_time)


class GroupMembership(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One group a classification counts toward, with the values it counts there with.

    For stream events these are the classification's own values; rows of the original
    service's ``classification_user_groups`` table carry theirs, which may differ.
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


class Comment(msgspec.Struct, frozen=True, array_like=True, gc=False):
    comment_id: int
    event_time: datetime
    project_id: int | None
    user_id: int | None

    @property
    def key(self) -> EventKey:
        return (self.comment_id, self.event_time)


class Ignored(msgspec.Struct, frozen=True):
    """An event of a source and type this service does not count."""


IGNORED: Final = Ignored()

Record = Classification | GroupMembership | Comment


class Rejection(msgspec.Struct, frozen=True):
    """An event or row that cannot be stored: why, what it was, and where it came from.

    ``event`` is the event as decoded JSON, a CSV row as a mapping of column to text, or the
    raw text of a line that is not JSON. ``line`` and ``position`` locate rows of files: the
    line where the row starts, and the place of an event inside a ``{"payload": [...]}`` line.
    """

    reason: str
    event: object
    line: int | None = None
    position: int | None = None


class InvalidEvent(ValueError):
    """Raised by the parsers: the event or row cannot be stored, ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

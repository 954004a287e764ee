"""Stream events (JSON) read into records, with the spec's field rules.

A classification event is about 3 KB, nearly all of it annotations, subject data and linked
resources that eras does not count. msgspec decodes straight into structs that declare only the
fields eras reads and skips the rest without building Python objects for it; the fields
themselves are declared ``object`` and checked by the rules in :mod:`eras.domain.fields`, so a
wrong value gets the same reason whichever way the event arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec

from eras.domain.fields import (
    parse_already_seen,
    parse_group_ids,
    parse_id,
    parse_timestamp,
    required_id,
    required_timestamp,
)
from eras.domain.records import IGNORED, Classification, Comment, Ignored, InvalidEvent
from eras.domain.rules import counted_group_ids, session_seconds

ParsedEvent = Classification | Comment | Ignored
# One JSON document, or a msgspec.Raw slice of a larger one.
EventBytes = str | bytes | bytearray | memoryview | msgspec.Raw

_ABSENT: Final[Any] = msgspec.UNSET


class Links(msgspec.Struct):
    project: object = None
    workflow: object = None
    user: object = None


class Metadata(msgspec.Struct):
    started_at: object = None
    finished_at: object = None
    user_group_ids: list[object] | None = None
    subject_selection_state: object = None  # anything but an object means nothing is known


class _Selection(msgspec.Struct):
    already_seen: object = None


class _FastMetadata(msgspec.Struct):
    """:class:`Metadata` for the fast path: a selection state that is not an object leaves
    the event to the careful path, which reads it as unknown."""

    started_at: object = None
    finished_at: object = None
    user_group_ids: list[object] | None = None
    subject_selection_state: _Selection | None = None


class _ClassificationData(msgspec.Struct):
    id: object = None
    created_at: object = None
    updated_at: object = None
    links: Links | None = None
    metadata: Metadata | None = None


class _CommentData(msgspec.Struct):
    id: object = None
    created_at: object = None
    project_id: object = None
    user_id: object = None


class Envelope(msgspec.Struct):
    """What every stream event has; ``data`` is decoded once the type is known. ``payload`` is
    only there when a line of an ndjson file is a whole ``{"payload": [...]}`` body."""

    source: Any = _ABSENT
    type: Any = _ABSENT
    data: msgspec.Raw = msgspec.Raw(b"null")
    payload: msgspec.Raw = msgspec.Raw(b"")

    @property
    def is_body(self) -> bool:
        return len(self.payload) > 0 and self.source is _ABSENT


_ENVELOPE: Final = msgspec.json.Decoder(Envelope)
_CLASSIFICATION: Final = msgspec.json.Decoder(_ClassificationData)
_COMMENT: Final = msgspec.json.Decoder(_CommentData)
_EVENTS: Final = msgspec.json.Decoder(list[msgspec.Raw])
_METADATA: Final = msgspec.json.Decoder(Metadata)

# Where a container of the wrong type is found (msgspec's path) -> the reason given.
_WRONG_CONTAINER: Final = {
    "data": "data is not an object",
    "data.links": "data.links is not an object",
    "data.metadata": "data.metadata is not an object",
    "data.metadata.user_group_ids": "metadata.user_group_ids is not a list",
    "metadata": "metadata is not an object",
    "metadata.user_group_ids": "metadata.user_group_ids is not a list",
}


def _reason(error: msgspec.ValidationError, prefix: str) -> str:
    """A reason naming the field, from msgspec's ``"Expected ... - at `$.links`"``."""
    message, _, where = str(error).partition(" - at `$")
    field = (prefix + where.rstrip("`")).lstrip(".") or "event"
    known = _WRONG_CONTAINER.get(field)
    if known is not None:
        return known
    return f"{field} is not valid: {message}"


@dataclass(frozen=True, slots=True)
class FieldNames:
    """How a source names the fields, for reasons: the stream's names or an export's."""

    id: str
    created_at: str
    project: str
    workflow: str
    user: str
    group_ids: str


STREAM_FIELDS: Final = FieldNames(
    id="data.id",
    created_at="data.created_at",
    project="data.links.project",
    workflow="data.links.workflow",
    user="data.links.user",
    group_ids="metadata.user_group_ids",
)
_NO_METADATA: Final = Metadata()


def build_classification(
    *,
    id: object,
    created_at: object,
    updated_at: object,
    project: object,
    workflow: object,
    user: object,
    metadata: Metadata | _FastMetadata | None,
    names: FieldNames,
) -> Classification:
    """A classification from its fields, by the spec's rules; raises :class:`InvalidEvent`."""
    metadata = metadata or _NO_METADATA
    user_id = parse_id(user, names.user)
    user_group_ids = parse_group_ids(metadata.user_group_ids, names.group_ids)
    selection = metadata.subject_selection_state
    if isinstance(selection, _Selection):
        already_seen = selection.already_seen
    else:
        already_seen = selection.get("already_seen") if isinstance(selection, dict) else None
    event_time = required_timestamp(created_at, names.created_at)
    # A new classification is published with the same moment as created, updated and finished:
    # read it once.
    started, finished = metadata.started_at, metadata.finished_at
    updated_at = event_time if updated_at == created_at else parse_timestamp(updated_at)
    finished_at = event_time if finished == created_at else parse_timestamp(finished)
    started_at = parse_timestamp(started)
    return Classification(
        classification_id=required_id(id, names.id),
        event_time=event_time,
        updated_at=updated_at,
        started_at=started_at,
        finished_at=finished_at,
        project_id=required_id(project, names.project),
        workflow_id=required_id(workflow, names.workflow),
        user_id=user_id,
        user_group_ids=user_group_ids,
        session_time=session_seconds(started_at, finished_at),
        already_seen=parse_already_seen(already_seen),
        group_ids=counted_group_ids(user_id, user_group_ids),
    )


def decode_metadata(text: str | bytes) -> Metadata:
    """A classification's metadata given as JSON text (a column of a Panoptes export)."""
    try:
        return _METADATA.decode(text)
    except msgspec.ValidationError as error:
        raise InvalidEvent(_reason(error, "metadata")) from None
    except msgspec.DecodeError:
        raise InvalidEvent("metadata is not valid JSON") from None


def _classification_from(fields: _ClassificationData | _EventData, links: Links) -> Classification:
    return build_classification(
        id=fields.id,
        created_at=fields.created_at,
        updated_at=fields.updated_at,
        project=links.project,
        workflow=links.workflow,
        user=links.user,
        metadata=fields.metadata,
        names=STREAM_FIELDS,
    )


def _comment_from(fields: _CommentData | _EventData) -> Comment:
    return Comment(
        comment_id=required_id(fields.id, "data.id"),
        event_time=required_timestamp(fields.created_at, "data.created_at"),
        project_id=parse_id(fields.project_id, "data.project_id"),
        user_id=parse_id(fields.user_id, "data.user_id"),
    )


class NotJson(InvalidEvent):
    """The text is not a JSON document."""


class NoPayload(InvalidEvent):
    """A request body that is not a ``{"payload": [...]}`` object."""


class _Body(msgspec.Struct):
    payload: msgspec.Raw = msgspec.Raw(b"")


_BODY: Final = msgspec.json.Decoder(_Body)


# --- the careful path: every wrong value named ----------------------------------------------


def _decode_envelope(event: EventBytes) -> Envelope:
    try:
        return _ENVELOPE.decode(event)
    except msgspec.ValidationError as error:  # before DecodeError, of which it is a kind
        if " - at `$" not in str(error):
            raise InvalidEvent("event is not an object") from None
        raise InvalidEvent(_reason(error, "")) from None
    except msgspec.DecodeError as error:
        raise NotJson(f"not valid JSON: {error}") from None


def _read_carefully(document: EventBytes, *, bodies: bool) -> ParsedEvent | list[msgspec.Raw]:
    """The envelope first, then ``data`` by the type of event: a value of the wrong kind is
    named in the reason, and ``data`` of an event not counted is never looked at."""
    envelope = _decode_envelope(document)
    if bodies and envelope.is_body:
        return split_payload(envelope.payload)
    source, kind = envelope.source, envelope.type
    try:
        if source == "panoptes" and kind == "classification":
            fields = _CLASSIFICATION.decode(envelope.data)
            if fields.links is None:
                raise InvalidEvent("data.links is not an object")
            return _classification_from(fields, fields.links)
        if source == "talk" and kind == "comment":
            return _comment_from(_COMMENT.decode(envelope.data))
    except msgspec.ValidationError as error:
        raise InvalidEvent(_reason(error, "data")) from None
    return IGNORED


# --- the fast path: one pass -----------------------------------------------------------------


class _EventData(msgspec.Struct):
    """The fields of a classification's and of a comment's ``data`` together, so that the
    envelope and its data are decoded in one pass over the event."""

    id: object = None
    created_at: object = None
    updated_at: object = None
    links: Links | None = None
    metadata: _FastMetadata | None = None
    project_id: object = None
    user_id: object = None


class _Document(msgspec.Struct):
    source: Any = _ABSENT
    type: Any = _ABSENT
    data: _EventData | None = None
    payload: msgspec.Raw = msgspec.Raw(b"")


_DOCUMENT: Final = msgspec.json.Decoder(_Document)


def _read(document: EventBytes, *, bodies: bool) -> ParsedEvent | list[msgspec.Raw]:
    """One pass in the common case; anything unexpected (a value of the wrong kind anywhere in
    the fields read, a missing object) is left to the careful path, which decides."""
    try:
        fast = _DOCUMENT.decode(document)
    except msgspec.ValidationError:  # before DecodeError, of which it is a kind
        return _read_carefully(document, bodies=bodies)
    except msgspec.DecodeError as error:
        raise NotJson(f"not valid JSON: {error}") from None
    if bodies and len(fast.payload) and fast.source is _ABSENT:
        return split_payload(fast.payload)
    data = fast.data
    if fast.source == "panoptes" and fast.type == "classification":
        if data is None or data.links is None:
            return _read_carefully(document, bodies=bodies)
        return _classification_from(data, data.links)
    if fast.source == "talk" and fast.type == "comment":
        if data is None:
            return _read_carefully(document, bodies=bodies)
        return _comment_from(data)
    return IGNORED


def parse_event(event: EventBytes) -> ParsedEvent:
    """One stream event to a record; raises :class:`InvalidEvent` for a bad one of a counted
    type (:class:`NotJson` if it is not JSON at all)."""
    parsed = _read(event, bodies=False)
    assert not isinstance(parsed, list)
    return parsed


def read_line(document: EventBytes) -> ParsedEvent | list[msgspec.Raw]:
    """A line of an ndjson file: one stream event, parsed, or a whole ``{"payload": [...]}``
    body, whose events it returns undecoded."""
    return _read(document, bodies=True)


def body_events(document: EventBytes) -> list[msgspec.Raw]:
    """The events of a ``{"payload": [...]}`` body, each left undecoded."""
    try:
        body = _BODY.decode(document)
    except msgspec.ValidationError:  # before DecodeError, of which it is a kind
        raise NoPayload("not an object with a payload") from None
    except msgspec.DecodeError as error:
        raise NotJson(f"not valid JSON: {error}") from None
    if not len(body.payload):
        raise NoPayload("not an object with a payload")
    return split_payload(body.payload)


def split_payload(payload: EventBytes) -> list[msgspec.Raw]:
    """The events of a ``payload`` value, each left undecoded; raises :class:`InvalidEvent`
    when it is not a list."""
    try:
        return _EVENTS.decode(payload)
    except msgspec.ValidationError:
        raise InvalidEvent('"payload" must be a list of events') from None


def as_json(event: EventBytes) -> object:
    """An event as plain JSON values, for a rejection to keep."""
    return msgspec.json.decode(event)

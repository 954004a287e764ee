"""Rows of each input format turned into records, with the parsing rules of ``POST /kinesis``.

Every reader takes the lines of one source and yields, in order, one item per event or row:
a record to store, :class:`Ignored` for an event of another type, or :class:`Rejected` with
the line number where the bad row starts and the reason.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import orjson

from eras.ingest.events import (
    Classification,
    Comment,
    EventRejected,
    GroupMembership,
    Ignored,
    parse_already_seen,
    parse_classification,
    parse_event,
    parse_id,
    parse_timestamp,
    session_seconds,
)
from eras.store.bulk import ClassificationRow, CommentRow, classification_row, comment_row

# Panoptes exports carry annotations and subject data of any size in one field.
csv.field_size_limit(2**31 - 1)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that cannot be stored: where it is, why, and its content for the rejects file."""

    line: int
    reason: str
    row: object  # the event, the CSV row as a mapping of column to text, or the raw line
    event: int | None = None  # 1-based position in a {"payload": [...]} line


Item = Classification | Comment | GroupMembership | Ignored | Rejected
Reader = Callable[[Iterable[str]], Iterator[Item]]


# --- ndjson --------------------------------------------------------------------------------


def read_ndjson(lines: Iterable[str], *, first_line: int = 1) -> Iterator[Item]:
    """One stream event per line, or one ``{"payload": [...]}`` body per line.

    ``first_line`` is the number of the first of ``lines`` in its source.
    """
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield Rejected(number, f"not valid JSON: {error}", line.rstrip("\r\n"))
            continue
        if _is_body(document):
            payload = document["payload"]
            if not isinstance(payload, list):
                yield Rejected(number, '"payload" is not a list of events', document)
                continue
            for position, event in enumerate(payload, start=1):
                yield _stream_event(event, number, position)
        else:
            yield _stream_event(document, number, None)


@dataclass(slots=True)
class ParsedBlock:
    """What :func:`parse_ndjson_block` read: records as staging rows, ready to store.

    Compact on purpose: a block travels back from a parser process pickled, and tuples of
    numbers and text pickle several times faster than records holding datetimes.
    """

    classifications: list[ClassificationRow] = field(default_factory=list)
    comments: list[CommentRow] = field(default_factory=list)
    # Which list each record went to, in input order (0 classification, 1 comment): a chunk ends
    # after a given number of records, whichever their kind.
    kinds: bytearray = field(default_factory=bytearray)
    ignored: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    items: int = 0  # records, ignored events and rejected rows


def parse_ndjson_block(text: str, first_line: int) -> ParsedBlock:
    """Read a block of ndjson lines, the first of them line ``first_line`` of its source."""
    block = ParsedBlock()
    classifications, comments, kinds = block.classifications, block.comments, block.kinds
    # newline="" splits lines exactly where the source's text stream does.
    for item in read_ndjson(io.StringIO(text, newline=""), first_line=first_line):
        block.items += 1
        if isinstance(item, Classification):
            classifications.append(classification_row(item))
            kinds.append(0)
        elif isinstance(item, Comment):
            comments.append(comment_row(item))
            kinds.append(1)
        elif isinstance(item, Rejected):
            block.rejected.append(item)
        else:
            block.ignored += 1
    return block


def _is_body(document: object) -> bool:
    return isinstance(document, dict) and "payload" in document and "source" not in document


def _stream_event(event: object, line: int, position: int | None) -> Item:
    try:
        return parse_event(event)
    except EventRejected as error:
        return Rejected(line, error.reason, event, position)


# --- CSV -----------------------------------------------------------------------------------


def _csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, str]] | Rejected]:
    """``(line number, row)`` per CSV record, the line being where the record starts."""
    reader = csv.reader(iter(lines))
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        return
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Rejected(start, f"not valid CSV: {error}", None)
            continue
        if not values:
            continue  # a blank line
        if len(values) != len(header):
            yield Rejected(start, f"expected {len(header)} fields, found {len(values)}", values)
            continue
        yield start, dict(zip(header, values, strict=True))


def _csv_reader(parse_row: Callable[[dict[str, str]], Item]) -> Reader:
    def read(lines: Iterable[str]) -> Iterator[Item]:
        for entry in _csv_rows(lines):
            if isinstance(entry, Rejected):
                yield entry
                continue
            line, row = entry
            try:
                yield parse_row(row)
            except EventRejected as error:
                yield Rejected(line, error.reason, row)

    return read


# --- Panoptes classification export --------------------------------------------------------

# The stream's field names in parse_classification's reasons, as the export calls them.
_EXPORT_NAMES: Final = (
    ("data.links.workflow", "workflow_id"),
    ("data.links.user", "user_id"),
    ("data.links.project", "--project-id"),
    ("data.created_at", "created_at"),
    ("data.metadata", "metadata"),
    ("data.id", "classification_id"),
)


def panoptes_reader(project_id: int) -> Reader:
    """A Panoptes export: no project column, so every row counts for ``project_id``."""

    def parse_row(row: dict[str, str]) -> Item:
        text = row.get("metadata", "")
        try:
            metadata = orjson.loads(text) if text.strip() else None
        except orjson.JSONDecodeError:
            raise EventRejected("metadata is not valid JSON") from None
        # The same rules as a stream event: the row is read as the event it was exported from.
        data = {
            "id": row["classification_id"],
            "created_at": row["created_at"],
            "updated_at": None,
            "metadata": metadata,
            "links": {
                "project": project_id,
                "workflow": row["workflow_id"],
                "user": row.get("user_id"),
            },
        }
        try:
            return parse_classification(data)
        except EventRejected as error:
            reason = error.reason
            for stream_name, export_name in _EXPORT_NAMES:
                reason = reason.replace(stream_name, export_name)
            raise EventRejected(reason) from None

    return _csv_reader(parse_row)


# --- the original service's tables ---------------------------------------------------------


def _id(row: Mapping[str, str], column: str) -> int:
    number = parse_id(row.get(column), column, required=True)
    assert number is not None
    return number


def _optional_id(row: Mapping[str, str], column: str) -> int | None:
    return parse_id(row.get(column), column, required=False)


def _optional_time(row: Mapping[str, str], column: str) -> datetime | None:
    """A dump's timestamp: empty is NULL; anything else must parse."""
    text = row.get(column, "")
    if not text:
        return None
    parsed = parse_timestamp(text)
    if parsed is None:
        raise EventRejected(f"{column} is not a timestamp: {text[:64]!r}")
    return parsed


def _time(row: Mapping[str, str], column: str) -> datetime:
    parsed = _optional_time(row, column)
    if parsed is None:
        raise EventRejected(f"missing {column}")
    return parsed


def _seconds(row: Mapping[str, str], column: str) -> float | None:
    text = row.get(column, "")
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise EventRejected(f"{column} is not a number: {text[:64]!r}") from None
    if not math.isfinite(seconds):
        raise EventRejected(f"{column} is not a finite number: {text[:64]!r}")
    return seconds


def _group_ids(row: Mapping[str, str]) -> tuple[int, ...] | None:
    """A PostgreSQL array literal such as ``{1,2}``; empty is NULL."""
    text = row.get("user_group_ids", "").strip()
    if not text:
        return None
    if not (text.startswith("{") and text.endswith("}")):
        raise EventRejected(f"user_group_ids is not an array literal: {text[:64]!r}")
    inner = text[1:-1].strip()
    if not inner:
        return ()
    return tuple(_element_id(item) for item in inner.split(","))


def _element_id(item: str) -> int:
    number = parse_id(item.strip().strip('"'), "user_group_ids element", required=True)
    assert number is not None
    return number


def _eras_classification(row: dict[str, str]) -> Item:
    started_at = _optional_time(row, "started_at")
    finished_at = _optional_time(row, "finished_at")
    session_time = _seconds(row, "session_time")
    return Classification(
        classification_id=_id(row, "classification_id"),
        event_time=_time(row, "event_time"),
        updated_at=_optional_time(row, "classification_updated_at"),
        started_at=started_at,
        finished_at=finished_at,
        project_id=_id(row, "project_id"),
        workflow_id=_id(row, "workflow_id"),
        user_id=_optional_id(row, "user_id"),
        user_group_ids=_group_ids(row),
        # Kept as the original computed it, so totals after migration equal the original's.
        session_time=session_seconds(started_at, finished_at)
        if session_time is None
        else session_time,
        already_seen=parse_already_seen(row.get("already_seen")),
        # Membership comes from the classification_user_groups table, loaded on its own.
        group_ids=(),
    )


def _eras_group(row: dict[str, str]) -> Item:
    return GroupMembership(
        classification_id=_id(row, "classification_id"),
        event_time=_time(row, "event_time"),
        user_group_id=_id(row, "user_group_id"),
        session_time=_seconds(row, "session_time") or 0.0,
        project_id=_id(row, "project_id"),
        user_id=_id(row, "user_id"),
        workflow_id=_id(row, "workflow_id"),
    )


def _eras_comment(row: dict[str, str]) -> Item:
    return Comment(
        comment_id=_id(row, "comment_id"),
        event_time=_time(row, "event_time"),
        project_id=_optional_id(row, "project_id"),
        user_id=_optional_id(row, "user_id"),
    )


read_eras_classifications: Final = _csv_reader(_eras_classification)
read_eras_groups: Final = _csv_reader(_eras_group)
read_eras_comments: Final = _csv_reader(_eras_comment)

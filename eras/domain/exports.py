"""Rows of CSV files read into records: Panoptes classification exports, and the tables of the
original service.

A row is a mapping of column name to cell text. Every cell where a value may be missing reads
``NA``, ``NaN``, ``null``, ``None`` or an empty cell as missing (:func:`eras.domain.fields.cell`),
as exports that went through R, pandas or a spreadsheet write it; where a value is required, a
missing one is a rejection naming the column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from eras.domain.events import FieldNames, build_classification, decode_metadata
from eras.domain.fields import (
    cell,
    id_cell,
    parse_already_seen,
    parse_id,
    parse_timestamp,
    required_id,
)
from eras.domain.records import Classification, Comment, GroupMembership, InvalidEvent
from eras.domain.rules import session_seconds

Row = Mapping[str, str]

# --- Panoptes classification export --------------------------------------------------------

EXPORT_FIELDS: Final = FieldNames(
    id="classification_id",
    created_at="created_at",
    project="--project-id",
    workflow="workflow_id",
    user="user_id",
    group_ids="metadata.user_group_ids",
)


def parse_export_row(row: Row, project_id: int) -> Classification:
    """A row of a project's export, read as the stream event it was exported from.

    The export has no project column (``project_id`` is the project it was loaded for) and no
    ``updated_at``.
    """
    metadata_text = cell(row.get("metadata"))
    return build_classification(
        id=id_cell(row.get("classification_id")),
        created_at=cell(row.get("created_at")),
        updated_at=None,
        project=project_id,
        workflow=id_cell(row.get("workflow_id")),
        user=id_cell(row.get("user_id")),
        metadata=None if metadata_text is None else decode_metadata(metadata_text),
        names=EXPORT_FIELDS,
    )


# --- the original service's tables ---------------------------------------------------------


def _id(row: Row, column: str) -> int:
    return required_id(id_cell(row.get(column)), column)


def _optional_id(row: Row, column: str) -> int | None:
    return parse_id(id_cell(row.get(column)), column)


def _optional_time(row: Row, column: str) -> datetime | None:
    """A dump's timestamp: missing is NULL; anything else must parse."""
    text = cell(row.get(column))
    if text is None:
        return None
    parsed = parse_timestamp(text)
    if parsed is None:
        raise InvalidEvent(f"{column} is not a timestamp: {text[:64]!r}")
    return parsed


def _time(row: Row, column: str) -> datetime:
    parsed = _optional_time(row, column)
    if parsed is None:
        raise InvalidEvent(f"missing {column}")
    return parsed


def _seconds(row: Row, column: str) -> float | None:
    text = cell(row.get(column))
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidEvent(f"{column} is not a number: {text[:64]!r}") from None
    if not math.isfinite(seconds):
        raise InvalidEvent(f"{column} is not a finite number: {text[:64]!r}")
    return seconds


def _group_ids(row: Row) -> tuple[int, ...] | None:
    """A PostgreSQL array literal such as ``{1,2}``; missing is NULL."""
    text = cell(row.get("user_group_ids"))
    if text is None:
        return None
    if not (text.startswith("{") and text.endswith("}")):
        raise InvalidEvent(f"user_group_ids is not an array literal: {text[:64]!r}")
    inner = text[1:-1].strip()
    if not inner:
        return ()
    return tuple(
        required_id(id_cell(item.strip().strip('"')), "user_group_ids element")
        for item in inner.split(",")
    )


def parse_original_classification(row: Row) -> Classification:
    """A row of the original's ``classification_events``. Its group membership is kept in
    its own table, so the record carries none (``group_ids`` is ``None``)."""
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
        already_seen=parse_already_seen(cell(row.get("already_seen"))),
        group_ids=None,
    )


def parse_original_membership(row: Row) -> GroupMembership:
    """A row of the original's ``classification_user_groups``."""
    return GroupMembership(
        classification_id=_id(row, "classification_id"),
        event_time=_time(row, "event_time"),
        user_group_id=_id(row, "user_group_id"),
        session_time=_seconds(row, "session_time") or 0.0,
        project_id=_id(row, "project_id"),
        user_id=_id(row, "user_id"),
        workflow_id=_id(row, "workflow_id"),
    )


def parse_original_comment(row: Row) -> Comment:
    """A row of the original's ``comment_events``."""
    return Comment(
        comment_id=_id(row, "comment_id"),
        event_time=_time(row, "event_time"),
        project_id=_optional_id(row, "project_id"),
        user_id=_optional_id(row, "user_id"),
    )

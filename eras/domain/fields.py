"""Reading one field of an event or a row: ids, timestamps, flags, group lists, missing cells.

The stream and the file formats share these, so a value means the same whichever way it came.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from eras.domain.records import InvalidEvent

_MAX_ID: Final = 2**63 - 1
# How exports that passed through R, pandas, a spreadsheet or a database write "no value".
_MISSING_CELLS: Final = frozenset({"", "na", "nan", "null", "none"})
# pandas writes an integer column holding a missing value as floats: 1325316.0
_INTEGRAL_FLOAT: Final = re.compile(r"(\d+)\.0*")


def parse_timestamp(value: object) -> datetime | None:
    """ISO 8601 text to a naive UTC datetime; ``None`` when missing or unparseable.

    Naive UTC is what both databases store, so keys compare equal after a round trip.
    """
    if type(value) is not str or not value:
        return None
    # Almost every stream timestamp ends in "Z": read it as naive UTC directly, which is
    # several times faster than parsing the zone and converting.
    try:
        parsed = datetime.fromisoformat(value[:-1] if value[-1] == "Z" else value)
    except ValueError:
        return _parse_spaced_timestamp(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _parse_spaced_timestamp(value: str) -> datetime | None:
    """The rarer forms: surrounding spaces, and the " UTC" of Panoptes exports."""
    text = value.strip()
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


def required_timestamp(value: object, name: str) -> datetime:
    if value is None or value == "":
        raise InvalidEvent(f"missing {name}")
    parsed = parse_timestamp(value)
    if parsed is None:
        raise InvalidEvent(f"{name} is not an ISO 8601 timestamp: {str(value)[:64]!r}")
    return parsed


def parse_id(value: object, name: str) -> int | None:
    """A numeric id given as an integer or a string of digits; ``None`` when absent."""
    if value is None or value == "":
        return None
    if type(value) is int:
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    elif isinstance(value, bool):
        raise InvalidEvent(f"{name} is not a numeric id: {value!r}")
    else:
        raise InvalidEvent(f"{name} is not a numeric id: {str(value)[:64]!r}")
    if not 0 <= number <= _MAX_ID:
        raise InvalidEvent(f"{name} is out of range: {number}")
    return number


def required_id(value: object, name: str) -> int:
    number = parse_id(value, name)
    if number is None:
        raise InvalidEvent(f"missing {name}")
    return number


def parse_already_seen(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return None


def parse_group_ids(values: list[object] | None, name: str) -> tuple[int, ...] | None:
    if values is None:
        return None
    return tuple(required_id(item, f"{name}[]") for item in values)


# --- cells of CSV files --------------------------------------------------------------------


def cell(value: str | None) -> str | None:
    """A CSV cell's text, or ``None`` when it holds no value: empty, ``NA``, ``NaN``, ``null``
    or ``None`` (in any case), as R, pandas, spreadsheets and database dumps write it."""
    if value is None:
        return None
    text = value.strip()
    return None if text.lower() in _MISSING_CELLS else text


def id_cell(value: str | None) -> str | None:
    """An id cell: missing as :func:`cell`, and ``1325316.0`` read as ``1325316`` (pandas
    writes integers that way in a column with a missing value)."""
    text = cell(value)
    if text is None:
        return None
    whole = _INTEGRAL_FLOAT.fullmatch(text)
    return whole.group(1) if whole else text

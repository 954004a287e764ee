"""The lines of each input format read into records, by the domain's parsers.

Every reader takes the lines of one source and yields, in order, one item per event or row: a
record to store, ``IGNORED`` for an event of another type, or a :class:`Rejection` with the
line where the bad row starts.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Final

import msgspec

from eras.domain.events import NotJson, as_json, parse_event, read_line
from eras.domain.exports import (
    Row,
    parse_export_row,
    parse_original_classification,
    parse_original_comment,
    parse_original_membership,
)
from eras.domain.records import (
    Classification,
    Comment,
    GroupMembership,
    Ignored,
    InvalidEvent,
    Rejection,
)

# Panoptes exports carry annotations and subject data of any size in one field.
csv.field_size_limit(2**31 - 1)

Item = Classification | Comment | GroupMembership | Ignored | Rejection
Reader = Callable[[Iterable[str]], Iterator[Item]]


# --- ndjson --------------------------------------------------------------------------------


def read_ndjson(lines: Iterable[bytes], *, first_line: int = 1) -> Iterator[Item]:
    """One stream event per line, or one ``{"payload": [...]}`` body per line.

    ``first_line`` is the number of the first of ``lines`` in its source.
    """
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            read = read_line(line)
        except NotJson as error:
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            yield Rejection(reason=error.reason, event=text, line=number)
            continue
        except InvalidEvent as error:
            yield Rejection(reason=error.reason, event=as_json(line), line=number)
            continue
        if not isinstance(read, list):
            yield read
            continue
        for position, event in enumerate(read, start=1):
            try:
                yield parse_event(event)
            except InvalidEvent as error:
                yield Rejection(
                    reason=error.reason, event=as_json(event), line=number, position=position
                )


class ParsedBlock(msgspec.Struct, array_like=True):
    """What :func:`parse_ndjson_block` read, in the order it was read. Line numbers count from
    the block's first line; the loader adds the lines of the blocks before it.

    Parser processes send it back encoded as MessagePack (:data:`BLOCKS`): several times faster
    than pickle for records holding datetimes.
    """

    classifications: list[Classification] = msgspec.field(default_factory=list)
    comments: list[Comment] = msgspec.field(default_factory=list)
    # Which list each record went to, in input order (0 classification, 1 comment): a batch
    # ends after a given number of records, whichever their kind.
    kinds: bytearray = msgspec.field(default_factory=bytearray)
    ignored: int = 0
    rejected: list[Rejection] = msgspec.field(default_factory=list)
    items: int = 0  # records, ignored events and rejected rows
    lines: int = 0


_BLOCK_ENCODER: Final = msgspec.msgpack.Encoder()
BLOCKS: Final = msgspec.msgpack.Decoder(ParsedBlock)
_BOM: Final = b"\xef\xbb\xbf"


def parse_ndjson_block(data: bytes) -> bytes:
    """Read a block of whole ndjson lines; returns the :class:`ParsedBlock`, encoded."""
    block = ParsedBlock()
    classifications, comments, kinds = block.classifications, block.comments, block.kinds
    lines = data.splitlines()
    block.lines = len(lines)
    for item in read_ndjson(lines):
        block.items += 1
        if isinstance(item, Classification):
            classifications.append(item)
            kinds.append(0)
        elif isinstance(item, Comment):
            comments.append(item)
            kinds.append(1)
        elif isinstance(item, Rejection):
            block.rejected.append(item)
        else:
            block.ignored += 1
    return _BLOCK_ENCODER.encode(block)


def parse_ndjson_range(path: str, start: int, end: int) -> bytes:
    """:func:`parse_ndjson_block` of the lines between two byte offsets of a file, read here:
    a parser process reads its own part instead of being sent it."""
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read(end - start)
    return parse_ndjson_block(data.removeprefix(_BOM) if start == 0 else data)


# --- CSV -----------------------------------------------------------------------------------


def _csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, str]] | Rejection]:
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
            yield Rejection(reason=f"not valid CSV: {error}", event=None, line=start)
            continue
        if not values:
            continue  # a blank line
        if len(values) != len(header):
            yield Rejection(
                reason=f"expected {len(header)} fields, found {len(values)}",
                event=values,
                line=start,
            )
            continue
        yield start, dict(zip(header, values, strict=True))


def csv_reader(parse_row: Callable[[Row], Item]) -> Reader:
    def read(lines: Iterable[str]) -> Iterator[Item]:
        for entry in _csv_rows(lines):
            if isinstance(entry, Rejection):
                yield entry
                continue
            line, row = entry
            try:
                yield parse_row(row)
            except InvalidEvent as error:
                yield Rejection(reason=error.reason, event=row, line=line)

    return read


def panoptes_reader(project_id: int) -> Reader:
    """A Panoptes export: no project column, so every row counts for ``project_id``."""
    return csv_reader(lambda row: parse_export_row(row, project_id))


read_original_classifications: Final = csv_reader(parse_original_classification)
read_original_memberships: Final = csv_reader(parse_original_membership)
read_original_comments: Final = csv_reader(parse_original_comment)

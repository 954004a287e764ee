"""Input files: plain, gzip or zip, read one source at a time, with their format.

The format of a source is recognised from its first line: a JSON object starts an ndjson file;
otherwise the CSV header names the columns of a Panoptes export or of one of the original
service's tables.
"""

from __future__ import annotations

import csv
import enum
import gzip
import io
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, cast

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZIP_MAGIC: Final = b"PK\x03\x04"
_BOM: Final = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark some tools write first
# Bytes looked at to recognise a source's format; its first line ends within them.
_PEEK: Final = 1 << 16
_WINDOW: Final = 1 << 16  # bytes read at a time when looking for the end of a line
# What a truncated or corrupt file raises part-way through.
_READ_ERRORS: Final = (OSError, EOFError, UnicodeDecodeError, zlib.error, zipfile.BadZipFile)


class Format(enum.StrEnum):
    """What ``--format`` accepts."""

    NDJSON = "ndjson"
    PANOPTES_CSV = "panoptes-csv"
    ERAS_CSV = "eras-csv"


class Kind(enum.StrEnum):
    """What one source holds; the original's dump is one table per file."""

    NDJSON = "ndjson"
    PANOPTES_CSV = "panoptes-csv"
    CLASSIFICATION_EVENTS = "eras-csv classification_events"
    CLASSIFICATION_USER_GROUPS = "eras-csv classification_user_groups"
    COMMENT_EVENTS = "eras-csv comment_events"

    @property
    def input_format(self) -> Format:
        if self is Kind.NDJSON:
            return Format.NDJSON
        if self is Kind.PANOPTES_CSV:
            return Format.PANOPTES_CSV
        return Format.ERAS_CSV


# The columns that identify each CSV layout; other columns may come and go.
_SIGNATURES: Final = (
    (Kind.PANOPTES_CSV, {"classification_id", "user_name", "workflow_id", "created_at"}),
    (Kind.CLASSIFICATION_USER_GROUPS, {"classification_id", "event_time", "user_group_id"}),
    (Kind.CLASSIFICATION_EVENTS, {"classification_id", "event_time", "project_id"}),
    (Kind.COMMENT_EVENTS, {"comment_id", "event_time"}),
)


class InputError(Exception):
    """A file that cannot be loaded at all: unreadable, or of no known format."""


def detect(first_line: str) -> Kind | None:
    """The kind of a source from its first line, or ``None`` if it is of no known format."""
    if first_line.lstrip().startswith("{"):
        return Kind.NDJSON
    try:
        header = next(csv.reader([first_line]))
    except (csv.Error, StopIteration):
        return None
    columns = {column.strip() for column in header}
    for kind, signature in _SIGNATURES:
        if signature <= columns:
            return kind
    return None


@dataclass(slots=True)
class Source:
    """One stream of bytes: a plain file, a gzip file, or one member of a zip archive.

    CSV is read as text (:meth:`lines`); ndjson as bytes (:meth:`blocks`), which the JSON
    decoder reads directly, skipping a decode to text and back.
    """

    name: str
    kind: Kind | None  # None for an empty source
    first_line: str  # for recognising the format and for messages; not consumed
    stream: IO[bytes]
    # The file on disk when the source is all of it, uncompressed: then parser processes can
    # read their parts of it themselves (see ranges) instead of being sent them.
    path: Path | None = None

    def lines(self) -> Iterator[str]:
        """Every line as text, the first one included."""
        # newline="" keeps line ends inside quoted CSV fields for the csv module; utf-8-sig
        # drops a byte-order mark some tools write at the start of a CSV file.
        text = io.TextIOWrapper(self.stream, encoding="utf-8-sig", newline="")
        try:
            yield from text
        except _READ_ERRORS as error:
            raise InputError(f"cannot read {self.name}: {error}") from None

    def blocks(self, size: int) -> Iterator[bytes]:
        """The bytes in blocks of whole lines, about ``size`` bytes each (a longer line makes a
        longer block). Lines end at ``\n``, ``\r\n`` or a lone ``\r``, as
        ``bytes.splitlines`` ends them."""
        parts: list[bytes] = []
        first = True
        while True:
            try:
                data = self.stream.read(size)
            except _READ_ERRORS as error:
                raise InputError(f"cannot read {self.name}: {error}") from None
            if not data:
                break
            if first:
                data = data.removeprefix(_BOM)
                first = False
            end = _after_last_line_end(data)
            if not end:
                parts.append(data)
                continue
            parts.append(data[:end])
            yield b"".join(parts)
            parts = [data[end:]] if end < len(data) else []
        if parts:
            yield b"".join(parts)

    def ranges(self, size: int) -> Iterator[tuple[int, int]]:
        """The file (``path``) in byte ranges of whole lines, about ``size`` bytes each.

        Only the few bytes around each cut are read here, to find where a line ends; whoever
        parses a range reads it from the file.
        """
        assert self.path is not None
        with self.path.open("rb") as file:
            total = file.seek(0, os.SEEK_END)
            start = 0
            while start < total:
                end = _line_start_from(file, min(start + size, total), total)
                yield start, end
                start = end


_LINE_END: Final = re.compile(rb"\r\n|\n|\r")


def _line_start_from(file: IO[bytes], position: int, total: int) -> int:
    """The first place at or after ``position`` where a line starts, or ``total``.

    A line ends after ``\n``, after ``\r\n`` or after a lone ``\r``, as
    ``bytes.splitlines`` ends it. Reading starts one byte early: a line end there may make
    ``position`` itself a line start, or be the ``\r`` of a ``\r\n``.
    """
    if position >= total:
        return total
    offset = position - 1
    file.seek(offset)
    while window := file.read(_WINDOW):
        if window.endswith(b"\r"):
            window += file.read(1)  # the "\r" may be the start of "\r\n"
        for line_end in _LINE_END.finditer(window):
            start = offset + line_end.end()
            if start >= position:
                return start
        offset += len(window)
    return total


def _after_last_line_end(data: bytes) -> int:
    """Where the last complete line of ``data`` ends, 0 if none does. A ``\r`` at the very end
    may be the start of a ``\r\n``, so it does not end a line yet."""
    return max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1


class InputFile:
    """A file on disk and how far into it reading has got, for progress and its ETA."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.size = path.stat().st_size
        except OSError as error:
            raise InputError(f"cannot read {path}: {error.strerror or error}") from None
        self._raw: IO[bytes] | None = None
        self.kinds: set[Kind] = set()  # of its non-empty sources, once they have been opened

    def position(self) -> int:
        """Bytes of the file read so far (compressed bytes for a compressed file)."""
        raw = self._raw
        if raw is None or raw.closed:
            return self.size
        return raw.tell()

    @contextmanager
    def sources(self) -> Iterator[Iterator[Source]]:
        """Open the file; yields an iterator over its sources, each open until the next."""
        try:
            raw = self.path.open("rb")
        except OSError as error:
            raise InputError(f"cannot read {self.path}: {error.strerror or error}") from None
        with raw:
            self._raw = raw
            yield self._iterate(raw)

    def _iterate(self, raw: IO[bytes]) -> Iterator[Source]:
        magic = raw.read(4)
        raw.seek(0)
        name = str(self.path)
        if magic.startswith(_GZIP_MAGIC):
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield _source(name, cast(IO[bytes], unzipped))
        elif magic.startswith(_ZIP_MAGIC):
            yield from _zip_sources(name, raw)
        else:
            yield _source(name, raw, path=self.path)


def _zip_sources(name: str, raw: IO[bytes]) -> Iterator[Source]:
    try:
        archive = zipfile.ZipFile(raw)
    except zipfile.BadZipFile as error:
        raise InputError(f"{name} is not a readable zip archive: {error}") from None
    with archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            with archive.open(member) as stream:
                yield _source(f"{name}:{member.filename}", stream)


def _source(name: str, stream: IO[bytes], *, path: Path | None = None) -> Source:
    buffered = io.BufferedReader(cast(Any, stream), buffer_size=_PEEK)
    try:
        start = buffered.peek(_PEEK)[:_PEEK].removeprefix(_BOM)
    except _READ_ERRORS as error:
        raise InputError(f"cannot read {name}: {error}") from None
    end = min((i for i in (start.find(b"\n"), start.find(b"\r")) if i >= 0), default=len(start))
    first_line = start[:end].decode("utf-8", errors="replace")
    kind = detect(first_line) if start else None
    return Source(name=name, kind=kind, first_line=first_line, stream=buffered, path=path)

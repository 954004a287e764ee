"""Input files: plain, gzip or zip, read as text one source at a time, with their format.

The format of a source is recognised from its first line: a JSON object starts an ndjson file;
otherwise the CSV header names the columns of a Panoptes export or of one of the original
service's tables.
"""

from __future__ import annotations

import csv
import enum
import gzip
import io
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, cast

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZIP_MAGIC: Final = b"PK\x03\x04"
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
    """One stream of text: a plain file, a gzip file, or one member of a zip archive."""

    name: str
    kind: Kind | None  # None for an empty source
    first_line: str  # already read from ``text``
    text: IO[str]

    def lines(self) -> Iterator[str]:
        """Every line, the first one included."""
        if self.first_line:
            yield self.first_line
        try:
            yield from self.text
        except _READ_ERRORS as error:
            raise InputError(f"cannot read {self.name}: {error}") from None

    def blocks(self, size: int) -> Iterator[tuple[int, str]]:
        """The text in blocks of whole lines, about ``size`` characters each (a longer line makes a
        longer block), with the number of each block's first line.

        Lines end where :meth:`lines` ends them: at ``\n``, ``\r\n`` or a lone ``\r``.
        """
        line = 1
        parts = [self.first_line] if self.first_line else []
        while True:
            try:
                text = self.text.read(size)
            except _READ_ERRORS as error:
                raise InputError(f"cannot read {self.name}: {error}") from None
            if not text:
                break
            end = _after_last_line_end(text)
            if not end:
                parts.append(text)
                continue
            parts.append(text[:end])
            block = "".join(parts)
            parts = [text[end:]] if end < len(text) else []
            yield line, block
            line += _line_ends(block)
        if parts:
            yield line, "".join(parts)


def _after_last_line_end(text: str) -> int:
    """Where the last complete line of ``text`` ends, 0 if none does. A ``\r`` at the very end
    may be the start of a ``\r\n``, so it does not end a line yet."""
    return max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1)) + 1


def _line_ends(text: str) -> int:
    if "\r" not in text:
        return text.count("\n")
    return text.count("\n") + text.count("\r") - text.count("\r\n")


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
            yield _source(name, raw)


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


def _source(name: str, stream: IO[bytes]) -> Source:
    # newline="" keeps line ends inside quoted CSV fields for the csv module; utf-8-sig drops a
    # byte-order mark some tools write at the start of a CSV file.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        first_line = text.readline()
    except _READ_ERRORS as error:
        raise InputError(f"cannot read {name}: {error}") from None
    return Source(
        name=name, kind=detect(first_line) if first_line else None, first_line=first_line, text=text
    )

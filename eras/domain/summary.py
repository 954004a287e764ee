"""What became of the events of a write: the one result type, summed the one way."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class IngestSummary:
    """Per event or row: stored new, a repeat that changed nothing, a later version that
    replaced the stored one, of a type not counted, or set aside. They add up to the input."""

    inserted: int = 0
    duplicates: int = 0
    updated: int = 0
    ignored: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __iadd__(self, other: IngestSummary) -> IngestSummary:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.updated += other.updated
        self.ignored += other.ignored
        self.rejected += other.rejected
        return self

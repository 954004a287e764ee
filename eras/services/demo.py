"""``eras demo``: a generated, Zooniverse-shaped sample in an empty database, so that the
dashboard has full charts at once.

The sample is a small run of :mod:`eras.services.sample` (the benchmark's generator) ending now,
so today and the last seven days have numbers too. It is parsed and stored like a
``POST /kinesis`` body, through the one write path, in one transaction: a database holds the
whole sample or none of it. Loading it into a database that already holds events would mix
made-up numbers with real ones, so the demo loads only into an empty one; that also makes a
second run change nothing, on any day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from eras.domain.summary import IngestSummary
from eras.services.ingest import ingest_events
from eras.services.sample import Generator
from eras.store.database import Database
from eras.store.queries.activity import holds_events

DEMO_EVENTS: Final = 50_000
# Two years: every period of the picker has several buckets, and each day a few dozen events.
DEMO_SPAN: Final = timedelta(days=730)
DEMO_SEED: Final = 1


@dataclass(frozen=True, slots=True)
class DemoLoad:
    """What ``eras demo`` did: ``summary`` is None when the database already held events."""

    summary: IngestSummary | None
    start: datetime
    end: datetime


def load_demo(database: Database, *, now: datetime, events: int = DEMO_EVENTS) -> DemoLoad:
    start = now - DEMO_SPAN
    with database.read() as connection:
        if holds_events(connection):
            return DemoLoad(summary=None, start=start, end=now)
    lines = list(Generator(events, DEMO_SEED, start=start, span=DEMO_SPAN).lines())
    return DemoLoad(summary=ingest_events(database, lines), start=start, end=now)

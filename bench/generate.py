"""Synthetic stream events shaped like Zooniverse's, deterministic from a seed.

    .venv/bin/python -m bench.generate --events 2000000 --output events.ndjson
    .venv/bin/python -m bench.generate --events 50000000 --output - | gzip -1 > events.ndjson.gz

Writes one stream event per line; the generator itself, and the shape of what it writes, are in
:mod:`eras.services.sample` (``eras demo`` loads a small run of it). Event ``i`` of a run depends
only on the seed and ``--events``, so the same command always writes the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO

from eras.services.sample import (
    LARGEST_PROJECT_WORKFLOWS,
    Generator,
    Shape,
    first_workflow_id,
    group_id,
    project_id,
    user_id,
    workflow_count,
)

__all__ = [
    "LARGEST_PROJECT_WORKFLOWS",
    "Generator",
    "Shape",
    "first_workflow_id",
    "group_id",
    "main",
    "project_id",
    "user_id",
    "workflow_count",
    "write",
]


def write(
    events: int, seed: int, out: IO[bytes], *, skip: int = 0, limit: int | None = None
) -> int:
    """Write events ``skip`` to ``skip + limit`` of the run; returns how many were written."""
    written = 0
    for index, line in enumerate(Generator(events, seed).lines()):
        if index < skip:
            continue
        if limit is not None and written >= limit:
            break
        out.write(line)
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default="-", help="a file, or - for standard output")
    arguments = parser.parse_args()
    if arguments.output == "-":
        write(arguments.events, arguments.seed, sys.stdout.buffer)
    else:
        with open(arguments.output, "wb", buffering=1 << 20) as out:
            write(arguments.events, arguments.seed, out)


if __name__ == "__main__":
    main()

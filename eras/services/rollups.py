"""``eras rebuild-rollups`` and ``eras verify``: the rollups against the raw tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from eras.domain.rollups import ROLLUPS
from eras.store.database import Database
from eras.store.rollups import ROLLUP_NAMES, Difference, rebuild_rollups, rollup_differences


def rebuild(database: Database, *, on_rollup: Callable[[str, int], None]) -> dict[str, int]:
    """Recompute every rollup in one transaction; readers see old or new totals, never a mix."""
    return database.run_write(
        lambda connection: rebuild_rollups(connection, database.backend, on_rollup=on_rollup)
    )


def differences(database: Database, *, on_rollup: Callable[[str], None]) -> Iterator[Difference]:
    """Every rollup row that differs from the raw tables, rollup by rollup, in key order."""
    with database.read() as connection:
        for name in ROLLUP_NAMES:
            yield from rollup_differences(connection, database.backend, ROLLUPS[name])
            on_rollup(name)

"""How the read routes reach the database: statements compiled once, run by the driver.

An answer is a :class:`Plan`: the statements it reads (each a :class:`Read`, a compiled
:class:`Shape` with its values) and the function that turns their rows into the answer. The
backend's :class:`Reader` runs every read of a plan at once, in one snapshot: on PostgreSQL as
one statement in one round trip on an async connection (no worker thread), on SQLite on the event
loop under a deadline, and in a worker thread once a plan outruns it, so that a long read does
not stall the other requests.

Why not SQLAlchemy's execution: the statements are still built with SQLAlchemy Core and bound
by name, but compiling them once per shape and handing the SQL text to the driver skips what a
read would pay per request for SQLAlchemy's execution context, result processing and its
transaction round trips (``BEGIN``, ``COMMIT``), several times the cost of the read itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
U = TypeVar("U")

Rows = list[Any]  # the rows of one read, as the shape's row type


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """One statement compiled for one database: its SQL text, the values it binds itself, and
    how a row it returns becomes a named one (``row.total``, ``row.period``)."""

    sql: str
    defaults: Mapping[str, Any]
    make_row: Callable[[Iterable[Any]], Any]

    def rows(self, fetched: Iterable[Sequence[Any]]) -> Rows:
        make = self.make_row
        return [make(values) for values in fetched]


@dataclass(frozen=True, slots=True)
class Read:
    shape: Shape
    values: Mapping[str, Any] = field(default_factory=dict)

    def bound(self) -> dict[str, Any]:
        return {**self.shape.defaults, **self.values}


@dataclass(frozen=True, slots=True)
class Plan(Generic[T_co]):
    """The reads of one answer and how their rows make it."""

    reads: tuple[Read, ...]
    answer: Callable[[Sequence[Rows]], T_co]

    def then(self, change: Callable[[T_co], U]) -> Plan[U]:
        answer = self.answer
        return Plan(self.reads, lambda rows: change(answer(rows)))


def single(read: Read, answer: Callable[[Rows], T]) -> Plan[T]:
    return Plan((read,), lambda rows: answer(rows[0]))


def combined(first: Plan[T], second: Plan[U]) -> Plan[tuple[T, U]]:
    """Both plans' reads, in one snapshot."""
    split = len(first.reads)
    return Plan(
        first.reads + second.reads,
        lambda rows: (first.answer(rows[:split]), second.answer(rows[split:])),
    )


def nothing(value: T) -> Plan[T]:
    """An answer that needs no read."""
    return Plan((), lambda _rows: value)


class Reader(ABC):
    """Runs the reads of a plan; one per database, made by its backend."""

    @abstractmethod
    async def fetch(self, reads: Sequence[Read]) -> list[Rows]:
        """The rows of every read, from one snapshot of the database."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connections this reader holds."""

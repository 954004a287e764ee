"""The dashboard's own reads, as :class:`~eras.store.reads.Plan` s: the busiest projects of
recent days and the workflows of a project from the rollups, and the rejected events' count
and latest reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Select, bindparam, cast, func, literal, select

from eras.domain.activity import (
    BusiestProjects,
    ProjectActivity,
    ProjectWorkflows,
    RecentRejection,
    RejectionSummary,
    WorkflowActivity,
)
from eras.domain.query import DateRange
from eras.domain.rollups import FAMILY
from eras.store.backend import Backend
from eras.store.queries.counts import Group, groups, summed
from eras.store.reads import Plan, Read, Rows, Shape, combined, single
from eras.store.schema import (
    ROLLUP_TABLES,
    classification_events,
    comment_events,
    rejected_events,
)

# One statement per backend for each read below; built on first use.
_SHAPES: dict[tuple[str, type[Backend]], Shape] = {}


def _shape(name: str, backend: Backend, build: Any) -> Shape:
    key = (name, type(backend))
    shape = _SHAPES.get(key)
    if shape is None:
        statement: Select[Any] = build()
        shape = _SHAPES[key] = backend.compile_read(statement)
    return shape


def _busiest_statement() -> Select[Any]:
    # Daily rows only: the range is a few days, so there are no whole months to take instead.
    table = ROLLUP_TABLES["classification_project_daily"]
    total = summed(table.c.count, "total")
    return (
        select(table.c.project_id, total, summed(table.c.session_ms, "session_ms"))
        .where(table.c.day >= bindparam("start"), table.c.day <= bindparam("end"))
        .group_by(table.c.project_id)
        .order_by(total.desc(), table.c.project_id)
        .limit(bindparam("limit", type_=BigInteger))
    )


def busiest_projects(backend: Backend, *, dates: DateRange, limit: int) -> Plan[BusiestProjects]:
    """The ``limit`` projects with the most classifications over ``dates`` (both ends given),
    most first; ties go to the lower id."""
    assert dates.start is not None and dates.end is not None
    read = Read(
        _shape("busiest_projects", backend, _busiest_statement),
        {
            "start": backend.day_value(dates.start),
            "end": backend.day_value(dates.end),
            "limit": limit,
        },
    )

    def answer(rows: Rows) -> BusiestProjects:
        return BusiestProjects(
            dates=dates,
            projects=tuple(
                ProjectActivity(
                    project_id=row.project_id, count=row.total, session_ms=row.session_ms or 0
                )
                for row in rows
            ),
        )

    return single(read, answer)


def project_workflows(
    backend: Backend, *, project_id: int, recent: DateRange, days: int
) -> Plan[ProjectWorkflows]:
    """Every workflow with classifications in the project, most classified first, with its
    count over the ``recent`` days; two reads of the project-by-workflow rollup, one snapshot."""
    family = FAMILY["classification_project_workflow"]
    filters = {"project_id": (project_id,)}
    all_time = groups(backend, family=family, filters=filters, dates=DateRange(), by="workflow_id")
    lately = groups(backend, family=family, filters=filters, dates=recent, by="workflow_id")

    def answer(found: tuple[list[Group], list[Group]]) -> ProjectWorkflows:
        everything, recently = found
        recent_counts = {group.id: group.count for group in recently}
        return ProjectWorkflows(
            project_id=project_id,
            recent=recent,
            days=days,
            workflows=tuple(
                WorkflowActivity(
                    workflow_id=group.id,
                    count=group.count,
                    session_ms=group.session_ms,
                    recent_count=recent_counts.get(group.id, 0),
                )
                for group in everything
            ),
        )

    return combined(all_time, lately).then(answer)


def _rejection_count_statement() -> Select[Any]:
    return select(cast(func.count(), BigInteger).label("total")).select_from(rejected_events)


def _latest_rejections_statement() -> Select[Any]:
    table = rejected_events
    return (
        select(table.c.id, table.c.received_at, table.c.reason)
        .order_by(table.c.id.desc())
        .limit(bindparam("limit", type_=BigInteger))
    )


def _as_datetime(value: datetime | str) -> datetime:
    # SQLite gives times back as the stored text.
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def rejection_summary(backend: Backend, *, latest: int) -> Plan[RejectionSummary]:
    """How many events are set aside as rejected, and the ``latest`` most recent of them."""
    count = Read(_shape("rejection_count", backend, _rejection_count_statement))
    newest = Read(
        _shape("latest_rejections", backend, _latest_rejections_statement), {"limit": latest}
    )

    def answer(rows: list[Rows]) -> RejectionSummary:
        counted, listed = rows
        return RejectionSummary(
            count=counted[0].total,
            latest=tuple(
                RecentRejection(
                    id=row.id, received_at=_as_datetime(row.received_at), reason=row.reason
                )
                for row in listed
            ),
        )

    return Plan((count, newest), lambda rows: answer(list(rows)))


def holds_events(connection: Connection) -> bool:
    """Whether any classification or comment is stored: one row of a primary key, no scan."""
    for table in (classification_events, comment_events):
        if connection.execute(select(literal(1)).select_from(table).limit(1)).first():
            return True
    return False

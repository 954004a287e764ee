"""What the spurious-classification report reads: a window's rows of two daily rollups."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from eras.domain.report import ProjectDay, VolunteerDay, Window
from eras.store.schema import ROLLUP_TABLES

_PROJECTS = ROLLUP_TABLES["classification_project_daily"]
_VOLUNTEERS = ROLLUP_TABLES["classification_user_project_daily"]

# Built once; the window and the count are bound at each execution.
PROJECT_DAYS = select(_PROJECTS.c.project_id, _PROJECTS.c.day, _PROJECTS.c.count).where(
    _PROJECTS.c.day >= bindparam("start_day"), _PROJECTS.c.day <= bindparam("end_day")
)
# Only the days a volunteer could be flagged on: the rules look at nothing with fewer
# classifications, and there are few days with more.
VOLUNTEER_DAYS = select(
    _VOLUNTEERS.c.user_id,
    _VOLUNTEERS.c.project_id,
    _VOLUNTEERS.c.day,
    _VOLUNTEERS.c.count,
    _VOLUNTEERS.c.session_ms,
).where(
    _VOLUNTEERS.c.day >= bindparam("start_day"),
    _VOLUNTEERS.c.day <= bindparam("end_day"),
    _VOLUNTEERS.c.count > bindparam("min_count"),
)


@dataclass(frozen=True, slots=True)
class WindowRollups:
    project_days: list[ProjectDay]
    volunteer_days: list[VolunteerDay]


def window_rollups(
    connection: Connection, window: Window, *, volunteer_min_count: int
) -> WindowRollups:
    """Every project's days in the window, and the volunteer days in it with more than
    ``volunteer_min_count`` classifications. Call inside one read transaction, so that both
    come from the same snapshot."""
    bounds = {"start_day": window.start, "end_day": window.end}
    project_days = [
        ProjectDay(project_id=project_id, day=day, count=count)
        for project_id, day, count in connection.execute(PROJECT_DAYS, bounds)
    ]
    volunteer_days = [
        VolunteerDay(
            user_id=user_id, project_id=project_id, day=day, count=count, session_ms=session_ms
        )
        for user_id, project_id, day, count, session_ms in connection.execute(
            VOLUNTEER_DAYS, {**bounds, "min_count": volunteer_min_count}
        )
    ]
    return WindowRollups(project_days, volunteer_days)

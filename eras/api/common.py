"""Query parameter declarations shared by the read routes, so OpenAPI describes them once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from eras.api.params import RawCountParams
from eras.errors import BadRequest

IdList = Annotated[
    str | None,
    Query(description="One id or a comma-separated list; the counts of all listed ids are summed."),
]
DateParam = Annotated[
    str | None, Query(description="YYYY-MM-DD, inclusive, on the UTC day of the event.")
]
PeriodParam = Annotated[
    str | None,
    Query(description="day, week, month or year (case-insensitive); adds a bucketed `data` list."),
]
FlagParam = Annotated[str | None, Query(description="`true` (any case) turns it on.")]


async def common_count_parameters(
    project_id: IdList = None,
    workflow_id: IdList = None,
    start_date: DateParam = None,
    end_date: DateParam = None,
    period: PeriodParam = None,
) -> RawCountParams:
    """The parameters every classification route takes, declared once for OpenAPI."""
    return RawCountParams(project_id, workflow_id, start_date, end_date, period)


CountParamsDep = Annotated[RawCountParams, Depends(common_count_parameters)]


async def reject_unexpected_parameters(request: Request) -> None:
    """A repeated or unknown query parameter is a 400, never silently dropped.

    ``project_id=1&project_id=2`` would otherwise count only one of the projects, and a
    misspelt ``start_dat`` would answer all-time totals as if they were the asked range.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _query_parameters(route.dependant)
    seen: set[str] = set()
    for name, _value in request.query_params.multi_items():
        if name not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise BadRequest(f"Unknown parameter {name[:64]!r}; this route takes: {expected}")
        if name in seen:
            raise BadRequest(
                f"Parameter {name!r} is given more than once; "
                "list several ids in one comma-separated value"
            )
        seen.add(name)


def _query_parameters(dependant: Dependant) -> set[str]:
    """Every query parameter a route declares, its dependencies' included (a handful: cheap)."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_parameters(dependency)
    return names

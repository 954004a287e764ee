"""GET /classifications/users/{id}: a volunteer's own stats, behind a Panoptes bearer token."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Request
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from eras.api.common import (
    COUNT_PARAMETERS,
    FLAG,
    QueryParameter,
    count_parameters,
    openapi_parameters,
    query_values,
)
from eras.api.params import format_instant, format_period, parse_user_stats_params
from eras.api.responses import AUTH_ERROR_RESPONSES, read_response, seconds
from eras.api.routing import LeanRoute
from eras.auth.policy import authorize_user_stats
from eras.domain.query import ContributionOrder, UserStatsParams
from eras.domain.stats import UserStats
from eras.services.stats import volunteer_stats

router = APIRouter(tags=["personal stats"], route_class=LeanRoute)

# Declared for the OpenAPI description only; the header is parsed by the Authenticator.
bearer_scheme = HTTPBearer(auto_error=False, description="A Panoptes bearer token (JWT)")

UserId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The volunteer's Panoptes user id")]


class ProjectCount(BaseModel):
    project_id: int
    count: int
    last_contributed_at: str | None = None


class UserPeriodCount(BaseModel):
    period: str
    count: int
    session_time: float | None = None


class UserStatsResponse(BaseModel):
    total_count: int
    time_spent: float | None = None
    project_contributions: list[ProjectCount] | None = None
    data: list[UserPeriodCount] | None = None


def user_stats_body(stats: UserStats, params: UserStatsParams) -> dict[str, Any]:
    """Only the keys asked for, in the original's order."""
    totals = stats.totals
    body: dict[str, Any] = {"total_count": totals.count}
    if params.time_spent:
        body["time_spent"] = seconds(totals.session_ms)
    if stats.project_contributions is not None:
        recents = params.order_by is ContributionOrder.RECENTS
        body["project_contributions"] = [
            {"project_id": item.project_id, "count": item.count}
            | ({"last_contributed_at": format_instant(item.latest())} if recents else {})
            for item in stats.project_contributions
        ]
    if totals.buckets is not None:
        data = []
        for bucket in totals.buckets:
            entry: dict[str, Any] = {"period": format_period(bucket.start), "count": bucket.count}
            if params.time_spent:
                entry["session_time"] = seconds(bucket.session_ms)
            data.append(entry)
        body["data"] = data
    return body


USER_PARAMETERS: Final = (
    *COUNT_PARAMETERS,
    QueryParameter("time_spent", FLAG),
    QueryParameter("project_contributions", FLAG),
    QueryParameter(
        "order_project_contributions_by",
        "`count` (default, largest first) or `recents` (the latest classification in the "
        "range first, each entry with its `last_contributed_at`); case-insensitive.",
    ),
)


@router.get(
    "/classifications/users/{user_id}",
    response_model=UserStatsResponse,
    response_model_exclude_none=True,
    responses=AUTH_ERROR_RESPONSES,
    summary="A volunteer's classification stats",
    description="Readable by the volunteer themself and by Zooniverse admins. "
    "A trailing slash is accepted.",
    dependencies=[Depends(bearer_scheme)],
    openapi_extra=openapi_parameters(USER_PARAMETERS),
)
@router.get("/classifications/users/{user_id}/", include_in_schema=False)
async def get_user_stats(request: Request, user_id: UserId) -> Any:
    values = query_values(request, USER_PARAMETERS)
    state = request.app.state
    viewer = await state.authenticator.require(request.headers.get("authorization"))
    authorize_user_stats(viewer, user_id)
    params = parse_user_stats_params(
        count_parameters(values).parse(),
        time_spent=values.get("time_spent"),
        project_contributions=values.get("project_contributions"),
        order_project_contributions_by=values.get("order_project_contributions_by"),
    )
    stats = await volunteer_stats(state.database, user_id, params)
    return read_response(request, user_stats_body(stats, params), private=True)

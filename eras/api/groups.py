"""GET /classifications/user_groups/{id}: a group's stats, visible as the group decided."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from eras.api.common import (
    COUNT_PARAMETERS,
    FLAG,
    QueryParameter,
    count_parameters,
    openapi_parameters,
    query_values,
)
from eras.api.params import format_period, parse_group_stats_params
from eras.api.responses import AUTH_ERROR_RESPONSES, ErrorBody, read_response, seconds
from eras.api.routing import LeanRoute
from eras.api.users import bearer_scheme
from eras.domain.query import GroupStatsParams
from eras.domain.stats import Contribution, GroupAggregate, MemberStats
from eras.services.stats import group_member_stats, group_stats
from eras.store.database import Database

router = APIRouter(tags=["group stats"], route_class=LeanRoute)

GroupId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The Panoptes user group id")]


class ProjectStats(BaseModel):
    project_id: int
    count: int
    session_time: float


class ContributorStats(BaseModel):
    user_id: int
    count: int
    session_time: float


class GroupPeriodCount(BaseModel):
    period: str
    count: int
    session_time: float


class MemberBreakdown(ContributorStats):
    project_contributions: list[ProjectStats]


class GroupStatsResponse(BaseModel):
    total_count: int | None = None
    time_spent: float | None = None
    active_users: int | None = None
    project_contributions: list[ProjectStats] | None = None
    top_contributors: list[ContributorStats] | None = None
    data: list[GroupPeriodCount] | None = None
    group_member_stats_breakdown: list[MemberBreakdown] | None = None


def _projects(items: list[Contribution]) -> list[dict[str, Any]]:
    return [
        {"project_id": item.id, "count": item.count, "session_time": seconds(item.session_ms)}
        for item in items
    ]


def aggregate_body(aggregate: GroupAggregate) -> dict[str, Any]:
    totals = aggregate.totals
    body: dict[str, Any] = {
        "total_count": totals.count,
        "time_spent": seconds(totals.session_ms),
        "active_users": aggregate.active_users,
    }
    if aggregate.project_contributions is not None:
        body["project_contributions"] = _projects(aggregate.project_contributions)
    if aggregate.top_contributors is not None:
        body["top_contributors"] = [
            {"user_id": item.id, "count": item.count, "session_time": seconds(item.session_ms)}
            for item in aggregate.top_contributors
        ]
    if totals.buckets is not None:
        body["data"] = [
            {
                "period": format_period(bucket.start),
                "count": bucket.count,
                "session_time": seconds(bucket.session_ms),
            }
            for bucket in totals.buckets
        ]
    return body


def breakdown_body(members: list[MemberStats]) -> dict[str, Any]:
    return {
        "group_member_stats_breakdown": [
            {
                "user_id": member.user_id,
                "count": member.count,
                "session_time": seconds(member.session_ms),
                "project_contributions": _projects(member.projects),
            }
            for member in members
        ]
    }


async def _read_group_stats(database: Database, group_id: int, params: GroupStatsParams) -> Any:
    if params.individual_stats_breakdown:
        return breakdown_body(await group_member_stats(database, group_id, params))
    return aggregate_body(await group_stats(database, group_id, params))


GROUP_PARAMETERS: Final = (
    *COUNT_PARAMETERS,
    QueryParameter("top_contributors", "N: add the N members with the most classifications."),
    QueryParameter("individual_stats_breakdown", FLAG),
)


@router.get(
    "/classifications/user_groups/{group_id}",
    response_model=GroupStatsResponse,
    response_model_exclude_none=True,
    responses={**AUTH_ERROR_RESPONSES, 404: {"model": ErrorBody, "description": "No such group"}},
    dependencies=[Depends(bearer_scheme)],
    summary="A user group's classification stats",
    description="Who may read them depends on the group's stats_visibility in Panoptes: public "
    "aggregates need no token; private ones and member breakdowns need a member's or a group "
    "admin's token. A trailing slash is accepted.",
    openapi_extra=openapi_parameters(GROUP_PARAMETERS),
)
@router.get("/classifications/user_groups/{group_id}/", include_in_schema=False)
async def get_group_stats(request: Request, group_id: GroupId) -> Any:
    values = query_values(request, GROUP_PARAMETERS)
    params = parse_group_stats_params(
        count_parameters(values),
        top_contributors=values.get("top_contributors"),
        individual_stats_breakdown=values.get("individual_stats_breakdown"),
    )
    state = request.app.state
    needed_token = await state.group_access.check(
        group_id,
        request.headers.get("authorization"),
        breakdown=params.individual_stats_breakdown,
    )
    body = await _read_group_stats(state.database, group_id, params)
    return read_response(request, body, private=needed_token)

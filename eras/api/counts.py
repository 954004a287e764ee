"""GET /classifications and GET /comments: public counts, summed over comma-separated ids, or
broken down by id on request."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request

from eras.api.common import (
    BREAKDOWN,
    COUNT_PARAMETERS,
    END_DATE,
    FLAG,
    PERIOD,
    PROJECT_ID,
    START_DATE,
    USER_ID,
    QueryParameter,
    count_parameters,
    openapi_parameters,
    query_values,
)
from eras.api.params import parse_count_params, parse_flag, parse_ids
from eras.api.responses import (
    ERROR_RESPONSES,
    CountResponse,
    broken_down_body,
    count_body,
    read_response,
)
from eras.api.routing import LeanRoute
from eras.errors import BadRequest
from eras.services.stats import (
    classification_counts,
    classification_counts_by_id,
    comment_counts,
    comment_counts_by_id,
)

router = APIRouter(tags=["counts"], route_class=LeanRoute)

CLASSIFICATION_BREAKDOWN_NEEDS_IDS: Final = (
    "breakdown=true needs a project_id or a workflow_id list to break the counts down by"
)
COMMENT_BREAKDOWN_NEEDS_IDS: Final = (
    "breakdown=true needs a project_id or a user_id list to break the counts down by"
)
COMMENT_BREAKDOWN_BY_BOTH: Final = (
    "breakdown=true breaks comments down by project_id or by user_id: not both"
)

CLASSIFICATION_PARAMETERS: Final = (
    *COUNT_PARAMETERS,
    BREAKDOWN,
    QueryParameter(
        "time_spent", f"{FLAG} Adds `time_spent` and `data[].session_time`, in seconds."
    ),
)


@router.get(
    "/classifications",
    response_model=CountResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="Count classifications",
    description="A trailing slash is accepted.",
    openapi_extra=openapi_parameters(CLASSIFICATION_PARAMETERS),
)
@router.get("/classifications/", include_in_schema=False)
async def get_classification_counts(request: Request) -> Any:
    values = query_values(request, CLASSIFICATION_PARAMETERS)
    params = count_parameters(values).parse()
    time_spent = parse_flag(values.get("time_spent"))
    database = request.app.state.database
    if parse_flag(values.get("breakdown")):
        if not (params.project_ids or params.workflow_ids):
            raise BadRequest(CLASSIFICATION_BREAKDOWN_NEEDS_IDS)
        answer = await classification_counts_by_id(database, params)
        return read_response(request, broken_down_body(answer, time_spent=time_spent))
    totals = await classification_counts(database, params)
    return read_response(request, count_body(totals, time_spent=time_spent))


COMMENT_PARAMETERS: Final = (PROJECT_ID, USER_ID, START_DATE, END_DATE, PERIOD, BREAKDOWN)


@router.get(
    "/comments",
    response_model=CountResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="Count Talk comments",
    description="A trailing slash is accepted.",
    openapi_extra=openapi_parameters(COMMENT_PARAMETERS),
)
@router.get("/comments/", include_in_schema=False)
async def get_comment_counts(request: Request) -> Any:
    values = query_values(request, COMMENT_PARAMETERS)
    params = parse_count_params(
        project_id=values.get("project_id"),
        workflow_id=None,
        start_date=values.get("start_date"),
        end_date=values.get("end_date"),
        period=values.get("period"),
    )
    user_ids = parse_ids(values.get("user_id"), "user_id")
    database = request.app.state.database
    if parse_flag(values.get("breakdown")):
        if params.project_ids and user_ids:
            raise BadRequest(COMMENT_BREAKDOWN_BY_BOTH)
        if not (params.project_ids or user_ids):
            raise BadRequest(COMMENT_BREAKDOWN_NEEDS_IDS)
        answer = await comment_counts_by_id(database, params, user_ids)
        return read_response(request, broken_down_body(answer))
    totals = await comment_counts(database, params, user_ids)
    return read_response(request, count_body(totals))

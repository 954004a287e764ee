"""GET /classifications and GET /comments: public counts, summed over comma-separated ids."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from eras.api.common import (
    COUNT_PARAMETERS,
    END_DATE,
    PERIOD,
    PROJECT_ID,
    START_DATE,
    USER_ID,
    count_parameters,
    openapi_parameters,
    query_values,
)
from eras.api.params import parse_count_params, parse_ids
from eras.api.responses import ERROR_RESPONSES, CountResponse, FastJSONResponse, count_body
from eras.services.stats import classification_counts, comment_counts

router = APIRouter(tags=["counts"])


@router.get(
    "/classifications",
    response_model=CountResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="Count classifications",
    description="A trailing slash is accepted.",
    openapi_extra=openapi_parameters(COUNT_PARAMETERS),
)
@router.get("/classifications/", include_in_schema=False)
async def get_classification_counts(request: Request) -> Any:
    params = count_parameters(query_values(request, COUNT_PARAMETERS)).parse()
    totals = await run_in_threadpool(classification_counts, request.app.state.database, params)
    return FastJSONResponse(count_body(totals))


COMMENT_PARAMETERS: Final = (PROJECT_ID, USER_ID, START_DATE, END_DATE, PERIOD)


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
    totals = await run_in_threadpool(comment_counts, request.app.state.database, params, user_ids)
    return FastJSONResponse(count_body(totals))

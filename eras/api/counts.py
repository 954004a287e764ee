"""GET /classifications and GET /comments: public counts, summed over comma-separated ids."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from eras.api.common import CountParamsDep, DateParam, IdList, PeriodParam
from eras.api.dependencies import DatabaseDep
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
)
@router.get("/classifications/", include_in_schema=False)
def get_classification_counts(database: DatabaseDep, raw: CountParamsDep) -> Any:
    totals = classification_counts(database, raw.parse())
    return FastJSONResponse(count_body(totals))


@router.get(
    "/comments",
    response_model=CountResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="Count Talk comments",
    description="A trailing slash is accepted.",
)
@router.get("/comments/", include_in_schema=False)
def get_comment_counts(
    database: DatabaseDep,
    project_id: IdList = None,
    user_id: IdList = None,
    start_date: DateParam = None,
    end_date: DateParam = None,
    period: PeriodParam = None,
) -> Any:
    params = parse_count_params(
        project_id=project_id,
        workflow_id=None,
        start_date=start_date,
        end_date=end_date,
        period=period,
    )
    totals = comment_counts(database, params, parse_ids(user_id, "user_id"))
    return FastJSONResponse(count_body(totals))

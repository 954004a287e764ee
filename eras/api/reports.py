"""GET /reports/spurious: the spurious-classification report, for Zooniverse admins."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from eras.api.common import reject_repeated_parameters
from eras.api.dependencies import AuthenticatorDep, DatabaseDep
from eras.api.params import parse_date
from eras.api.responses import AUTH_ERROR_RESPONSES, ErrorBody, read_response
from eras.api.users import bearer_scheme
from eras.auth.policy import authorize_admin
from eras.domain.report import EARLIEST_UNTIL, InvalidThreshold, thresholds_from
from eras.errors import BadRequest
from eras.services.report import report_body, spurious_report, today

router = APIRouter(tags=["reports"], dependencies=[Depends(reject_repeated_parameters)])

UNTIL_TOO_EARLY: Final = f"until must be {EARLIEST_UNTIL.isoformat()} or later"

Count = Annotated[str | None, Query(description="A whole number.")]
Number = Annotated[str | None, Query(description="A number, such as 1 or 0.5.")]


class ReportWindow(BaseModel):
    start_date: str
    end_date: str


class FlaggedProjectBody(BaseModel):
    project_id: int
    dates: list[str]


class FlaggedVolunteersBody(BaseModel):
    project_id: int
    user_ids: list[int]


class TierListsBody(BaseModel):
    tier_one: list[FlaggedVolunteersBody]
    duty_of_care: list[FlaggedVolunteersBody]
    tier_two: list[FlaggedVolunteersBody]


class SpuriousReportBody(TierListsBody):
    window: ReportWindow
    projects: list[FlaggedProjectBody]
    any_project: TierListsBody


@router.get(
    "/reports/spurious",
    response_model=SpuriousReportBody,
    responses={
        **AUTH_ERROR_RESPONSES,
        403: {"model": ErrorBody, "description": "The token's user is not a Zooniverse admin"},
    },
    dependencies=[Depends(bearer_scheme)],
    summary="Potential spurious classifications in the seven UTC days before `until`",
    description="Zooniverse admins only. Projects whose daily count jumps, and volunteers "
    "classifying suspiciously much in a day, on those projects and on any project; every "
    "threshold can be changed. See docs/operations.md for the rules.",
)
async def get_spurious_report(
    request: Request,
    database: DatabaseDep,
    authenticator: AuthenticatorDep,
    until: Annotated[
        str | None,
        Query(description="YYYY-MM-DD, the day after the window (default: today, UTC)."),
    ] = None,
    project_min_count: Count = None,
    project_min_rate: Number = None,
    project_min_difference: Number = None,
    volunteer_min_count: Count = None,
    tier_min: Count = None,
    tier_max: Count = None,
    tier_one_rate: Number = None,
    duty_of_care_seconds: Number = None,
    tier_two_min: Count = None,
) -> Any:
    viewer = await authenticator.require(request.headers.get("authorization"))
    authorize_admin(viewer)
    day = parse_date(until) or today()
    if day < EARLIEST_UNTIL:
        raise BadRequest(UNTIL_TOO_EARLY)
    try:
        thresholds = thresholds_from(
            {
                "project_min_count": project_min_count,
                "project_min_rate": project_min_rate,
                "project_min_difference": project_min_difference,
                "volunteer_min_count": volunteer_min_count,
                "tier_min": tier_min,
                "tier_max": tier_max,
                "tier_one_rate": tier_one_rate,
                "duty_of_care_seconds": duty_of_care_seconds,
                "tier_two_min": tier_two_min,
            }
        )
    except InvalidThreshold as error:
        raise BadRequest(str(error)) from None
    report = await run_in_threadpool(spurious_report, database, day, thresholds)
    return read_response(request, report_body(report), private=True)

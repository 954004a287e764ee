"""GET /dashboard/: the stats as charts in the browser, and the few reads the public API cannot
answer (the busiest projects of recent days, the workflows of a project, the operator's view).

The pages are static HTML, CSS and ES modules from ``eras/dashboard/``; they draw with
plotly.js, served from the ``plotly`` package installed with eras, so nothing is fetched from
anywhere but this service. Everything else the pages show comes from the public routes.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel

from eras.api.common import QueryParameter, openapi_parameters, query_values
from eras.api.observability import Metrics
from eras.api.params import format_instant, parse_ids, present
from eras.api.responses import AUTH_ERROR_RESPONSES, ERROR_RESPONSES, read_response, seconds
from eras.api.users import bearer_scheme
from eras.auth.policy import authorize_admin
from eras.auth.tokens import Authenticator
from eras.errors import BadRequest, NotFound
from eras.services.stats import busiest_projects, project_workflows, rejections

router = APIRouter(tags=["dashboard"])

ASSETS: Final = resources.files("eras") / "dashboard"
PAGES: Final = ("overview", "project", "group", "volunteer", "operator")
# Only scripts, styles and data from this service; plotly.js sets inline styles on its SVG.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
MAX_DAYS: Final = 366
MAX_LIMIT: Final = 100
MAX_LATEST_REJECTIONS: Final = 20


@cache
def _page_html() -> str:
    return (ASSETS / "index.html").read_text(encoding="utf-8")


def _page(name: str) -> HTMLResponse:
    html = _page_html().replace("@page@", name)
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


HTML_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The page"},
}


@router.get(
    "/dashboard/",
    response_class=HTMLResponse,
    responses=HTML_RESPONSE,
    summary="The dashboard: site-wide counts, busiest projects",
    description="Other pages: /dashboard/project, /dashboard/group, /dashboard/volunteer and "
    "/dashboard/operator. See docs/dashboard.md.",
)
async def get_overview_page() -> HTMLResponse:
    return _page("overview")


@router.get("/dashboard/project", response_class=HTMLResponse, responses=HTML_RESPONSE)
async def get_project_page() -> HTMLResponse:
    """A project's classifications, comments, time spent and workflows."""
    return _page("project")


@router.get("/dashboard/group", response_class=HTMLResponse, responses=HTML_RESPONSE)
async def get_group_page() -> HTMLResponse:
    """A user group's stats under its visibility rules."""
    return _page("group")


@router.get("/dashboard/volunteer", response_class=HTMLResponse, responses=HTML_RESPONSE)
async def get_volunteer_page() -> HTMLResponse:
    """A volunteer's own stats, with their token."""
    return _page("volunteer")


@router.get("/dashboard/operator", response_class=HTMLResponse, responses=HTML_RESPONSE)
async def get_operator_page() -> HTMLResponse:
    """Ingest, rejected events and the spurious report, with an admin token."""
    return _page("operator")


@cache
def plotly_path() -> Path:
    """plotly.min.js as the ``plotly`` wheel ships it, found without importing the package."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise NotFound("plotly is not installed")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


@router.get("/dashboard/static/plotly.min.js", include_in_schema=False)
async def get_plotly() -> FileResponse:
    # The same file until plotly is upgraded with eras: a day in the cache, then revalidated.
    return FileResponse(
        plotly_path(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
    )


_ASSET_TYPES: Final = {".js": "text/javascript", ".css": "text/css"}


@router.get("/dashboard/static/{name}", include_in_schema=False)
async def get_asset(name: str) -> FileResponse:
    """The pages' own scripts and styles: plain names in one directory, nothing else."""
    suffix = Path(name).suffix
    asset = ASSETS / "static" / name
    if "/" in name or name.startswith(".") or suffix not in _ASSET_TYPES or not asset.is_file():
        raise NotFound(f"No dashboard file {name!r}")
    return FileResponse(
        Path(str(asset)), media_type=_ASSET_TYPES[suffix], headers={"Cache-Control": "no-cache"}
    )


# --- data the public routes cannot give --------------------------------------------------

DAYS: Final = QueryParameter(
    "days", f"UTC days ending today, today included: 1 to {MAX_DAYS} (default 7)."
)
LIMIT: Final = QueryParameter("limit", f"How many projects: 1 to {MAX_LIMIT} (default 10).")
ONE_PROJECT: Final = QueryParameter("project_id", "One project id (required).")


def _whole_number(values: dict[str, str], name: str, default: int, largest: int) -> int:
    text = present(values.get(name))
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= largest:
        raise BadRequest(f"Invalid {name}: expected a whole number from 1 to {largest}")
    return int(text)


class ProjectActivityBody(BaseModel):
    project_id: int
    total_count: int
    time_spent: float


class BusiestProjectsBody(BaseModel):
    start_date: str
    end_date: str
    projects: list[ProjectActivityBody]


@router.get(
    "/dashboard/data/busiest_projects",
    response_model=BusiestProjectsBody,
    responses=ERROR_RESPONSES,
    summary="The projects with the most classifications over the last days",
    openapi_extra=openapi_parameters((DAYS, LIMIT)),
)
async def get_busiest_projects(request: Request) -> Any:
    values = query_values(request, (DAYS, LIMIT))
    days = _whole_number(values, "days", 7, MAX_DAYS)
    limit = _whole_number(values, "limit", 10, MAX_LIMIT)
    answer = await busiest_projects(request.app.state.database, days=days, limit=limit)
    assert answer.dates.start is not None and answer.dates.end is not None
    body = {
        "start_date": answer.dates.start.isoformat(),
        "end_date": answer.dates.end.isoformat(),
        "projects": [
            {
                "project_id": project.project_id,
                "total_count": project.count,
                "time_spent": seconds(project.session_ms),
            }
            for project in answer.projects
        ],
    }
    return read_response(request, body)


class WorkflowActivityBody(BaseModel):
    workflow_id: int
    total_count: int
    time_spent: float
    recent_count: int
    daily_rate: float


class ProjectWorkflowsBody(BaseModel):
    project_id: int
    days: int
    start_date: str
    end_date: str
    workflows: list[WorkflowActivityBody]


@router.get(
    "/dashboard/data/project_workflows",
    response_model=ProjectWorkflowsBody,
    responses=ERROR_RESPONSES,
    summary="The workflows found in a project's classifications, with their recent daily rate",
    description="Most classified first. `recent_count` covers the last `days` UTC days, today "
    "included; `daily_rate` is that count divided by `days`.",
    openapi_extra=openapi_parameters((ONE_PROJECT, DAYS)),
)
async def get_project_workflows(request: Request) -> Any:
    values = query_values(request, (ONE_PROJECT, DAYS))
    ids = parse_ids(values.get("project_id"), "project_id")
    if len(ids) != 1:
        raise BadRequest("project_id is required: one project id")
    days = _whole_number(values, "days", 14, MAX_DAYS)
    answer = await project_workflows(request.app.state.database, ids[0], days=days)
    assert answer.recent.start is not None and answer.recent.end is not None
    body = {
        "project_id": answer.project_id,
        "days": answer.days,
        "start_date": answer.recent.start.isoformat(),
        "end_date": answer.recent.end.isoformat(),
        "workflows": [
            {
                "workflow_id": workflow.workflow_id,
                "total_count": workflow.count,
                "time_spent": seconds(workflow.session_ms),
                "recent_count": workflow.recent_count,
                "daily_rate": round(workflow.recent_count / answer.days, 2),
            }
            for workflow in answer.workflows
        ],
    }
    return read_response(request, body)


class RejectionBody(BaseModel):
    id: int
    received_at: str
    reason: str


class RejectedBody(BaseModel):
    count: int
    latest: list[RejectionBody]


class OperatorBody(BaseModel):
    started_at: str
    ingested: dict[str, int]
    rejected: RejectedBody


@router.get(
    "/dashboard/data/operator",
    response_model=OperatorBody,
    responses=AUTH_ERROR_RESPONSES,
    dependencies=[Depends(bearer_scheme)],
    summary="What ingest did since the service started, and the rejected events",
    description="Zooniverse admins only. `ingested` counts the events POST /kinesis received "
    f"since `started_at`, by outcome; `rejected` the events set aside, with the latest "
    f"{MAX_LATEST_REJECTIONS} reasons.",
)
async def get_operator_data(request: Request) -> Any:
    authenticator: Authenticator = request.app.state.authenticator
    authorize_admin(await authenticator.require(request.headers.get("authorization")))
    metrics: Metrics = request.app.state.metrics
    summary = await rejections(request.app.state.database, latest=MAX_LATEST_REJECTIONS)
    body = {
        "started_at": format_instant(metrics.started_at.replace(tzinfo=None)),
        "ingested": metrics.ingest_totals(),
        "rejected": {
            "count": summary.count,
            "latest": [
                {
                    "id": rejection.id,
                    "received_at": format_instant(rejection.received_at),
                    "reason": rejection.reason,
                }
                for rejection in summary.latest
            ],
        },
    }
    return read_response(request, body, private=True)

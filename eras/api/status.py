"""GET /: which build is answering."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from eras.api.responses import NOT_MODIFIED, read_response
from eras.api.routing import LeanRoute

router = APIRouter(tags=["status"], route_class=LeanRoute)


class StatusResponse(BaseModel):
    revision: str


@router.get(
    "/",
    response_model=StatusResponse,
    summary="Service status",
    responses=NOT_MODIFIED,
)
async def get_status(request: Request) -> Any:
    return read_response(request, {"revision": request.app.state.revision})

"""GET /: which build is answering."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from eras.api.common import query_values
from eras.api.responses import ErrorBody, FastJSONResponse

router = APIRouter(tags=["status"])


class StatusResponse(BaseModel):
    revision: str


@router.get(
    "/",
    response_model=StatusResponse,
    summary="Service status",
    responses={400: {"model": ErrorBody, "description": "A query parameter was given"}},
)
async def get_status(request: Request) -> Any:
    query_values(request, ())  # takes none
    return FastJSONResponse({"revision": request.app.state.revision})

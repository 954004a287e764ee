"""The JSON responses of the read routes (with their ETags) and the shapes of the count routes."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from eras.api.params import format_period
from eras.domain.stats import BrokenDown, Totals


class FastJSONResponse(JSONResponse):
    """JSON rendered by orjson: several times faster than the standard library encoder."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# Counts change every second, so a client must always ask; with the ETag it asks cheaply.
PUBLIC: Final = "no-cache"
# Answers only their reader may see: no shared cache may keep them.
PRIVATE: Final = "private, no-cache"


def entity_tag(content: bytes) -> str:
    """A strong ETag: the answer's digest, so it changes exactly when the answer does."""
    return f'"{hashlib.blake2b(content, digest_size=16).hexdigest()}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    # If-None-Match compares weakly (RFC 9110 13.1.2): a W/ prefix does not matter.
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def read_response(request: Request, body: Any, *, private: bool = False) -> Response:
    """``body`` as JSON with its ETag, or 304 with no body when the client already has it.

    Call it only once the request is authorized: a 304 tells as much as the 200 would.
    """
    content = orjson.dumps(body)
    etag = entity_tag(content)
    headers = {"ETag": etag, "Cache-Control": PRIVATE if private else PUBLIC}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)


class ErrorBody(BaseModel):
    error: str


class PeriodCount(BaseModel):
    period: str
    count: int
    session_time: float | None = None


class IdCount(BaseModel):
    """One listed id's answer, the id under the name of the parameter that listed it."""

    project_id: int | None = None
    workflow_id: int | None = None
    user_id: int | None = None
    total_count: int
    time_spent: float | None = None
    data: list[PeriodCount] | None = None


class CountResponse(BaseModel):
    total_count: int
    time_spent: float | None = None
    data: list[PeriodCount] | None = None
    breakdown: list[IdCount] | None = None


def seconds(milliseconds: int) -> float:
    return milliseconds / 1000


def count_body(totals: Totals, *, time_spent: bool = False) -> dict[str, Any]:
    """``{"total_count": N}``, plus ``time_spent`` when asked for and ``data`` when a period
    was."""
    body: dict[str, Any] = {"total_count": totals.count}
    if time_spent:
        body["time_spent"] = seconds(totals.session_ms)
    if totals.buckets is not None:
        data = []
        for bucket in totals.buckets:
            entry: dict[str, Any] = {"period": format_period(bucket.start), "count": bucket.count}
            if time_spent:
                entry["session_time"] = seconds(bucket.session_ms)
            data.append(entry)
        body["data"] = data
    return body


def broken_down_body(answer: BrokenDown, *, time_spent: bool = False) -> dict[str, Any]:
    """The summed answer, and ``breakdown``: the same keys for each listed id."""
    body = count_body(answer.totals, time_spent=time_spent)
    body["breakdown"] = [
        {answer.by: entry.id, **count_body(entry.totals, time_spent=time_spent)}
        for entry in answer.entries
    ]
    return body


NOT_MODIFIED: Final[dict[int | str, dict[str, Any]]] = {
    304: {"description": "Not modified: the `If-None-Match` ETag is the current answer's"},
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **NOT_MODIFIED,
    400: {"model": ErrorBody, "description": "Invalid parameters"},
    503: {"model": ErrorBody, "description": "The database or Panoptes could not be reached"},
}
AUTH_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    401: {"model": ErrorBody, "description": "Missing, malformed, invalid or expired token"},
    403: {"model": ErrorBody, "description": "The token's user may not see these stats"},
}

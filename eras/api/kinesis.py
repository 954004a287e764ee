"""POST /kinesis: batches of Panoptes and Talk stream events from the stream forwarder."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.security.http import HTTPBase
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from eras.api.common import reject_repeated_parameters
from eras.api.dependencies import DatabaseDep, SettingsDep
from eras.api.responses import ErrorBody, FastJSONResponse
from eras.config import Settings
from eras.domain.events import NoPayload, NotJson, body_events
from eras.domain.records import InvalidEvent
from eras.errors import BadRequest, Forbidden, PayloadTooLarge
from eras.services.ingest import ingest_events

router = APIRouter(tags=["ingest"], dependencies=[Depends(reject_repeated_parameters)])


class _DocumentedBasicAuth(HTTPBase):
    """Puts HTTP Basic in the OpenAPI description; the header itself is checked below.

    FastAPI's own HTTPBasic answers a garbled header with its own 401 even when told not to
    raise; this service answers every credential failure the same way, with 403.
    """

    def __init__(self) -> None:
        super().__init__(
            scheme="basic",
            scheme_name="HTTPBasic",
            description="The stream forwarder's credentials",
            auto_error=False,
        )

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


basic_scheme = _DocumentedBasicAuth()


class IngestSummaryBody(BaseModel):
    """What happened to each event of the batch; the numbers add up to the batch size."""

    inserted: int
    duplicates: int
    updated: int
    ignored: int
    rejected: int


def _basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    username, separator, password = decoded.partition(b":")
    if not separator:
        return None
    return username, password


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def check_ingest_credentials(authorization: str | None, settings: Settings) -> None:
    """HTTP Basic credentials, compared in constant time.

    With no credentials configured, only a development server accepts events.
    """
    if not settings.ingest_credentials_configured:
        if settings.env == "development":
            return
        raise Forbidden("Ingest credentials are not configured on this server")
    assert settings.kinesis_username is not None and settings.kinesis_password is not None
    given = _basic_credentials(authorization)
    given_username, given_password = given if given is not None else (b"", b"")
    expected_username = settings.kinesis_username.get_secret_value().encode()
    expected_password = settings.kinesis_password.get_secret_value().encode()
    # Fixed-length digests, compared in constant time, and both comparisons always run: the
    # time taken says nothing about which part was wrong, how much of it, or how long it is.
    username_ok = secrets.compare_digest(_digest(given_username), _digest(expected_username))
    password_ok = secrets.compare_digest(_digest(given_password), _digest(expected_password))
    if given is None or not (username_ok & password_ok):
        raise Forbidden("Invalid or missing ingest credentials")


async def require_ingest_credentials(request: Request, settings: SettingsDep) -> None:
    check_ingest_credentials(request.headers.get("authorization"), settings)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes")
    body = bytearray()
    async for part in request.stream():
        body.extend(part)
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes")
    return bytes(body)


def _events(body: bytes, settings: Settings) -> list[msgspec.Raw]:
    try:
        events = body_events(body)
    except NotJson:
        raise BadRequest("Request body is not valid JSON") from None
    except NoPayload:
        raise BadRequest(
            'Request body must be a JSON object with a "payload" list of events'
        ) from None
    except InvalidEvent as error:
        raise BadRequest(error.reason) from None
    if len(events) > settings.max_events_per_batch:
        raise PayloadTooLarge(
            f"Too many events in one batch: {len(events)}, "
            f"the limit is {settings.max_events_per_batch}"
        )
    return events


_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["payload"],
                "properties": {
                    "payload": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "description": "A stream envelope: source, type, version, "
                            "timestamp, data, linked.",
                        },
                    }
                },
            }
        }
    },
}


@router.post(
    "/kinesis",
    summary="Ingest a batch of stream events",
    dependencies=[Depends(basic_scheme), Depends(require_ingest_credentials)],
    response_model=IngestSummaryBody,
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        200: {"description": "Counts of what happened to the batch's events"},
        400: {"model": ErrorBody, "description": "Body is not JSON or has no payload list"},
        403: {"model": ErrorBody, "description": "Missing or wrong Basic credentials"},
        413: {"model": ErrorBody, "description": "Body or batch too large"},
        503: {"model": ErrorBody, "description": "The database could not be reached"},
    },
)
async def post_kinesis(request: Request, settings: SettingsDep, database: DatabaseDep) -> Any:
    events = _events(await _read_body(request, settings.max_body_bytes), settings)
    summary = await run_in_threadpool(ingest_events, database, events)
    counts = summary.as_dict()
    request.app.state.metrics.count_ingest(counts)
    return FastJSONResponse(counts)

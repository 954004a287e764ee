"""GET /metrics: Prometheus text format, optionally behind its own bearer token."""

from __future__ import annotations

import hashlib
import secrets

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from eras.api.common import reject_repeated_parameters
from eras.api.dependencies import SettingsDep
from eras.api.observability import Metrics
from eras.auth.tokens import bearer_token
from eras.errors import Unauthenticated

router = APIRouter(dependencies=[Depends(reject_repeated_parameters)])


def _digest(text: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison's time independent of the length too.
    return hashlib.sha256(text.encode()).digest()


@router.get("/metrics", include_in_schema=False)
async def get_metrics(request: Request, settings: SettingsDep) -> Response:
    if settings.metrics_token is not None:
        given = bearer_token(request.headers.get("authorization")) or ""
        expected = settings.metrics_token.get_secret_value()
        if not secrets.compare_digest(_digest(given), _digest(expected)):
            raise Unauthenticated("A valid metrics token is required")
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

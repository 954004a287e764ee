"""HTTP client for the Panoptes API, with bounded timeouts and connection limits."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from eras.errors import Unauthenticated, UpstreamUnavailable

log = logging.getLogger("eras.panoptes")

# Panoptes routes API requests on this media type; without it the API answers 404.
API_ACCEPT = "application/vnd.api+json; version=1"
AUTH_UNAVAILABLE = "Could not check authentication with Panoptes"


class PanoptesClient:
    """One shared connection pool; every call fails fast with 503 when Panoptes misbehaves."""

    def __init__(self, base_url: str, *, timeout_seconds: float, max_connections: int = 20):
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Accept": API_ACCEPT},
            # The pool timeout bounds how long a request waits for a free connection, so a slow
            # Panoptes makes requests fail with 503 instead of piling up.
            timeout=httpx.Timeout(timeout_seconds, pool=timeout_seconds),
            limits=httpx.Limits(max_connections=max_connections),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def me(self, token: str) -> dict[str, Any]:
        """The user a bearer token belongs to, as Panoptes' ``/api/me`` describes them."""
        try:
            response = await self.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            log.warning("panoptes /api/me failed: %s", type(error).__name__)
            raise UpstreamUnavailable(AUTH_UNAVAILABLE) from None
        if response.status_code in (401, 403):
            raise Unauthenticated("Invalid bearer token")
        if response.status_code != 200:
            log.warning("panoptes /api/me answered %s", response.status_code)
            raise UpstreamUnavailable(AUTH_UNAVAILABLE)
        try:
            user = response.json()["users"][0]
            if not isinstance(user, dict):
                raise TypeError
        except (ValueError, LookupError, TypeError):
            log.warning("panoptes /api/me answered an unexpected body")
            raise UpstreamUnavailable(AUTH_UNAVAILABLE) from None
        return user

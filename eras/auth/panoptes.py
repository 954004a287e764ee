"""HTTP client for the Panoptes API, with bounded timeouts and connection limits."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from eras.errors import NotFound, Unauthenticated, UpstreamUnavailable

log = logging.getLogger("eras.panoptes")

# Panoptes routes API requests on this media type; without it the API answers 404.
API_ACCEPT = "application/vnd.api+json; version=1"
AUTH_UNAVAILABLE = "Could not check authentication with Panoptes"
GROUPS_UNAVAILABLE = "Could not look up the user group with Panoptes"
# Renew the application token this long before Panoptes says it expires.
_TOKEN_RENEWAL_MARGIN_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ApplicationCredentials:
    client_id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class Membership:
    state: str
    roles: frozenset[str]


class PanoptesClient:
    """One shared connection pool; every call fails fast with 503 when Panoptes misbehaves."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        max_connections: int = 20,
        application: ApplicationCredentials | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Accept": API_ACCEPT},
            # The pool timeout bounds how long a request waits for a free connection, so a slow
            # Panoptes makes requests fail with 503 instead of piling up.
            timeout=httpx.Timeout(timeout_seconds, pool=timeout_seconds),
            limits=httpx.Limits(max_connections=max_connections),
            follow_redirects=False,
        )
        self._application = application
        self._application_token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _get(self, path: str, *, unavailable: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.get(path, **kwargs)
        except httpx.HTTPError as error:
            log.warning("panoptes GET %s failed: %s", path, type(error).__name__)
            raise UpstreamUnavailable(unavailable) from None

    @staticmethod
    def _first(response: httpx.Response, key: str, *, unavailable: str) -> list[dict[str, Any]]:
        try:
            items = response.json()[key]
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise TypeError
        except (ValueError, LookupError, TypeError):
            log.warning("panoptes answered an unexpected %r body", key)
            raise UpstreamUnavailable(unavailable) from None
        return items

    async def me(self, token: str) -> dict[str, Any]:
        """The user a bearer token belongs to, as Panoptes' ``/api/me`` describes them."""
        response = await self._get(
            "/api/me", unavailable=AUTH_UNAVAILABLE, headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code in (401, 403):
            raise Unauthenticated("Invalid bearer token")
        if response.status_code != 200:
            log.warning("panoptes /api/me answered %s", response.status_code)
            raise UpstreamUnavailable(AUTH_UNAVAILABLE)
        users = self._first(response, "users", unavailable=AUTH_UNAVAILABLE)
        if not users:
            raise UpstreamUnavailable(AUTH_UNAVAILABLE)
        return users[0]

    async def _token(self, *, renew: bool = False) -> str | None:
        """The application's own bearer token (client-credentials flow), reused until it expires."""
        if self._application is None:
            return None
        async with self._token_lock:
            cached = self._application_token
            if cached is not None and not renew and cached[1] > time.monotonic():
                return cached[0]
            form = {
                "grant_type": "client_credentials",
                "client_id": self._application.client_id,
                "client_secret": self._application.client_secret,
            }
            try:
                response = await self.http.post("/oauth/token", data=form)
            except httpx.HTTPError as error:
                log.warning("panoptes /oauth/token failed: %s", type(error).__name__)
                raise UpstreamUnavailable(GROUPS_UNAVAILABLE) from None
            try:
                body = response.json()
                token = body["access_token"]
                lifetime = float(body.get("expires_in") or 0)
                if response.status_code != 200 or not isinstance(token, str):
                    raise ValueError
            except (ValueError, LookupError, TypeError):
                # The status alone, never the body: it could echo the credentials.
                log.error("panoptes refused the application credentials (%s)", response.status_code)
                raise UpstreamUnavailable(GROUPS_UNAVAILABLE) from None
            margin = min(_TOKEN_RENEWAL_MARGIN_SECONDS, lifetime / 2)
            self._application_token = (token, time.monotonic() + lifetime - margin)
            return token

    async def user_group(self, group_id: int) -> dict[str, Any]:
        """A user group as the application sees it; :class:`NotFound` when Panoptes has none."""
        response = None
        for renew in (False, True):
            token = await self._token(renew=renew)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await self._get(
                f"/api/user_groups/{group_id}",
                unavailable=GROUPS_UNAVAILABLE,
                params={"admin": "true"} if token else None,
                headers=headers,
            )
            # A 401 with a token we believed valid: it was revoked or expired early. Renew once.
            if response.status_code != 401 or token is None:
                break
        assert response is not None
        if response.status_code == 404:
            raise NotFound(f"User group {group_id} not found")
        if response.status_code != 200:
            log.warning("panoptes user_groups/%s answered %s", group_id, response.status_code)
            raise UpstreamUnavailable(GROUPS_UNAVAILABLE)
        groups = self._first(response, "user_groups", unavailable=GROUPS_UNAVAILABLE)
        if not groups:
            raise NotFound(f"User group {group_id} not found")
        return groups[0]

    async def memberships(self, token: str, *, user_id: int, group_id: int) -> list[Membership]:
        """The user's memberships of a group, asked with the user's own token."""
        response = await self._get(
            "/api/memberships",
            unavailable=GROUPS_UNAVAILABLE,
            params={"user_id": str(user_id), "user_group_id": str(group_id)},
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code in (401, 403):
            raise Unauthenticated("Invalid bearer token")
        if response.status_code != 200:
            log.warning("panoptes memberships answered %s", response.status_code)
            raise UpstreamUnavailable(GROUPS_UNAVAILABLE)
        memberships = []
        for item in self._first(response, "memberships", unavailable=GROUPS_UNAVAILABLE):
            links = item.get("links") or {}
            if str(links.get("user")) != str(user_id) or str(links.get("user_group")) != str(
                group_id
            ):
                continue
            roles = item.get("roles") or []
            memberships.append(
                Membership(
                    state=str(item.get("state") or ""),
                    roles=frozenset(role for role in roles if isinstance(role, str)),
                )
            )
        return memberships

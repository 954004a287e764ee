"""Read routes that skip FastAPI's request handler when it would have nothing to do.

The read routes take the request and at most an integer id from the path: they read their
query parameters themselves (``eras.api.common``) and return a finished ``Response``. For such
a route FastAPI's request handler (solving dependencies, validating, preparing to serialize a
response model that is never used) costs about as much as everything else the route does:
``GET /`` took 65 µs in-process with it and 35 µs without it.

A :class:`LeanRoute` is an ``APIRoute`` like any other: matched in order, described in the
OpenAPI document from the same endpoint, and wrapped by the same middleware and error
handlers. Only its handler differs: when the path's ids are plain in-range integers it calls the
endpoint directly, and otherwise it hands the request to FastAPI's own handler, so an invalid
id is refused with exactly FastAPI's validation error. A route with anything else to solve (a
query, header or body parameter, a dependency that is not an OpenAPI-only security scheme)
keeps FastAPI's handler for every request. Route-level ``dependencies`` are considered;
routers holding lean routes are included without dependencies of their own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


@dataclass(frozen=True, slots=True)
class PathId:
    """An integer path parameter and the range its declaration allows."""

    name: str
    low: int
    high: int


class LeanRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        ids = plain_ids(self.dependant)
        if ids is None or not inspect.iscoroutinefunction(self.endpoint):
            return standard
        endpoint = self.endpoint
        request_name = self.dependant.request_param_name
        assert request_name is not None  # plain_ids requires it

        async def handler(request: Request) -> Response:
            arguments: dict[str, Any] = {request_name: request}
            given = request.path_params
            for path_id in ids:
                text = given[path_id.name]
                # Digits only: anything else (a sign, spaces, an overlong number) is left to
                # FastAPI, which accepts or refuses it exactly as it always has.
                if not (text.isascii() and text.isdigit() and len(text) <= 19):
                    return await standard(request)
                value = int(text)
                if not path_id.low <= value <= path_id.high:
                    return await standard(request)
                arguments[path_id.name] = value
            response = await endpoint(**arguments)
            if not isinstance(response, Response):
                raise TypeError(f"{self.path}: a lean route must return a Response")
            return response

        return handler


def plain_ids(dependant: Dependant) -> list[PathId] | None:
    """The integer path ids of an endpoint that takes nothing else but the request; ``None``
    when FastAPI's handler has more to do for it."""
    if dependant.request_param_name is None:
        return None
    others = (
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.body_params,
    )
    if any(others) or any(
        name is not None
        for name in (
            dependant.websocket_param_name,
            dependant.http_connection_param_name,
            dependant.response_param_name,
            dependant.background_tasks_param_name,
            dependant.security_scopes_param_name,
        )
    ):
        return None
    if not all(_describes_only(dependency) for dependency in dependant.dependencies):
        return None
    ids = []
    for field in dependant.path_params:
        if field.field_info.annotation is not int:
            return None
        low, high = 0, 2**63 - 1  # digits only: never negative; at most what a bigint holds
        for constraint in field.field_info.metadata:
            bound = _bound(constraint)
            if bound is None:
                return None
            kind, limit = bound
            if kind == "ge":
                low = max(low, limit)
            elif kind == "gt":
                low = max(low, limit + 1)
            elif kind == "le":
                high = min(high, limit)
            else:
                high = min(high, limit - 1)
        ids.append(PathId(field.name, low, high))
    return ids


def _bound(constraint: object) -> tuple[str, int] | None:
    """An integer bound as pydantic declares it (``Path(ge=1)`` becomes ``Ge(ge=1)``)."""
    bounds = [(kind, getattr(constraint, kind, None)) for kind in ("ge", "gt", "le", "lt")]
    given = [(kind, limit) for kind, limit in bounds if limit is not None]
    if len(given) != 1:
        return None
    kind, limit = given[0]
    return (kind, limit) if isinstance(limit, int) and not isinstance(limit, bool) else None


def _describes_only(dependency: Dependant) -> bool:
    """A security scheme that never refuses a request: it is there for the OpenAPI document,
    and what it returns is not passed to the endpoint."""
    scheme = dependency.call
    return (
        isinstance(scheme, SecurityBase)
        and getattr(scheme, "auto_error", True) is False
        and not dependency.dependencies
    )

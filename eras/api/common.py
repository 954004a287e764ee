"""Query parameters of the read routes: described once for OpenAPI, read straight from the
request.

The read routes take their query parameters from the request themselves instead of through
FastAPI's dependency injection: solving a route's parameters costs more than the route's SQL,
and every parameter is a string validated by ``eras.api.params`` anyway. OpenAPI still lists
every parameter (``openapi_parameters``).

A parameter a route does not take is ignored, as the original ignores it: clients add
cache-busters such as ``?_=1733000000``. A parameter the route takes given twice is a 400,
since ``project_id=1&project_id=2`` would otherwise count only one of the projects.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from eras.api.params import RawCountParams
from eras.errors import BadRequest


@dataclass(frozen=True, slots=True)
class QueryParameter:
    name: str
    description: str


ID_LIST: Final = (
    "One id or a comma-separated list; the counts of all listed ids are summed "
    "(and given for each id too, with `breakdown=true`)."
)
FLAG: Final = "`true` (any case) turns it on."
BREAKDOWN: Final = QueryParameter(
    "breakdown",
    f"{FLAG} Adds `breakdown`: the answer for each listed id, in the order given.",
)
PROJECT_ID: Final = QueryParameter("project_id", ID_LIST)
WORKFLOW_ID: Final = QueryParameter("workflow_id", ID_LIST)
USER_ID: Final = QueryParameter("user_id", ID_LIST)
START_DATE: Final = QueryParameter(
    "start_date", "YYYY-MM-DD, inclusive, on the UTC day of the event."
)
END_DATE: Final = QueryParameter("end_date", "YYYY-MM-DD, inclusive, on the UTC day of the event.")
PERIOD: Final = QueryParameter(
    "period", "day, week, month or year (case-insensitive); adds a bucketed `data` list."
)
COUNT_PARAMETERS: Final = (PROJECT_ID, WORKFLOW_ID, START_DATE, END_DATE, PERIOD)


def openapi_parameters(parameters: Sequence[QueryParameter]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route reading ``parameters`` itself."""
    return {
        "parameters": [
            {
                "name": parameter.name,
                "in": "query",
                "required": False,
                "schema": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "description": parameter.description,
            }
            for parameter in parameters
        ]
    }


def _repeated(name: str) -> BadRequest:
    return BadRequest(
        f"Parameter {name!r} is given more than once; list several ids in one comma-separated value"
    )


def query_pairs(query_string: bytes) -> list[tuple[str, str]]:
    """The name and value pairs of a query string, exactly as Starlette's ``query_params``
    reads them (``parse_qsl`` with blank values kept, of the bytes as Latin-1), without
    building its multi-dict: a pair with nothing to decode is taken as it is."""
    pairs = []
    for piece in query_string.decode("latin-1").split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "%" in piece or "+" in piece:
            name, value = unquote_plus(name), unquote_plus(value)
        pairs.append((name, value))
    return pairs


def _given_once(request: Request, allowed: Collection[str]) -> dict[str, str]:
    """The values of the ``allowed`` parameters given, each at most once; others are ignored."""
    values: dict[str, str] = {}
    query_string = request.scope.get("query_string")
    if not query_string:
        return values
    for name, value in query_pairs(query_string):
        if name not in allowed:
            continue
        if name in values:
            raise _repeated(name)
        values[name] = value
    return values


def query_values(request: Request, parameters: Sequence[QueryParameter]) -> dict[str, str]:
    """The values of ``parameters`` given, each at most once; other parameters are ignored."""
    return _given_once(request, [parameter.name for parameter in parameters])


def count_parameters(values: dict[str, str]) -> RawCountParams:
    return RawCountParams(
        values.get("project_id"),
        values.get("workflow_id"),
        values.get("start_date"),
        values.get("end_date"),
        values.get("period"),
    )


async def reject_repeated_parameters(request: Request) -> None:
    """For routes whose parameters FastAPI declares: one of them given twice is a 400 (FastAPI
    would take the last); parameters the route does not declare are ignored."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and request.scope.get("query_string"):
        _given_once(request, _query_parameters(route.dependant))


def _query_parameters(dependant: Dependant) -> set[str]:
    """Every query parameter a route declares, its dependencies' included (a handful: cheap)."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_parameters(dependency)
    return names

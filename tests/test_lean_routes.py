"""Lean routes: the endpoint is called directly only when FastAPI's handler would have nothing
to do; anything FastAPI would solve, validate or refuse still goes through FastAPI."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.security import HTTPBearer

from eras.api.routing import LeanRoute, plain_ids

calls: list[str] = []


def refuse() -> None:
    raise HTTPException(status_code=403, detail="refused by a dependency")


router = APIRouter(route_class=LeanRoute)
Small = Annotated[int, Path(ge=2, lt=100)]


@router.get("/plain/{item_id}", dependencies=[Depends(HTTPBearer(auto_error=False))])
async def plain(request: Request, item_id: Small) -> Response:
    calls.append("plain")
    return Response(f"{item_id}")


@router.get("/query")
async def with_query(request: Request, size: int) -> Response:
    return Response(f"{size}")


@router.get("/guarded", dependencies=[Depends(refuse)])
async def guarded(request: Request) -> Response:
    return Response("should not be reached")


@router.get("/strict-bearer", dependencies=[Depends(HTTPBearer())])
async def strict_bearer(request: Request) -> Response:
    return Response("had a token")


app = FastAPI()
app.include_router(router)


@pytest.fixture
async def client():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def _route(path: str) -> LeanRoute:
    return next(route for route in router.routes if getattr(route, "path", None) == path)


def test_only_routes_with_nothing_to_solve_are_lean() -> None:
    ids = plain_ids(_route("/plain/{item_id}").dependant)
    assert ids is not None and [(i.name, i.low, i.high) for i in ids] == [("item_id", 2, 99)]
    for path in ("/query", "/guarded", "/strict-bearer"):
        assert plain_ids(_route(path).dependant) is None, path


async def test_a_plain_id_in_range_reaches_the_endpoint(client) -> None:
    calls.clear()
    assert (await client.get("/plain/42")).text == "42"
    assert (await client.get("/plain/042")).text == "42"
    # Not digits, so FastAPI decides: it takes a whole number written as a decimal.
    assert (await client.get("/plain/4.0")).text == "4"
    assert calls == ["plain", "plain", "plain"]


@pytest.mark.parametrize("value", ["1", "100", "abc", "-3", "4.5"])
async def test_an_id_the_declaration_refuses_is_refused_by_fastapi(client, value) -> None:
    calls.clear()
    response = await client.get(f"/plain/{value}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "item_id"]
    assert calls == []


async def test_routes_with_more_to_solve_keep_fastapis_handler(client) -> None:
    assert (await client.get("/query")).status_code == 422
    assert (await client.get("/query", params={"size": "7"})).text == "7"
    assert (await client.get("/guarded")).json() == {"detail": "refused by a dependency"}
    assert (await client.get("/strict-bearer")).status_code in (401, 403)
    strict = await client.get("/strict-bearer", headers={"Authorization": "Bearer x"})
    assert strict.text == "had a token"

"""GET / (status), the OpenAPI description, and the interactive docs."""

from __future__ import annotations

from typing import Any

import httpx

COMMON = {"project_id", "workflow_id", "start_date", "end_date", "period"}
# Every route the service serves, with its method and its query parameters.
SERVED: dict[str, tuple[str, set[str]]] = {
    "/": ("get", set()),
    "/kinesis": ("post", set()),
    "/classifications": ("get", COMMON | {"breakdown", "time_spent"}),
    "/comments": (
        "get",
        {"project_id", "user_id", "start_date", "end_date", "period", "breakdown"},
    ),
    "/classifications/users/{user_id}": (
        "get",
        COMMON | {"time_spent", "project_contributions", "order_project_contributions_by"},
    ),
    "/classifications/user_groups/{group_id}": (
        "get",
        COMMON | {"top_contributors", "individual_stats_breakdown"},
    ),
    "/reports/spurious": (
        "get",
        {
            "until",
            "project_min_count",
            "project_min_rate",
            "project_min_difference",
            "volunteer_min_count",
            "tier_min",
            "tier_max",
            "tier_one_rate",
            "duty_of_care_seconds",
            "tier_two_min",
        },
    ),
    "/dashboard/": ("get", set()),
    "/dashboard/project": ("get", set()),
    "/dashboard/group": ("get", set()),
    "/dashboard/volunteer": ("get", set()),
    "/dashboard/operator": ("get", set()),
    "/dashboard/data/busiest_projects": ("get", {"days", "limit"}),
    "/dashboard/data/project_workflows": ("get", {"project_id", "days"}),
    "/dashboard/data/operator": ("get", set()),
}
PATH_PARAMETERS = {
    "/classifications/users/{user_id}": {"user_id"},
    "/classifications/user_groups/{group_id}": {"group_id"},
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


class TestStatus:
    async def test_status_reports_the_configured_revision(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"revision": "test-revision"}

    async def test_openapi_lists_exactly_the_served_routes(self, client: httpx.AsyncClient) -> None:
        document = await openapi(client)

        assert document["openapi"].startswith("3.")
        paths = document["paths"]
        assert set(paths) == set(SERVED)
        for path, (method, _) in SERVED.items():
            assert set(paths[path]) & HTTP_METHODS == {method}, path

    async def test_openapi_lists_the_query_parameters(self, client: httpx.AsyncClient) -> None:
        paths = (await openapi(client))["paths"]

        for path, (method, expected) in SERVED.items():
            parameters = paths[path][method].get("parameters", [])
            query = {item["name"] for item in parameters if item["in"] == "query"}
            assert query == expected, path
            # Nothing else (no header parameter leaks from a dependency).
            in_path = PATH_PARAMETERS.get(path, set())
            assert {item["name"] for item in parameters} == expected | in_path, path
            for item in parameters:
                required = item["name"] in in_path
                assert item.get("required", False) is required, (path, item["name"])

    async def test_every_documented_route_answers(self, client: httpx.AsyncClient) -> None:
        paths = (await openapi(client))["paths"]

        for path, operations in paths.items():
            for method in set(operations) & HTTP_METHODS:
                response = await client.request(method.upper(), path)
                # Served (no 404 or 405), and no server error whatever the missing input.
                status = response.status_code
                assert status < 500 and status not in (404, 405), (method, path, response.text)

    async def test_docs_page_is_html(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/docs")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text.lower()
        assert "/openapi.json" in response.text

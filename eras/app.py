"""The ASGI application: routers, error handling, and the database's lifetime."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from eras import __version__
from eras.api import counts, dashboard, groups, kinesis, reports, status, users
from eras.api import metrics as metrics_api
from eras.api.observability import Metrics, ObservabilityMiddleware
from eras.api.responses import FastJSONResponse
from eras.auth.cache import TTLCache
from eras.auth.groups import GroupAccess, GroupDirectory
from eras.auth.panoptes import ApplicationCredentials, PanoptesClient
from eras.auth.tokens import (
    Authenticator,
    LocalTokenVerifier,
    PanoptesTokenVerifier,
    TokenVerifier,
    load_public_key,
)
from eras.config import Settings
from eras.errors import ErasError
from eras.store.database import Database
from eras.store.migrate import ensure_current, migrate

log = logging.getLogger("eras")


def detect_revision() -> str:
    """The commit this code was built from, when it runs from a git checkout."""
    source = Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - fixed arguments
            cwd=source,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return __version__
    commit = result.stdout.strip()
    return f"{__version__}+{commit}" if result.returncode == 0 and commit else __version__


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> FastJSONResponse:
    return FastJSONResponse({"error": message}, status_code=status_code, headers=headers)


def _validation_message(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{location}: {item.get('msg')}" if location else str(item.get("msg")))
    return "; ".join(problems) or "Invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ErasError)
    async def on_eras_error(_request: Request, error: ErasError) -> FastJSONResponse:
        return error_response(error.status_code, error.message, error.headers or None)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(
        _request: Request, error: RequestValidationError
    ) -> FastJSONResponse:
        return error_response(400, _validation_message(error))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, error: StarletteHTTPException) -> FastJSONResponse:
        return error_response(
            error.status_code, str(error.detail), dict(error.headers or {}) or None
        )

    @app.exception_handler(OperationalError)
    async def on_database_down(_request: Request, error: OperationalError) -> FastJSONResponse:
        log.error("database unavailable: %s", type(error.orig).__name__)
        return error_response(503, "Database unavailable, try again later")

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, error: Exception) -> FastJSONResponse:
        log.exception("unhandled error", exc_info=error)
        return error_response(500, "Internal server error")


def _without_validation_errors(app: FastAPI) -> None:
    """Drop FastAPI's generated 422 answers from the OpenAPI: invalid input answers 400 here."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    database = Database(
        settings.database_url,
        pool_size=settings.database_pool_size,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )

    application = None
    if settings.panoptes_client_id and settings.panoptes_client_secret:
        application = ApplicationCredentials(
            settings.panoptes_client_id, settings.panoptes_client_secret.get_secret_value()
        )
    panoptes = PanoptesClient(
        settings.panoptes_url,
        timeout_seconds=settings.panoptes_timeout_seconds,
        max_connections=settings.panoptes_max_connections,
        application=application,
    )
    verifier: TokenVerifier
    if settings.panoptes_public_key:
        verifier = LocalTokenVerifier(load_public_key(settings.panoptes_public_key))
    else:
        verifier = PanoptesTokenVerifier(panoptes, TTLCache(settings.token_cache_seconds))

    async def close() -> None:
        await panoptes.aclose()
        await database.aclose()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Refuse to start on an out-of-date schema rather than answer every request with errors.
        await run_in_threadpool(migrate if settings.auto_migrate else ensure_current, database)
        try:
            yield
        finally:
            await close()

    metrics = Metrics()
    app = FastAPI(
        title="eras",
        version=__version__,
        summary="Zooniverse volunteer statistics: exact classification and comment counts.",
        default_response_class=FastJSONResponse,
        lifespan=lifespan,
        # eras keeps its own metrics and logs (ObservabilityMiddleware); FastAPI's own
        # OpenTelemetry hooks would otherwise look for a configured provider on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.database = database
    app.state.panoptes = panoptes
    authenticator = Authenticator(verifier)
    directory = GroupDirectory(
        panoptes,
        group_cache_seconds=settings.group_cache_seconds,
        membership_cache_seconds=settings.membership_cache_seconds,
    )
    app.state.authenticator = authenticator
    app.state.group_access = GroupAccess(directory, authenticator)
    app.state.close = close
    app.state.revision = settings.revision or detect_revision()
    _install_error_handlers(app)
    _without_validation_errors(app)
    # Routes are matched in order: the read routes, the most frequent, first (GET / is one
    # route, and the probe of every load balancer; then a volunteer's own page, which the
    # front end asks for on every visit). They are the application's own routes
    # rather than an included router's: FastAPI matches an included router's routes through a
    # layer of its own, twice per request, which cost the read routes more than their
    # handlers. Their routers declare everything a route needs (tags, responses), so nothing
    # is lost by not including them.
    for router in (status.router, users.router, counts.router, groups.router):
        app.router.routes.extend(router.routes)
    app.include_router(kinesis.router)
    app.include_router(reports.router)
    app.include_router(metrics_api.router)
    if settings.dashboard:
        app.include_router(dashboard.router)
    return app

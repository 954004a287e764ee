"""Request ids, structured JSON logs and Prometheus metrics.

Logs never carry headers, bodies or query strings: only the method, the route template, the
status and the duration, so tokens, passwords and event contents cannot leak into them.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_VALID_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_LOG_FIELDS: Final = ("method", "route", "status", "duration_ms", "summary")
access_log = logging.getLogger("eras.access")


def _stamp_request_id() -> None:
    """Every log record remembers the request it was made in, whenever it is formatted."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "stamps_request_id", False):
        return

    def record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        return record

    record_with_request_id.stamps_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_with_request_id)


_stamp_request_id()


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for name in _LOG_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service and uvicorn: JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": handler},
        "loggers": {
            "eras": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def multiprocess_metrics_enabled() -> bool:
    # Set by `eras serve --workers N`: each worker writes its samples under this directory.
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


# What ingest can do with an event, in IngestSummary's order.
INGEST_OUTCOMES: Final = ("inserted", "duplicates", "updated", "ignored", "rejected")


class Metrics:
    """Request latency per route, and what ingest did with each event."""

    def __init__(self) -> None:
        self.started_at = datetime.now(UTC)
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "eras_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        # One child per route template, method and status: a handful, looked up per request.
        self._request_histograms: dict[tuple[str, str, int], Histogram] = {}
        self.ingested_events = Counter(
            "eras_ingested_events",
            "Stream events received by POST /kinesis, by what happened to them.",
            ["outcome"],
            registry=self.registry,
        )

    def ingest_totals(self) -> dict[str, int]:
        """Events received by POST /kinesis since the service started, by outcome: of every
        worker when the workers share their metrics, else of this process."""
        if multiprocess_metrics_enabled():
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        totals = dict.fromkeys(INGEST_OUTCOMES, 0)
        for metric in registry.collect():
            if metric.name != "eras_ingested_events":
                continue
            for sample in metric.samples:
                outcome = sample.labels.get("outcome")
                if sample.name.endswith("_total") and outcome in totals:
                    totals[outcome] += int(sample.value)
        return totals

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        histogram = self._request_histograms.get(key)
        if histogram is None:
            histogram = self.request_seconds.labels(method=method, route=route, status=str(status))
            self._request_histograms[key] = histogram
        histogram.observe(seconds)

    def count_ingest(self, summary: dict[str, int]) -> None:
        for outcome, count in summary.items():
            if count:
                self.ingested_events.labels(outcome=outcome).inc(count)

    def render(self) -> bytes:
        if multiprocess_metrics_enabled():
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _VALID_REQUEST_ID.fullmatch(text) else None
    return None


class ObservabilityMiddleware:
    """Gives each request an id (echoed as ``X-Request-ID``), times it, and logs one line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._id_prefix = secrets.token_hex(8)
        self._id_count = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or self._new_request_id()
        token = REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.observe_request(method, route, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
            REQUEST_ID.reset(token)

    def _new_request_id(self) -> str:
        # 32 hex digits, as a UUID's: this process's random half, then a count. As unique as
        # uuid4 across workers and restarts, at an eighth of its cost.
        return f"{self._id_prefix}{next(self._id_count):016x}"

"""One error hierarchy; every expected failure becomes ``{"error": message}`` with its status."""

from __future__ import annotations

from collections.abc import Mapping


class ErasError(Exception):
    """Base of all errors that are answered to the client rather than logged as faults."""

    status_code = 500

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(ErasError):
    status_code = 400


class Unauthenticated(ErasError):
    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ErasError):
    status_code = 403


class NotFound(ErasError):
    status_code = 404


class PayloadTooLarge(ErasError):
    status_code = 413


class UpstreamUnavailable(ErasError):
    status_code = 503


class DatabaseUnavailable(ErasError):
    status_code = 503

    def __init__(self) -> None:
        super().__init__("Database unavailable, try again later")

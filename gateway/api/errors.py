"""JSON errors for the HTTP API: ``{"error": {"code": "...", "message": "..."}}``.

Codes are stable, machine-readable strings; messages are for people.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error answered as JSON; ``retry_after`` (seconds) adds a ``Retry-After`` header."""

    status = 400
    code = "BAD_REQUEST"
    retry_after: int | None = None

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_after is not None:
            self.retry_after = retry_after
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details or {}


class Unauthorized(ApiError):
    status = 401
    code = "AUTH_REQUIRED"


class Forbidden(ApiError):
    status = 403
    code = "FORBIDDEN"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class Conflict(ApiError):
    status = 409
    code = "CONFLICT"


class TooManyRequests(ApiError):
    status = 429
    code = "RATE_LIMITED"


class ServiceUnavailable(ApiError):
    status = 503
    code = "UNAVAILABLE"


def error_body(code: str, message: str, details: dict[str, Any] | None = None,
               request_id: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if details:
        err["details"] = details
    if request_id:
        err["request_id"] = request_id
    return {"error": err}


def error_response(status: int, code: str, message: str, *, details: dict[str, Any] | None = None,
                   request_id: str | None = None, headers: dict[str, str] | None = None
                   ) -> web.Response:
    # messages may quote what the client sent: a lone surrogate must not make the answer fail
    text = json.dumps(error_body(code, message, details, request_id), ensure_ascii=False)
    return web.Response(
        status=status,
        body=text.encode("utf-8", "replace"),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )

"""Request ids, correlation ids, authentication and JSON errors for every request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web

from gateway.api import auth
from gateway.api.auth import PRINCIPAL_KEY, PrincipalCache, bearer_token
from gateway.api.errors import ApiError, error_response
from gateway.logs import correlation

log = logging.getLogger("gateway.http")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_ID_KEY = web.RequestKey("request_id", str)


def _incoming_id(request: web.Request, header: str) -> str | None:
    value = request.headers.get(header)
    return value if value and _SAFE_ID.match(value) else None


def make_middlewares(pool_getter, metrics):
    # authenticated tokens are remembered auth.AUTH_CACHE_TTL seconds (read here, per app)
    principals = PrincipalCache(auth.AUTH_CACHE_TTL)

    @web.middleware
    async def request_context(request: web.Request, handler):
        request_id = _incoming_id(request, "X-Request-Id") or uuid.uuid4().hex
        request[REQUEST_ID_KEY] = request_id
        cid = _incoming_id(request, "X-Correlation-Id") or request_id
        started = time.perf_counter()
        route = request.match_info.route.resource
        route_name = route.canonical if route is not None else "unmatched"
        status = 500
        with correlation(cid):
            try:
                response = await _with_errors(request, handler, request_id)
                status = response.status
            finally:
                elapsed = time.perf_counter() - started
                metrics.http_requests.labels(request.method, route_name, str(status)).inc()
                metrics.http_latency.labels(route_name).observe(elapsed)
                if not request.path.startswith(("/healthz", "/readyz", "/metrics")):
                    log.info("http request", extra={
                        "method": request.method, "path": request.path, "status": status,
                        "ms": round(elapsed * 1000, 1), "request_id": request_id})
        response.headers["X-Request-Id"] = request_id
        response.headers["X-Correlation-Id"] = cid
        return response

    async def _with_errors(request: web.Request, handler, request_id: str) -> web.StreamResponse:
        try:
            if request.path.startswith("/v1/"):
                token = bearer_token(request)
                if token:
                    who = await principals.authenticate(pool_getter(), token)
                    if who is None:
                        raise ApiError("the bearer token is unknown, revoked or expired",
                                       code="AUTH_INVALID", status=401)
                    request[PRINCIPAL_KEY] = who
            return await handler(request)
        except ApiError as exc:
            headers = {}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="edoc-gateway"'
            if exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
            return error_response(exc.status, exc.code, exc.message, details=exc.details,
                                  request_id=request_id, headers=headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                    413: "PAYLOAD_TOO_LARGE"}.get(exc.status, f"HTTP_{exc.status}")
            return error_response(exc.status, code, exc.reason, request_id=request_id)
        except Exception:
            log.exception("unhandled error", extra={"path": request.path})
            return error_response(500, "INTERNAL", "internal error; see the gateway log",
                                  request_id=request_id)

    return [request_context]

"""Request ids, correlation ids, authentication and JSON errors for every request.

Rules implemented here:

* Every error is ``{"error": {"code", "message", "request_id"}}`` with a 4xx status, or 503
  with ``Retry-After`` when our side cannot serve now (every 503, whoever raised it).
* A query parameter (name or value) with a C0 control character or DEL (``%00`` …) is 400
  ``INVALID_QUERY`` on every route: no query value needs one and PostgreSQL text cannot hold NUL.
* A bearer value that is not an RFC 6750 ``b64token`` is 401 ``AUTH_INVALID`` unseen.
* A body aiohttp cannot decode (``Content-Encoding`` over bytes that are not so encoded) is 400
  ``BODY_INVALID``.
* The last resort (an exception nothing else answered: a bug) answers 500 ``INTERNAL`` with the
  request id and nothing of the exception, and logs one ERROR line with the request id, the
  exception type and where it was raised (the traceback at DEBUG).
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid

from aiohttp import web

from gateway.api import auth
from gateway.api.auth import PRINCIPAL_KEY, PrincipalCache, bearer_token, well_formed_token
from gateway.api.errors import ApiError, error_response
from gateway.logs import correlation

log = logging.getLogger("gateway.http")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_ID_KEY = web.RequestKey("request_id", str)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Seconds a client waits before retrying a 503 that named no delay of its own.
RETRY_AFTER_UNAVAILABLE = 5
HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
              413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}


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
        if (response.status == 503 and "Retry-After" not in response.headers
                and not response.prepared):
            response.headers["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
        return response

    def _check_query(request: web.Request) -> None:
        for name, value in request.query.items():
            if _CONTROL.search(name) or _CONTROL.search(value):
                raise ApiError(f"query parameter {_CONTROL.sub('?', name)!r} contains a control"
                               " character", code="INVALID_QUERY")

    async def _with_errors(request: web.Request, handler, request_id: str) -> web.StreamResponse:
        try:
            _check_query(request)
            if request.path.startswith("/v1/"):
                token = bearer_token(request)
                if token:
                    who = None
                    if well_formed_token(token):
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
            elif exc.status == 503:
                headers["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
            return error_response(exc.status, exc.code, exc.message, details=exc.details,
                                  request_id=request_id, headers=headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = HTTP_CODES.get(exc.status, f"HTTP_{exc.status}")
            return error_response(exc.status, code, exc.reason, request_id=request_id)
        except web.RequestPayloadError as exc:
            return error_response(400, "BODY_INVALID", f"the request body cannot be decoded:"
                                  f" {str(exc).strip()}", request_id=request_id)
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f"{frame[0].filename}:{frame[0].lineno} in {frame[0].name}" if frame else "?"
            log.error("unhandled error", extra={
                "request_id": request_id, "method": request.method, "path": request.path,
                "error": type(exc).__name__, "where": where})
            log.debug("unhandled error traceback", exc_info=True,
                      extra={"request_id": request_id})
            return error_response(500, "INTERNAL", "internal error; see the gateway log",
                                  request_id=request_id)

    return [request_context]

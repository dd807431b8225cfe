"""Operators' view of axis items refused as malformed: ``GET /v1/axis/refused``.

Query: ``axis`` (a configured connection name), ``limit`` (1-1000, default 100). Each item:
axis, axis_doc_id, message_type, sha256, code, document_id (the REJECTED document), acked (the
axis took our ``fail``), first_seen, last_seen, seen_count (see :mod:`gateway.inbound.refused`).
"""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import Role, principal
from gateway.api.errors import ApiError
from gateway.api.jsonutil import json_response
from gateway.inbound.refused import list_refused
from gateway.services import SERVICES


async def get_refused(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    principal(request, Role.OPERATOR)
    axis = request.query.get("axis")
    if axis is not None and axis not in {c.name for c in svc.settings.axis}:
        raise ApiError("axis must name a configured axis connection", code="INVALID_QUERY")
    raw_limit = request.query.get("limit", "100")
    if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 4
            and 1 <= int(raw_limit) <= 1000):  # int() of 4,301+ digits raises
        raise ApiError("limit must be an integer from 1 to 1000", code="INVALID_QUERY")
    async with svc.pool.acquire() as conn:
        rows = await list_refused(conn, axis=axis, limit=int(raw_limit))
    return json_response({"refused": rows})


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/axis/refused", get_refused)

"""Operators decide on held and conflicting documents:
``POST /v1/documents/{id}/resolution`` with ``{"action": "route"|"reject", "reason": "…"}``
(roles operator, admin). See :mod:`gateway.inbound.holds`."""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api.auth import Role, principal
from gateway.api.errors import ApiError, Conflict, NotFound
from gateway.api.jsonutil import json_response, read_json
from gateway.inbound.holds import ResolutionError, resolve_document
from gateway.services import SERVICES

MAX_BODY = 16 * 1024


async def post_resolution(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    who = principal(request, Role.OPERATOR)
    try:
        doc_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such document", code="DOCUMENT_NOT_FOUND") from None
    body = await read_json(request, MAX_BODY)
    if not isinstance(body.get("action"), str) or not isinstance(body.get("reason", ""),
                                                                 str | None):
        raise ApiError("body must be {\"action\": \"route\"|\"reject\", \"reason\": text}",
                       code="RESOLUTION_INVALID", status=422)
    served = {a.code: a.name for a in svc.settings.agencies}
    try:
        async with svc.pool.acquire() as conn:
            result = await resolve_document(
                conn, svc.router, doc_id, action=body["action"], reason=body.get("reason"),
                actor=who.actor(), served=served, status_axis=svc.axis_for)
    except ResolutionError as exc:
        if exc.code == "DOCUMENT_NOT_FOUND":
            raise NotFound(exc.message, code=exc.code) from None
        if exc.code in ("DOCUMENT_NOT_HELD", "BUSINESS_ORIGINAL_UNKNOWN",
                        "BUSINESS_NOT_ORIGINAL_SENDER"):
            raise Conflict(exc.message, code=exc.code) from None
        raise ApiError(exc.message, code=exc.code, status=422) from None
    svc.wake_relays()
    return json_response(result)


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/documents/{id}/resolution", post_resolution)

"""Operators' view of deliveries: ``GET /v1/deliveries``, ``POST /v1/deliveries/{id}/replay``."""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api.auth import Role, principal
from gateway.api.errors import ApiError, Conflict, NotFound
from gateway.api.jsonutil import json_response
from gateway.ops.replay import ReplayError, list_deliveries, replay_delivery
from gateway.services import SERVICES

STATES = ("PENDING", "PUBLISHED", "RETRYING", "DELIVERED", "DEAD")


async def get_deliveries(request: web.Request) -> web.Response:
    principal(request, Role.OPERATOR)
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise ApiError(f"state must be one of {', '.join(STATES)}", code="INVALID_QUERY")
    try:
        limit = max(1, min(int(request.query.get("limit", "100")), 1000))
    except ValueError:
        raise ApiError("limit must be an integer", code="INVALID_QUERY") from None
    async with request.app[SERVICES].pool.acquire() as conn:
        rows = await list_deliveries(conn, state=state, agency=request.query.get("agency"),
                                     limit=limit)
    return json_response({"deliveries": rows})


async def post_replay(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    who = principal(request, Role.OPERATOR)
    try:
        delivery_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such delivery", code="DELIVERY_NOT_FOUND") from None
    try:
        async with svc.pool.acquire() as conn:
            result = await replay_delivery(conn, svc.router, delivery_id, actor=who.actor())
    except ReplayError as exc:
        if exc.code == "DELIVERY_NOT_FOUND":
            raise NotFound(exc.message, code=exc.code) from None
        raise Conflict(exc.message, code=exc.code) from None
    svc.wake_relays()
    return json_response(result, status=202)


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/deliveries", get_deliveries)
    app.router.add_post("/v1/deliveries/{id}/replay", post_replay)

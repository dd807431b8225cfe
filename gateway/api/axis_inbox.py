"""``POST /v1/axis/inbox``: axes and peers that push edXML packages (role ``axis``).

The body is the .edxml file (``application/xml`` or ``application/octet-stream``; a multipart
``file_doc`` part as VDXP's ``sendEdoc`` sends it is accepted too). The answer comes after the
document is committed:

* 200 ``{"document_id", "state": "ROUTED", "duplicate": false, ...}`` — stored and routed;
* 200 with ``"duplicate": true`` — seen before: nothing new stored, the same answer again;
* 422 ``{"error": {"code": "EDXML_…" | "SIGNATURE_INVALID" | "NOT_ADDRESSED_TO_US" …}}`` — rejected,
  kept for inspection (``details.document_id``), status 02 sent to the sender when possible.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

import asyncpg
from aiohttp import web

from gateway.api.auth import Role, principal
from gateway.api.errors import ApiError, ServiceUnavailable
from gateway.api.jsonutil import json_response
from gateway.axis import is_multipart
from gateway.intake_rules import Arrival
from signing.errors import SigningError


async def _read_package(request: web.Request, limit: int) -> bytes:
    if is_multipart(request.headers.get("Content-Type")):
        reader = await request.multipart()
        async for part in reader:
            if getattr(part, "name", None) in ("file_doc", "file"):
                # aiohttp bounds part.read() by client_max_size (max_document_bytes): 413
                data = await part.read()
                if len(data) > limit:
                    raise ApiError("package too large", code="PAYLOAD_TOO_LARGE", status=413)
                return bytes(data)
        raise ApiError("multipart body without a file_doc part", code="PACKAGE_MISSING")
    data = await request.read()
    if not data:
        raise ApiError("empty body: send the .edxml file", code="PACKAGE_MISSING")
    return data


async def post_inbox(request: web.Request) -> web.Response:
    from gateway.app import GATEWAY

    gw = request.app[GATEWAY]
    who = principal(request, Role.AXIS)
    raw = await _read_package(request, gw.settings.max_document_bytes)
    try:
        result = await gw.intake.take(raw, Arrival(axis=None, sender_hint=None,
                                                   receiver_hint=None))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, SigningError,
            BrokenProcessPool):
        # our side is unavailable (database, signing pool, trust bundle): nothing was stored
        raise ServiceUnavailable("the gateway cannot take documents in right now; retry later",
                                 code="INTAKE_UNAVAILABLE", retry_after=30) from None
    body = result.to_json()
    body["pushed_by"] = who.name
    if result.state == "REJECTED":
        raise ApiError(result.reject_reason or "rejected", code=result.reject_code or "REJECTED",
                       status=422, details=body)
    return json_response(body)


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/axis/inbox", post_inbox)

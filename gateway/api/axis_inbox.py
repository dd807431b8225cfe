"""``POST /v1/axis/inbox``: axes and peers that push edXML packages (role ``axis``).

The body is the .edxml file, as ``application/xml``, ``text/xml``, ``application/octet-stream``
(also what a body without ``Content-Type`` is taken for, RFC 9110 §8.3) or an
``application/…edxml…+xml`` type; or ``multipart/form-data`` with a ``file_doc`` part as VDXP's
``sendEdoc`` sends it. Any other type is 415 ``UNSUPPORTED_MEDIA_TYPE`` (a form, JSON or HTML
body is a client mistake, not a package to judge and keep). The answer comes after the
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
from gateway.api.uploads import (
    UnsupportedMediaType,
    form_parts,
    is_form_data,
    read_body,
    read_part,
)
from gateway.inbound.rules import Arrival
from gateway.services import SERVICES
from signing.errors import SigningError

#: Largest other part of a multipart package (read and dropped).
MAX_OTHER_PART = 64 * 1024
#: Media types of a raw .edxml body.
PACKAGE_TYPES = frozenset({"application/xml", "text/xml", "application/octet-stream"})


def _package_type(media_type: str) -> bool:
    if media_type in PACKAGE_TYPES:
        return True
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and subtype.endswith("+xml") and "edxml" in subtype


async def _read_package(request: web.Request, limit: int) -> bytes:
    too_large = ApiError("package too large", code="PAYLOAD_TOO_LARGE", status=413)
    if is_form_data(request):
        package = b""
        async for part in form_parts(request):  # to the closing delimiter: truncation is 400
            if part.name in ("file_doc", "file") and not package:
                package = await read_part(part, limit, too_large)
            else:
                await read_part(part, MAX_OTHER_PART, too_large)
        if not package:
            raise ApiError("multipart body without a (non-empty) file_doc part",
                           code="PACKAGE_MISSING")
        return package
    if not _package_type(request.content_type):
        raise UnsupportedMediaType(
            "send the .edxml file as application/xml, text/xml or application/octet-stream, or"
            " multipart/form-data with a file_doc part")
    data = await read_body(request, limit, too_large)
    if not data:
        raise ApiError("empty body: send the .edxml file", code="PACKAGE_MISSING")
    return data


async def post_inbox(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    who = principal(request, Role.AXIS)
    raw = await _read_package(request, svc.settings.max_document_bytes)
    try:
        result = await svc.intake.take(raw, Arrival(axis=None, sender_hint=None,
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

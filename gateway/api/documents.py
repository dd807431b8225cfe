"""Documents for eOffice systems and operators: list, detail with timeline, attachments.

An ``eoffice`` token sees the documents of its agencies only (as receiver or sender);
``operator`` and ``admin`` see all. A document outside the caller's scope answers 404,
not 403, so that document ids cannot be probed.
"""

from __future__ import annotations

import base64
import uuid

from aiohttp import web

from gateway.api.auth import Principal, Role, principal
from gateway.api.errors import ApiError, NotFound
from gateway.api.jsonutil import json_response, query_time
from gateway.db import documents as q
from gateway.services import SERVICES

READERS = (Role.EOFFICE, Role.OPERATOR)


def scope(who: Principal) -> list[str] | None:
    return None if who.sees_all_agencies else list(who.agencies)


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no {what} {value}") from None


async def list_documents(request: web.Request) -> web.Response:
    who = principal(request, *READERS)
    params = request.query
    try:
        limit = max(1, min(int(params.get("limit", "50")), 500))
        before = query_time(params.get("before"))
    except ValueError:
        raise ApiError("limit must be an integer and before an ISO 8601 time",
                       code="INVALID_QUERY") from None
    async with request.app[SERVICES].pool.acquire() as conn:
        docs = await q.list_documents(conn, agencies=scope(who), state=params.get("state"),
                                      direction=params.get("direction"), limit=limit,
                                      before=before)
    return json_response({"documents": docs})


async def get_document(request: web.Request) -> web.Response:
    who = principal(request, *READERS)
    doc_id = _uuid(request.match_info["id"], "document")
    async with request.app[SERVICES].pool.acquire() as conn:
        doc = await q.get_document(conn, doc_id, agencies=scope(who))
    if doc is None:
        raise NotFound(f"no document {doc_id}", code="DOCUMENT_NOT_FOUND")
    return json_response(doc)


async def get_attachment(request: web.Request) -> web.Response:
    who = principal(request, *READERS)
    doc_id = _uuid(request.match_info["id"], "document")
    att_id = _uuid(request.match_info["aid"], "attachment")
    async with request.app[SERVICES].pool.acquire() as conn:
        row = await q.get_attachment(conn, doc_id, att_id, agencies=scope(who))
    if row is None:
        raise NotFound(f"no attachment {att_id} in document {doc_id}",
                       code="ATTACHMENT_NOT_FOUND")
    digest = base64.b64encode(bytes.fromhex(row["sha256"])).decode("ascii")
    return web.Response(
        body=bytes(row["data"]),
        headers={
            # The sender chose the declared type: serve it only when it is a plain media type
            # on the allow-list (never text/html, image/svg+xml…), and never let a browser
            # sniff or run the bytes.
            "Content-Type": _served_type(row["content_type"]),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Content-Digest": f"sha-256=:{digest}:",  # RFC 9530
            "X-Content-SHA256": row["sha256"],
            "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(row['name'])}",
        },
    )


#: Declared types served as such; anything else is ``application/octet-stream``.
SERVED_TYPES = frozenset({
    "application/pdf", "application/msword", "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
    "application/zip", "application/x-zip-compressed", "image/png", "image/jpeg", "image/tiff",
})


def _served_type(declared: str | None) -> str:
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    return media_type if media_type in SERVED_TYPES else "application/octet-stream"


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/documents", list_documents)
    app.router.add_get("/v1/documents/{id}", get_document)
    app.router.add_get("/v1/documents/{id}/attachments/{aid}", get_attachment)

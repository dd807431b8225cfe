"""Business statuses reported by an agency's eOffice: ``POST /v1/documents/{id}/status``.

Body: ``{"agency": "<OrganId>", "status": "03", "description": "...", "staff": {...}}``.
The eOffice token must be scoped to ``agency`` and the document must have a delivery to that
agency. Codes ``02`` (with a reason), ``03``, ``04``, ``05``, ``06`` (and ``15``/``16`` answers to
a take-back request) are accepted; the gateway builds the edXML status message and sends it to
the document's sender through the axis (outbox). Reporting the same status twice changes
nothing and answers the same (``"duplicate": true``).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api.auth import Role, principal, require_agency
from gateway.api.errors import ApiError, NotFound
from gateway.api.jsonutil import json_response, read_json
from gateway.db import audit
from gateway.statuses import (
    EOFFICE_CODES,
    STATE_AFTER_STATUS,
    DocumentRef,
    StatusError,
    emit_status,
)


async def post_status(request: web.Request) -> web.Response:
    from gateway.app import GATEWAY

    gw = request.app[GATEWAY]
    who = principal(request, Role.EOFFICE)
    try:
        doc_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such document", code="DOCUMENT_NOT_FOUND") from None
    body = await read_json(request)
    agency = body.get("agency") or (who.agencies[0] if len(who.agencies) == 1 else None)
    code = str(body.get("status", "")).strip()
    description = str(body.get("description") or "").strip()
    staff = body.get("staff")
    if not agency:
        raise ApiError("agency is required for a token scoped to several agencies",
                       code="AGENCY_REQUIRED")
    if not isinstance(agency, str) or not isinstance(body.get("description") or "", str):
        raise ApiError("agency and description must be strings", code="INVALID_JSON")
    require_agency(who, agency)
    if code not in EOFFICE_CODES:
        raise ApiError(f"status {code!r} cannot be reported by an eOffice (allowed: "
                       f"{', '.join(sorted(EOFFICE_CODES))})", code="STATUS_CODE_INVALID")
    if code in ("02", "16") and not description:
        raise ApiError(f"status {code} requires a reason in description",
                       code="STATUS_REASON_REQUIRED")
    if staff is not None and not (isinstance(staff, dict)
                                  and all(isinstance(v, str) for v in staff.values())):
        raise ApiError("staff must be an object of strings", code="INVALID_JSON")
    description = description or _DEFAULT_TEXT.get(code, "")
    # Two round trips, no transaction: the document's facts never change once stored, and the
    # status, its axis message, the state move and the audit entry are one statement.
    async with gw.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT d.id, d.sender_code, d.code_number, d.code_notation, d.promulgation_date,"
            " d.edxml_document_id, d.correlation_id, d.axis, a.name AS agency_name"
            " FROM documents d JOIN deliveries v ON v.document_id = d.id"
            " LEFT JOIN agencies a ON a.code = v.agency_code"
            " WHERE d.id = $1 AND v.agency_code = $2 AND d.direction = 'inbound'"
            " AND d.state <> 'REJECTED'", doc_id, agency)
        if row is None:
            raise NotFound(f"no document {doc_id} delivered to {agency}",
                           code="DOCUMENT_NOT_FOUND")
        ref = DocumentRef.from_row(row)
        axis = gw.axis_for(agency, ref.axis)
        try:
            fresh = await emit_status(
                conn, ref, agency_code=agency, agency_name=row["agency_name"], code=code,
                description=description, axis=axis, staff=staff,
                advance_to=STATE_AFTER_STATUS.get(code),
                audit_entry=audit.AuditEntry(who.actor(), "status.reported", str(doc_id),
                                             {"agency": agency, "status": code}))
        except StatusError as exc:
            raise ApiError(str(exc), code=exc.code, status=422) from None
    if fresh:
        gw.wake_relays()
    # sent_to_axis False: no axis connection carries this agency's messages (recorded as
    # status.not_sent on the timeline for operators)
    return json_response({"document_id": str(doc_id), "agency": agency, "status": code,
                          "duplicate": not fresh, "sent_to_axis": axis is not None},
                         status=202 if fresh else 200)


_DEFAULT_TEXT = {
    "03": "Đã tiếp nhận, vào sổ",
    "04": "Đã phân công xử lý",
    "05": "Đang xử lý",
    "06": "Đã hoàn thành",
    "15": "Đồng ý cập nhật/lấy lại",
}


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/documents/{id}/status", post_status)

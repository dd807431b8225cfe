"""Business statuses reported by an agency's eOffice: ``POST /v1/documents/{id}/status``.

Body: ``{"agency": "<OrganId>", "status": "03", "description": "...", "staff": {...}}``
(at most :data:`MAX_BODY` bytes, else 413 ``PAYLOAD_TOO_LARGE``). The eOffice token must be
scoped to ``agency`` and the document must have a delivery to that agency. Codes ``02`` (with a
reason), ``03``, ``04``, ``05``, ``06`` (and ``15``/``16`` answers to a take-back or update
request) are accepted in the order the status model of :mod:`gateway.business.status_rules` allows,
else 409 ``STATUS_NOT_ALLOWED`` (the error's ``details`` list what was reported and what may
come next); fields over their limits or holding control characters are refused with 422
``STATUS_FIELD_TOO_LONG`` / ``STATUS_FIELD_INVALID``. The gateway builds the edXML status message
and sends it to the document's sender through the axis (outbox). Reporting a code already
reported, with any text, changes nothing and answers the same (200, ``"duplicate": true``).

Business flows (:mod:`gateway.business.flow_rules`): a typed ``take_back`` message is answered
on the original document (``15`` makes it ``TAKEN_BACK``; ``16`` needs a reason, else 422
``STATUS_REASON_REQUIRED``); a ``revoke`` or ``update`` message is answered on its own
``document_id`` (``15``: the revoked document was cancelled / the update applied — Decree 30
Art. 18.4b: the receiver notifies the sender —, ``16`` with a reason otherwise).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api.auth import Role, principal, require_agency
from gateway.api.errors import ApiError, Conflict, NotFound
from gateway.api.jsonutil import json_response, read_json
from gateway.business.status_rules import MAX_DESCRIPTION, check_staff, check_text, check_transition
from gateway.business.statuses import (
    EOFFICE_CODES,
    STATE_AFTER_STATUS,
    DocumentRef,
    StatusError,
    StatusNotAllowed,
    emit_status,
)
from gateway.db import audit
from gateway.inbound.business import answer_take_back
from gateway.services import SERVICES

#: Largest request body read, in bytes: the longest description and staff fields, even with
#: every character JSON-escaped (``\\uXXXX``, 6 bytes), fit with room to spare.
MAX_BODY = 64 * 1024
#: An agency code (OrganId) is an identifier of at most 255 characters (edxml-common.xsd).
MAX_AGENCY = 255

#: The document, locked through this agency's delivery (reports of one agency about one
#: document are checked against the status model one at a time), with what it already reported
#: and whether a take-back/update request awaits an answer.
_DOCUMENT = """
SELECT d.id, d.sender_code, d.code_number, d.code_notation, d.promulgation_date,
       d.edxml_document_id, d.correlation_id, d.axis, a.name AS agency_name,
       ARRAY(SELECT s.status_code FROM status_events s WHERE s.document_id = d.id
             AND s.direction = 'outbound' AND s.agency_code = v.agency_code) AS reported,
       d.bussiness_doc_type IN (1, 2) OR EXISTS (
           SELECT 1 FROM status_events s WHERE s.document_id = d.id
           AND s.direction = 'inbound' AND s.status_code = '13') AS request_open
FROM documents d JOIN deliveries v ON v.document_id = d.id
LEFT JOIN agencies a ON a.code = v.agency_code
WHERE d.id = $1 AND v.agency_code = $2 AND d.direction = 'inbound' AND d.state <> 'REJECTED'
  AND v.kind <> 'take_back'
FOR UPDATE OF v
"""


async def post_status(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    who = principal(request, Role.EOFFICE)
    try:
        doc_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such document", code="DOCUMENT_NOT_FOUND") from None
    body = await read_json(request, MAX_BODY)
    agency = body.get("agency") or (who.agencies[0] if len(who.agencies) == 1 else None)
    code = str(body.get("status", "")).strip()
    if not agency:
        raise ApiError("agency is required for a token scoped to several agencies",
                       code="AGENCY_REQUIRED")
    if not isinstance(agency, str) or not isinstance(body.get("description") or "", str):
        raise ApiError("agency and description must be strings", code="INVALID_JSON")
    try:
        agency = check_text("agency", agency, MAX_AGENCY)
        require_agency(who, agency)
        if code not in EOFFICE_CODES:
            raise ApiError(f"status {code[:8]!r} cannot be reported by an eOffice (allowed: "
                           f"{', '.join(sorted(EOFFICE_CODES))})", code="STATUS_CODE_INVALID")
        description = check_text("description", body.get("description") or "",
                                 MAX_DESCRIPTION, multiline=True)
        staff = check_staff(body.get("staff"))
    except StatusError as exc:
        raise ApiError(str(exc), code=exc.code, status=422, details=exc.details) from None
    if code in ("02", "16") and not description:
        raise ApiError(f"status {code} requires a reason in description",
                       code="STATUS_REASON_REQUIRED", status=422)
    description = description or _DEFAULT_TEXT.get(code, "")
    # One transaction: the delivery row is locked while the report is checked against what the
    # agency reported before; the status, its axis message, the state move and the audit entry
    # are then one statement.
    async with svc.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_DOCUMENT, doc_id, agency)
        if row is None:
            raise NotFound(f"no document {doc_id} delivered to {agency}",
                           code="DOCUMENT_NOT_FOUND")
        try:
            duplicate = check_transition(code, row["reported"],
                                         request_open=row["request_open"])
        except StatusNotAllowed as exc:
            raise Conflict(str(exc), code=exc.code, details=exc.details) from None
        ref = DocumentRef.from_row(row)
        axis = svc.axis_for(agency, ref.axis)
        fresh = False
        if not duplicate:
            try:
                fresh = await emit_status(
                    conn, ref, agency_code=agency, agency_name=row["agency_name"], code=code,
                    description=description, axis=axis, staff=staff,
                    advance_to=STATE_AFTER_STATUS.get(code),
                    audit_entry=audit.AuditEntry(who.actor(), "status.reported", str(doc_id),
                                                 {"agency": agency, "status": code}))
            except StatusError as exc:
                raise ApiError(str(exc), code=exc.code, status=422,
                               details=exc.details) from None
            if fresh and code in ("15", "16"):  # the answer to a take back moves the document
                await answer_take_back(conn, doc_id, code, agency)
    if fresh:
        svc.wake_relays()
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

"""Business statuses (QCVN 102:2016 status messages) in both directions.

Outbound: when an agency we serve receives a document, the gateway answers the sender with
``01`` (đã đến) automatically on intake (Decree 30 Art. 21.2) and, by policy, ``02`` with the
reason when it rejects; the agency's eOffice then reports ``03`` (accepted) or ``02`` and the
later ``04``/``05``/``06``. Each status becomes an edXML status message written to the outbox
(destination ``axis:<connection>``) in the same transaction as its ``status_events`` row.

Inbound: status messages from other agencies about documents we sent are recorded on that
document's timeline (matched on ``ResponseFor/DocumentId``), and so is a take-back request
(``13``) from the sender of a document we received.

Which status may follow which, and the size of every field, are defined in
:mod:`gateway.business.status_rules`.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway import edxml
from gateway.business.status_rules import (
    MAX_DESCRIPTION,
    MAX_STAFF_NAME,
    StatusError,
    StatusNotAllowed,
    bound,
    bound_staff,
)
from gateway.db import audit
from gateway.db.outbox import OutboxMessage, axis_destination, insert_when
from gateway.db.outbox import args as outbox_args
from gateway.edxml import Organ, ResponseFor, StaffInfo, StatusCode, StatusMessage

__all__ = ["EOFFICE_CODES", "MAX_DESCRIPTION", "MAX_STAFF_NAME", "STATE_AFTER_STATUS",
           "STATE_ORDER", "DocumentRef", "StatusError", "StatusNotAllowed", "describe_rejection",
           "emit_status", "insert_inbound_status", "record_inbound_status",
           "status_message", "store_inbound_status"]

#: Document state after a business status reported by the receiving eOffice.
STATE_AFTER_STATUS = {
    "02": "RETURNED",
    "03": "ACCEPTED",
    "04": "ASSIGNED",
    "05": "PROCESSING",
    "06": "DONE",
}
#: Order of the inbound document states: business statuses only move a document forward.
STATE_ORDER = ("ROUTED", "DELIVERED", "RETURNED", "ACCEPTED", "ASSIGNED", "PROCESSING", "DONE")
#: Codes an eOffice may report about a document it received.
EOFFICE_CODES = frozenset({"02", "03", "04", "05", "06", "15", "16"})


@dataclass(frozen=True)
class DocumentRef:
    """What a status message needs to know about the document it answers."""

    id: uuid.UUID
    sender_code: str
    code_number: str | None
    code_notation: str | None
    promulgation_date: Any
    edxml_document_id: str
    correlation_id: str
    axis: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DocumentRef:
        return cls(row["id"], row["sender_code"] or "", row["code_number"], row["code_notation"],
                   row["promulgation_date"], row["edxml_document_id"] or "",
                   row["correlation_id"], row["axis"])

    @property
    def code(self) -> str | None:
        if self.code_number is None and self.code_notation is None:
            return None
        return f"{self.code_number or ''}/{self.code_notation or ''}"


def status_message(doc: DocumentRef, *, agency: Organ, code: str, description: str,
                   staff: StaffInfo | None = None, at: datetime | None = None) -> StatusMessage:
    return StatusMessage(
        from_organ=agency,
        response_for=ResponseFor(organ_id=doc.sender_code or None, code=doc.code,
                                 promulgation_date=doc.promulgation_date,
                                 document_id=doc.edxml_document_id),
        status_code=StatusCode.coerce(code),
        description=description,
        timestamp=at or datetime.now(UTC),
        staff_info=staff,
    )


_EMIT = """
INSERT INTO status_events (document_id, direction, agency_code, status_code, description, staff,
                           occurred_at, dedup_key)
VALUES ($1, 'outbound', $2, $3, $4, $5, $6, $7)
ON CONFLICT (dedup_key) DO NOTHING RETURNING id
"""


@functools.cache
def _emit_statement(to_axis: bool, advance: bool, audited: bool) -> str:
    """ONE statement (one round trip, atomic on its own): the status event, then, only if it
    is new, its message in the outbox (or a ``status.not_sent`` timeline event), the document's
    state moved forward and the audit entry. Parameters: the event ($1-$7), the outbox row
    (10) or the not-sent detail (1), the state and the state order (2), the audit entry (6)."""
    ctes = [f"emitted AS ({_EMIT})"]
    n = 8
    if to_axis:
        ctes.append(f"queued AS ({insert_when('emitted', n)})")
        n += 10
    else:
        ctes.append("not_sent AS (INSERT INTO document_events (document_id, event, agency_code,"
                    f" detail) SELECT $1, 'status.not_sent', $2, ${n}::jsonb FROM emitted)")
        n += 1
    if advance:  # business states only move forward (a late 03 never undoes 06); an
        # UPDATED document moves on with its next status (gateway.business.flow_rules)
        state, order = f"${n}", f"${n + 1}::text[]"
        ctes.append(f"advanced AS (UPDATE documents SET state = {state}, updated_at = now()"
                    " WHERE id = $1 AND EXISTS (SELECT 1 FROM emitted)"
                    f" AND (state = 'UPDATED' OR array_position({order}, state)"
                    f" < array_position({order}, {state})))")
        n += 2
    if audited:
        ctes.append(audit.append_when("emitted", n))
    return "WITH " + ",\n".join(ctes) + "\nSELECT count(*) FROM emitted"


def _dedup_key(doc_id: uuid.UUID, agency: str, code: str) -> str:
    """One status per document, agency and code: the same code with another text is the same
    status (rows stored before this rule carry a digest of their text after the code)."""
    return f"out:{doc_id}:{agency}:{code}"


async def emit_status(conn: asyncpg.Connection, doc: DocumentRef, *, agency_code: str,
                      agency_name: str | None, code: str, description: str,
                      axis: str | None, staff: dict[str, str] | None = None,
                      advance_to: str | None = None,
                      audit_entry: audit.AuditEntry | None = None) -> bool:
    """Record a status we send about ``doc`` and queue its edXML for the axis (``axis`` None:
    no connection carries it, recorded as ``status.not_sent`` on the timeline for operators);
    when the status is new, also move the document to ``advance_to`` (forward only, in
    :data:`STATE_ORDER`) and append ``audit_entry``.

    One statement: atomic on its own, or part of the caller's transaction. Returns False when
    the same status (same agency and code, whatever the description) was already emitted:
    retries of the same report change nothing. Which code may follow which is the caller's
    check (:func:`gateway.business.status_rules.check_transition`); texts are kept within the
    field limits here (:func:`gateway.business.status_rules.bound`) so that nothing unbounded
    reaches the axis.
    """
    description = bound(description, MAX_DESCRIPTION, multiline=True) or ""
    staff = bound_staff(staff)
    staff_info = StaffInfo(department=(staff or {}).get("Department"),
                           staff=(staff or {}).get("Staff"), email=(staff or {}).get("Email"),
                           mobile=(staff or {}).get("Mobile")) if staff else None
    at = datetime.now(UTC)
    msg = status_message(doc, agency=Organ(agency_code, agency_name or None), code=code,
                         description=description, staff=staff_info, at=at)
    try:
        body = edxml.build(msg)
    except edxml.EdxmlError as exc:
        raise StatusError(exc.message, exc.code) from None
    params: list[Any] = [doc.id, agency_code, code, description, staff, at,
                         _dedup_key(doc.id, agency_code, code)]
    if axis is not None:
        params += outbox_args(OutboxMessage(
            destination=axis_destination(axis), body=body, content_type="application/xml",
            headers={"message_type": "status", "to": [doc.sender_code] if doc.sender_code else []},
            correlation_id=doc.correlation_id, document_id=doc.id))
    else:
        params.append({"status_code": code, "reason": "no axis connection for this agency"})
    if advance_to is not None:
        params += [advance_to, list(STATE_ORDER)]
    if audit_entry is not None:
        params += audit_entry.args()
    sql = _emit_statement(axis is not None, advance_to is not None, audit_entry is not None)
    return bool(await conn.fetchval(sql, *params))


async def record_inbound_status(conn: asyncpg.Connection, msg: StatusMessage
                                ) -> uuid.UUID | None:
    """Store a status message received from another agency; returns the matched document id.

    It belongs to OUR outbound document with that ``ResponseFor/DocumentId`` whose sender is
    ``ResponseFor/OrganId``; a take-back request (``13``) whose reporter is that sender itself
    belongs to the inbound document it sent us. Anything else (a status about a document we did
    not send, or naming another sender) is kept unmatched (document_id NULL) for operators,
    never attached to an inbound document.

    Never refused for its size: texts are cut to the limits of
    :mod:`gateway.business.status_rules` with a note giving the original length, control
    characters and lone surrogates become U+FFFD (:func:`gateway.business.status_rules.bound`).
    The same status arriving twice (same reporter, sender, document and code, whatever its time
    and text) is stored once.
    """
    code = msg.status_code.value if isinstance(msg.status_code, StatusCode) else msg.status_code
    code = bound(code, 8) or ""
    reporter = bound(msg.from_organ.organ_id, _MAX_ID) or ""
    sender = bound(msg.response_for.organ_id, _MAX_ID)
    document_id = bound(msg.response_for.document_id, _MAX_ID)
    doc_id = await conn.fetchval(
        "SELECT id FROM documents WHERE edxml_document_id = $1 AND sender_code = $2"
        " AND (direction = 'outbound' OR ($3 = '13' AND direction = 'inbound' AND $4 = $2))"
        " ORDER BY direction = 'outbound' DESC, created_at DESC LIMIT 1",
        document_id, sender, code, reporter)
    await insert_inbound_status(conn, msg, doc_id)
    return doc_id


async def insert_inbound_status(conn: asyncpg.Connection, msg: StatusMessage,
                                doc_id: uuid.UUID | None, *, problem: str | None = None) -> bool:
    """Store a status message received from another agency on ``doc_id`` (None: kept
    unmatched for operators, ``problem`` saying why); False when the same status (same
    reporter, sender, document and code, whatever its time and text) was stored before.
    Texts are :func:`gateway.business.status_rules.bound` to their limits."""
    return await store_inbound_status(conn, msg, doc_id, problem=problem) is not None


async def store_inbound_status(conn: asyncpg.Connection, msg: StatusMessage,
                               doc_id: uuid.UUID | None, *, problem: str | None = None
                               ) -> int | None:
    """:func:`insert_inbound_status` returning the new ``status_events`` id (None: stored
    before)."""
    code = msg.status_code.value if isinstance(msg.status_code, StatusCode) else msg.status_code
    code = bound(code, 8) or ""
    reporter = bound(msg.from_organ.organ_id, _MAX_ID) or ""
    sender = bound(msg.response_for.organ_id, _MAX_ID)
    document_id = bound(msg.response_for.document_id, _MAX_ID)
    staff = None
    if msg.staff_info is not None:
        staff = bound_staff({"Department": msg.staff_info.department,
                             "Staff": msg.staff_info.staff, "Email": msg.staff_info.email,
                             "Mobile": msg.staff_info.mobile})
    key = "|".join((reporter, sender or "", document_id or "", code))
    if code in ANSWER_CODES:
        # an answer (15/16) belongs to one flow: the same receiver may agree to a take back
        # and later to a revoke of the same document; a redelivered message keeps its time
        # (whole seconds on the wire) and its text
        key += "|" + (msg.timestamp.isoformat() if msg.timestamp else "") + "|" + (
            msg.description or "")
    return await conn.fetchval(
        "INSERT INTO status_events (document_id, direction, agency_code, status_code, description,"
        " staff, occurred_at, dedup_key, problem)"
        " VALUES ($1, 'inbound', $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        doc_id, reporter, code, bound(msg.description, MAX_DESCRIPTION, multiline=True), staff,
        msg.timestamp, "in:" + hashlib.sha256(key.encode()).hexdigest(), problem)


#: Answers to a business flow (15 agree, 16 refuse): one per flow, not one per document.
ANSWER_CODES = frozenset({"15", "16"})

#: Identifiers (OrganId, DocumentId) are at most 255 characters (edxml-common.xsd).
_MAX_ID = 255


def describe_rejection(code: str, reason: str) -> str:
    """The ``Description`` of a 02 status: Vietnamese reason first, machine code after."""
    return f"Từ chối tiếp nhận: {reason} [{code}]"


def to_json_status(msg: StatusMessage) -> dict[str, Any]:
    return edxml.to_json(msg)

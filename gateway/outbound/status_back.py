"""Business statuses back from the receivers of our outbound documents (issue 13, "Tracking").

A status message (QCVN 102:2016 §3: ``From``, ``ResponseFor`` = OrganId, Code,
PromulgationDate and DocumentId of the original, ``StatusCode``, ``Description``,
``StaffInfo``, ``Timestamp``) polled from the axis is applied by :func:`receiver_status`,
inside the intake's transaction. The rules:

* **Matched** to OUR outbound document whose sender is ``ResponseFor/OrganId`` and whose
  DocumentId is ``ResponseFor/DocumentId``; a ``Code`` or ``PromulgationDate`` given in
  ``ResponseFor`` must agree with the document (spaces and case of the code are not
  significant), else it is kept unmatched (``STATUS_DOCUMENT_MISMATCH``). No such document:
  kept unmatched (``STATUS_DOCUMENT_UNKNOWN``).
* **Only from a receiver**: ``From`` must be the receiver of one of the document's copies
  (``outbound_sends``); a status from any other agency is kept unmatched
  (``STATUS_NOT_FROM_RECEIVER``), never attached to the document nor forwarded.
* **Once**: the same status (reporter, sender, DocumentId, code; whatever its time and text)
  is stored once (``status_events.dedup_key``); a repeat changes nothing and is not forwarded
  again.
* **On the copy**: the receiver's copy keeps its latest business status by the message's
  ``Timestamp`` (``status_code``, ``status_description``, ``status_staff``, ``status_at``): a
  01 arriving after the 03 never hides it. A business status ends the polling of the copy's
  axis receive state (:mod:`gateway.outbound.tracking`): the receiver has it.
* **Forwarded** to the sending agency's eOffice as a typed delivery message ``kind: status``
  (``schemas/messages/delivery.schema.json``, block ``status``) through the deliveries
  machinery: one delivery per status event (``deliveries.status_event_id``, unique), its queue
  message written to the outbox in the same transaction; the adapter deduplicates on the
  message id. A sender this gateway does not serve (no queue) gets ``status.not_forwarded``.

Every field arrives bounded (:func:`gateway.business.status_rules.bound`: cut with a note,
controls and NUL replaced), unknown codes are kept as they come (spec §3).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.business.flow_rules import take_back_matches
from gateway.business.status_rules import bound
from gateway.business.statuses import store_inbound_status
from gateway.db.outbox import args as outbox_args
from gateway.db.outbox import insert_when
from gateway.edxml import StatusCode, StatusMessage
from gateway.inbound.routing import Router, RoutingMaterial

STATUS_KIND = "status"
#: Why a status message was kept unmatched (``status_events.problem``).
STATUS_DOCUMENT_UNKNOWN = "STATUS_DOCUMENT_UNKNOWN"
STATUS_DOCUMENT_MISMATCH = "STATUS_DOCUMENT_MISMATCH"
STATUS_NOT_FROM_RECEIVER = "STATUS_NOT_FROM_RECEIVER"
PROBLEMS = {
    STATUS_DOCUMENT_UNKNOWN: "no outbound document of that sender has that DocumentId",
    STATUS_DOCUMENT_MISMATCH: "ResponseFor Code or PromulgationDate differ from the document",
    STATUS_NOT_FROM_RECEIVER: "the reporting agency is not a receiver of the document",
}
_VERDICTS = frozenset({"valid", "invalid", "indeterminate", "unsigned"})
_MAX_ID = 255

#: The outbound document a status answers: the original before its revoke/update rows, which
#: carry the same DocumentId (their answers are read through the original's flows).
_OUTBOUND = """
SELECT id, sender_code, code_number, code_notation, promulgation_date
FROM documents
WHERE direction = 'outbound' AND edxml_document_id = $1 AND sender_code = $2
ORDER BY original_id IS NULL DESC, created_at DESC LIMIT 1
"""

_COPY = """
SELECT id FROM outbound_sends WHERE document_id = $1 AND receiver_code = $2
"""

#: The copy's latest business status (by the message's Timestamp) from its status event; the
#: axis receive state needs no more polling once the receiver reported anything.
_ON_COPY = """
UPDATE outbound_sends o
SET status_code = s.status_code, status_description = s.description, status_staff = s.staff,
    status_at = s.occurred_at, status_received_at = now(), updated_at = now(),
    axis_tracking = CASE WHEN o.axis_tracking = 'ACTIVE' THEN 'DONE' ELSE o.axis_tracking END
FROM status_events s
WHERE o.id = $1 AND s.id = $2 AND (o.status_at IS NULL OR o.status_at <= s.occurred_at)
RETURNING o.id
"""

#: What a forwarded status is made of, by its status event.
_MATERIAL = """
SELECT s.id AS event_id, s.status_code, s.description, s.staff, s.occurred_at, s.created_at,
       s.agency_code AS receiver, d.id AS document_id, d.edxml_document_id, d.correlation_id,
       d.header, d.signature_verdict, d.sender_code, o.id AS send_id, o.axis_doc_id
FROM status_events s
JOIN documents d ON d.id = s.document_id
LEFT JOIN outbound_sends o ON o.document_id = d.id AND o.receiver_code = s.agency_code
WHERE s.id = $1
"""

_DELIVERY = f"""
WITH delivery AS (
    INSERT INTO deliveries (id, document_id, agency_code, message_id, kind, status_event_id)
    VALUES ($1, $2, $3, $4, 'status', $5)
    ON CONFLICT DO NOTHING RETURNING id
), queued AS ({insert_when("delivery", 6)})
SELECT count(*) FROM delivery
"""

_EVENT = """
INSERT INTO document_events (document_id, event, agency_code, detail) VALUES ($1, $2, $3, $4)
"""


@dataclass(frozen=True)
class StatusBack:
    """What became of one status message: the document it was attached to (None: kept
    unmatched, ``problem`` saying why), whether it was new, and the delivery forwarding it."""

    document_id: uuid.UUID | None
    problem: str | None
    fresh: bool
    delivery_id: uuid.UUID | None = None


async def receiver_status(conn: asyncpg.Connection, router: Router,
                          msg: StatusMessage) -> StatusBack:
    """Apply one status message from another agency (not a take-back request ``13``, which
    is the receiving side's business); call inside a transaction. See the module docstring."""
    rf = msg.response_for
    reporter = bound(msg.from_organ.organ_id, _MAX_ID) or ""
    doc = await conn.fetchrow(_OUTBOUND, bound(rf.document_id, _MAX_ID),
                              bound(rf.organ_id, _MAX_ID))
    problem = None
    copy_id = None
    if doc is None:
        problem = STATUS_DOCUMENT_UNKNOWN
    elif not take_back_matches(dict(doc), rf.code, rf.promulgation_date):
        problem = STATUS_DOCUMENT_MISMATCH
    else:
        copy_id = await conn.fetchval(_COPY, doc["id"], reporter)
        if copy_id is None:
            problem = STATUS_NOT_FROM_RECEIVER
    if problem is not None:
        fresh = await store_inbound_status(conn, msg, None, problem=problem) is not None
        return StatusBack(None, problem, fresh)
    doc_id = doc["id"]
    event_id = await store_inbound_status(conn, msg, doc_id)
    if event_id is None:
        return StatusBack(doc_id, None, False)
    latest = await conn.fetchval(_ON_COPY, copy_id, event_id) is not None
    sender = doc["sender_code"]
    if sender not in router.topology.agencies:
        await conn.execute(_EVENT, doc_id, "status.not_forwarded", reporter, {
            "status_event_id": event_id, "reason": f"agency {sender} is not served here"})
        return StatusBack(doc_id, None, True)
    delivery_id = uuid.uuid4()
    material = await status_material(conn, event_id)
    assert material is not None
    message_id = uuid.uuid4()
    message = router.message(material, sender, delivery_id=delivery_id, message_id=message_id)
    await conn.fetchval(_DELIVERY, delivery_id, doc_id, sender, message_id, event_id,
                        *outbox_args(message))
    await conn.execute(_EVENT, doc_id, "status.forwarded", reporter, {
        "delivery_id": str(delivery_id), "status_code": material.status["code"],
        "send_id": material.status["send_id"], "latest": latest, "to": sender})
    return StatusBack(doc_id, None, True, delivery_id)


async def status_material(conn: asyncpg.Connection, event_id: int) -> RoutingMaterial | None:
    """The typed message of a status event, to forward it (or replay its delivery: the same
    ``status`` block)."""
    row = await conn.fetchrow(_MATERIAL, event_id)
    if row is None:
        return None
    verdict = row["signature_verdict"] if row["signature_verdict"] in _VERDICTS else "unsigned"
    return RoutingMaterial(
        document_id=row["document_id"], edxml_document_id=row["edxml_document_id"] or "",
        correlation_id=row["correlation_id"] or str(row["document_id"]),
        bussiness_doc_type=0, header=row["header"] or {}, signature={"verdict": verdict},
        attachments=[], kind=STATUS_KIND, status=status_block(row))


def status_block(row: Any) -> dict[str, Any]:
    """The ``status`` block of a forwarded status (``schemas/messages/delivery.schema.json``)."""
    code = row["status_code"]
    known = StatusCode.coerce(code)
    return {
        "status_event_id": row["event_id"],
        "send_id": str(row["send_id"]) if row["send_id"] else None,
        "receiver": row["receiver"],
        "axis_doc_id": row["axis_doc_id"],
        "code": code,
        "meaning_vi": known.meaning_vi if isinstance(known, StatusCode) else None,
        "description": row["description"],
        "staff": row["staff"],
        "timestamp": row["occurred_at"].isoformat(),
        "received_at": row["created_at"].isoformat(),
    }


__all__ = ["PROBLEMS", "STATUS_DOCUMENT_MISMATCH", "STATUS_DOCUMENT_UNKNOWN", "STATUS_KIND",
           "STATUS_NOT_FROM_RECEIVER", "StatusBack", "receiver_status", "status_material"]

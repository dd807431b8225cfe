"""The tables of the outbound flow: an outbound document with its files, its copies (one per
receiver) with their outbox rows, the submission's idempotency record, and the read for
``GET /v1/outbound/{id}``. Kept apart from :mod:`gateway.outbound.submission`, which decides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.api.errors import Conflict
from gateway.db import audit
from gateway.db import documents as reads
from gateway.db.outbox import OutboxMessage, axis_destination, insert_when
from gateway.db.outbox import args as outbox_args
from gateway.db.timeline import Timeline
from gateway.edxml import EdocMessage
from gateway.outbound.flow_rules import EVENT, OutboundFlow, assign_answers, refusal

#: The document row; nothing when its dedup key (sender + DocumentId) is taken.
_DOCUMENT = """
INSERT INTO documents (id, direction, dedup_key, edxml_document_id, axis, sender_code,
    sender_name, code_number, code_notation, subject, type_name, promulgation_date, due_date,
    priority, state, signature_verdict, correlation_id, header, edxml_sha256, edxml)
VALUES ($1, 'outbound', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'QUEUED', $14, $15,
        $16, $17, $18)
ON CONFLICT DO NOTHING RETURNING id
"""

_ATTACHMENTS = """
INSERT INTO attachments (id, document_id, ordinal, content_id, name, description, content_type,
                         size, sha256, data)
SELECT a.id, $1, a.ordinal, a.content_id, a.name, a.description, a.content_type, a.size,
       a.sha256, a.data
FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
            $9::text[], $10::bytea[])
     AS a(id, ordinal, content_id, name, description, content_type, size, sha256, data)
"""

_REPORT = """
INSERT INTO signature_reports (id, document_id, attachment_id, verdict, summary, report)
VALUES ($1, $2, $3, $4, $5, $6)
"""

#: A copy and its outbox row, in one statement.
_COPY_WITH_MESSAGE = f"""
WITH copy AS (
    INSERT INTO outbound_sends (id, document_id, receiver_code, axis, edxml_sha256)
    VALUES ($1, $2, $3, $4, $5) RETURNING id
), queued AS ({insert_when("copy", 6)})
SELECT 1
"""

_IDEMPOTENCY = """
INSERT INTO outbound_idempotency (agency_code, idempotency_key, request_sha256, document_id,
                                  response)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1
"""

_REPLAY = """
SELECT request_sha256, response FROM outbound_idempotency
WHERE agency_code = $1 AND idempotency_key = $2
"""


@dataclass(frozen=True)
class StoredFile:
    """One file as stored (after sealing)."""

    id: uuid.UUID
    ordinal: int
    content_id: str
    name: str
    description: str | None
    content_type: str
    data: bytes
    sha256: str


@dataclass(frozen=True)
class Copy:
    id: uuid.UUID
    receiver: str


class KeyTaken(Exception):
    """Another submission stored the same idempotency key first (the transaction rolls back;
    the caller answers that submission's result)."""


async def replayed(conn: asyncpg.Connection | asyncpg.Pool, agency: str,
                   key: str) -> asyncpg.Record | None:
    """The first submission under ``(agency, key)``: its request digest and response."""
    return await conn.fetchrow(_REPLAY, agency, key)


async def store(conn: asyncpg.Connection, *, doc_id: uuid.UUID, dedup_key: str, axis: str,
                msg: EdocMessage, sender_name: str | None, header: dict[str, Any],
                package: bytes, package_sha256: str, verdict: str, report: dict[str, Any],
                files: list[StoredFile], copies: list[Copy], correlation_id: str,
                idempotency: tuple[str, str, str], response: dict[str, Any],
                timeline: Timeline, audit_entry: audit.AuditEntry) -> bool:
    """Write everything of one submission; call inside a transaction. False when the
    document's DocumentId is taken already (nothing written); :class:`KeyTaken` when the
    idempotency key is (the caller rolls back)."""
    info = msg.promulgation_info
    new = await conn.fetchval(
        _DOCUMENT, doc_id, dedup_key, msg.document_id, axis, msg.from_organ.organ_id,
        sender_name, msg.code.code_number, msg.code.code_notation, msg.subject,
        msg.document_type.type_name, info.promulgation_date, msg.due_date,
        msg.other_info.priority if msg.other_info else None, verdict, correlation_id, header,
        package_sha256, package)
    if new is None:
        return False
    agency, key, digest = idempotency
    if await conn.fetchval(_IDEMPOTENCY, agency, key, digest, doc_id, response) is None:
        raise KeyTaken(key)
    await _files(conn, doc_id, files, verdict, report)
    for copy in copies:
        message = OutboxMessage(
            destination=axis_destination(axis), body=package, content_type="application/xml",
            headers={"message_type": "edoc", "to": [copy.receiver], "send_id": str(copy.id)},
            correlation_id=correlation_id, document_id=doc_id)
        await conn.execute(_COPY_WITH_MESSAGE, copy.id, doc_id, copy.receiver, axis,
                           package_sha256, *outbox_args(message))
    await timeline.write(conn, audit_entry)
    return True


async def store_flow_row(conn: asyncpg.Connection, *, doc_id: uuid.UUID,
                         original_id: uuid.UUID, doc_type: int, dedup_key: str, axis: str,
                         msg: EdocMessage, sender_name: str | None, header: dict[str, Any],
                         package: bytes, package_sha256: str, verdict: str,
                         report: dict[str, Any], files: list[StoredFile], copies: list[Copy],
                         correlation_id: str, timeline: Timeline) -> None:
    """Write the package of a business flow on ``original_id`` (revoke, update, or the
    updated document for added receivers) as its own outbound row linked to the original,
    with one copy per receiver; call inside a transaction. The copies' outbox rows carry the
    ORIGINAL's id: the relay sends them after anything of the original still queued."""
    info = msg.promulgation_info
    await conn.fetchval(
        _DOCUMENT, doc_id, dedup_key, msg.document_id, axis, msg.from_organ.organ_id,
        sender_name, msg.code.code_number, msg.code.code_notation, msg.subject,
        msg.document_type.type_name, info.promulgation_date, msg.due_date,
        msg.other_info.priority if msg.other_info else None, verdict, correlation_id, header,
        package_sha256, package)
    await conn.execute("UPDATE documents SET original_id = $2, bussiness_doc_type = $3"
                       " WHERE id = $1", doc_id, original_id, doc_type)
    await _files(conn, doc_id, files, verdict, report)
    for copy in copies:
        message = OutboxMessage(
            destination=axis_destination(axis), body=package, content_type="application/xml",
            headers={"message_type": "edoc", "to": [copy.receiver], "send_id": str(copy.id)},
            correlation_id=correlation_id, document_id=original_id)
        await conn.execute(_COPY_WITH_MESSAGE, copy.id, doc_id, copy.receiver, axis,
                           package_sha256, *outbox_args(message))
    await timeline.write(conn)


async def _files(conn: asyncpg.Connection, doc_id: uuid.UUID, files: list[StoredFile],
                 verdict: str, report: dict[str, Any]) -> None:
    cols = [[getattr(f, k) for f in files] for k in
            ("id", "ordinal", "content_id", "name", "description", "content_type")]
    await conn.execute(_ATTACHMENTS, doc_id, *cols, [len(f.data) for f in files],
                       [f.sha256 for f in files], [f.data for f in files])
    if report and files:
        await conn.execute(_REPORT, uuid.uuid4(), doc_id, files[0].id, verdict,
                           report.get("summary_vi"), report)


async def mark_replaced(conn: asyncpg.Connection, original: uuid.UUID, by: uuid.UUID, *,
                        reason: str, staff: dict[str, str] | None, actor: str) -> dict[str, Any]:
    """Inside the replacement's transaction: lock the original, check a flow may start from
    its state (else :class:`gateway.api.errors.Conflict`, the transaction rolls back), move
    it to ``REPLACED``, link the replacement to it and write both timelines."""
    row = await conn.fetchrow("SELECT state, edxml_document_id, sender_code FROM documents"
                              " WHERE id = $1 FOR UPDATE", original)
    if (code := refusal(row["state"])) is not None:
        raise Conflict(f"document is {row['state']}: no replace now", code=code,
                       details={"state": row["state"], "flow": "replace"})
    await conn.execute("UPDATE documents SET state = 'REPLACED', updated_at = now()"
                       " WHERE id = $1", original)
    await conn.execute("UPDATE documents SET original_id = $2, bussiness_doc_type = 3"
                       " WHERE id = $1", by, original)
    event = EVENT[OutboundFlow.REPLACE]
    await conn.executemany(
        "INSERT INTO document_events (document_id, event, agency_code, detail)"
        " VALUES ($1, $2, $3, $4)",
        [(original, event, row["sender_code"], {"flow_document": str(by), "reason": reason,
                                                "staff": staff, "actor": actor,
                                                "previous_state": row["state"]}),
         (by, "outbound.replaces", row["sender_code"], {"original": str(original),
                                                        "reason": reason})])
    return {"id": str(original), "document_id": row["edxml_document_id"],
            "previous_state": row["state"], "state": "REPLACED"}


_COPIES = """
SELECT receiver_code AS receiver, id AS send_id, state, axis, axis_doc_id, attempts,
       error_code, error_desc, last_error, attempted_at, sent_at, failed_at, created_at,
       updated_at,
       status_code, status_description, status_staff, status_at, status_received_at,
       axis_send_status, axis_send_status_desc, axis_receive_status, axis_receive_status_desc,
       axis_sent_time, axis_received_time, axis_received_at, axis_tracking, axis_checks,
       axis_checked_at
FROM outbound_sends WHERE document_id = $1 ORDER BY created_at, receiver_code
"""

#: The business statuses each receiver sent about the document (matched to its copy).
_RECEIVER_STATUSES = """
SELECT agency_code AS receiver, status_code AS code, description, staff, occurred_at,
       created_at AS received_at
FROM status_events WHERE document_id = $1 AND direction = 'inbound'
ORDER BY occurred_at, id
"""

_LIST = """
SELECT d.id, d.edxml_document_id AS document_id, d.sender_code, d.code_number,
       d.code_notation, d.subject, d.state, d.created_at, d.updated_at,
       coalesce(jsonb_agg(jsonb_build_object(
           'receiver', o.receiver_code, 'state', o.state, 'status_code', o.status_code,
           'axis_receive_status', o.axis_receive_status) ORDER BY o.receiver_code)
           FILTER (WHERE o.id IS NOT NULL), '[]') AS receivers
FROM documents d LEFT JOIN outbound_sends o ON o.document_id = d.id
WHERE d.direction = 'outbound' AND ($1::text[] IS NULL OR d.sender_code = ANY($1))
  AND ($2::text IS NULL OR d.state = $2)
  AND ($3::timestamptz IS NULL OR d.created_at < $3)
GROUP BY d.id
ORDER BY d.created_at DESC, d.id LIMIT $4
"""


async def read(conn: asyncpg.Connection, doc_id: uuid.UUID,
               agencies: list[str] | None) -> dict[str, Any] | None:
    """An outbound document as its sender (``agencies``: the caller's scope, None for
    operators) sees it: summary, files, signature reports, copies (each with its axis
    send/receive state, latest business status and every status its receiver sent, StaffInfo
    included), statuses, timeline."""
    sender = await conn.fetchval(
        "SELECT sender_code FROM documents WHERE id = $1 AND direction = 'outbound'", doc_id)
    if sender is None or (agencies is not None and sender not in agencies):
        return None
    # the sender sees all of its document: every receiver's copy and event
    doc = await reads.get_document(conn, doc_id, agencies=None)
    if doc is None:
        return None
    doc.pop("deliveries", None)
    by_receiver: dict[str, list[dict[str, Any]]] = {}
    for r in await conn.fetch(_RECEIVER_STATUSES, doc_id):
        entry = dict(r)
        by_receiver.setdefault(entry.pop("receiver"), []).append(entry)
    doc["receivers"] = [{**dict(r), "statuses": by_receiver.get(r["receiver"], [])}
                        for r in await conn.fetch(_COPIES, doc_id)]
    doc["flows"] = await flows(conn, doc_id)
    doc["original_id"] = await conn.fetchval(
        "SELECT original_id FROM documents WHERE id = $1", doc_id)
    return doc


_FLOWS = """
SELECT event, detail, at FROM document_events
WHERE document_id = $1 AND event = ANY($2::text[]) ORDER BY id
"""

#: The receivers' answers (15/16) about the original or one of its flow rows.
_ANSWERS = """
SELECT agency_code, status_code, coalesce(created_at, occurred_at) AS at, description
FROM status_events
WHERE direction = 'inbound' AND status_code = ANY($2::text[])
  AND (document_id = $1 OR document_id IN (SELECT id FROM documents WHERE original_id = $1))
"""


async def flows(conn: asyncpg.Connection, doc_id: uuid.UUID) -> list[dict[str, Any]]:
    """The business flows started on an outbound document, oldest first: ``{kind,
    requested_at, reason, staff, receivers, flow_document, answers: {receiver: {code,
    description, at}}, outcome}`` (:func:`gateway.outbound.flow_rules.assign_answers`)."""
    kinds = {v: k for k, v in EVENT.items()}
    out = []
    for r in await conn.fetch(_FLOWS, doc_id, list(kinds)):
        d = r["detail"] or {}
        out.append({"kind": kinds[r["event"]].value, "requested_at": r["at"],
                    "reason": d.get("reason"), "staff": d.get("staff"),
                    "receivers": d.get("sent_to") or [], "flow_document": d.get("flow_document"),
                    **({"added": d["added"]} if d.get("added") else {}),
                    **({"removed": d["removed"]} if d.get("removed") else {})})
    if out:
        answers = await conn.fetch(_ANSWERS, doc_id, ["15", "16"])
        assign_answers(out, ((a["agency_code"], a["status_code"], a["at"], a["description"])
                             for a in answers))
    return out


async def listing(conn: asyncpg.Connection, agencies: list[str] | None, *,
                  state: str | None = None, before: Any = None,
                  limit: int = 50) -> list[dict[str, Any]]:
    """The outbound documents of ``agencies`` (None: all), newest first, each with its
    receivers' copy state, latest business status and axis receive status."""
    return [dict(r) for r in await conn.fetch(_LIST, agencies, state, before, limit)]

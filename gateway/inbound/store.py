"""The statements intake writes with (one round trip each) and the timeline it collects.

Kept apart from :mod:`gateway.inbound.intake`, which decides; this module only knows the tables.
The timeline writer (:class:`Timeline`) lives in :mod:`gateway.db.timeline`, shared with the
outbound flow.
"""

from __future__ import annotations

import uuid

import asyncpg

from gateway.db.outbox import args as outbox_args
from gateway.db.outbox import insert_when
from gateway.db.timeline import Timeline as Timeline  # intake collects its events with it
from gateway.edxml import EdocMessage
from gateway.inbound.routing import Router, RoutingMaterial

#: A delivery and its queue message in the outbox, in one statement.
DELIVERY_WITH_MESSAGE = f"""
WITH delivery AS (
    INSERT INTO deliveries (id, document_id, agency_code, message_id, kind)
    VALUES ($1, $2, $3, $4, $5) RETURNING id
), queued AS ({insert_when("delivery", 6)})
SELECT 1
"""


#: An inbound document with its attachments and their signature reports, in one statement
#: (the parts only if the document row was new: the same package may be stored already —
#: ``dedup_key`` — or another package may own its identity — ``documents_identity_owner``;
#: a concurrent insert of either is waited for, then nothing is written).
DOCUMENT_WITH_PARTS = """
WITH doc AS (
    INSERT INTO documents (id, direction, dedup_key, edxml_document_id, axis, axis_doc_id,
        sender_code, sender_name, code_number, code_notation, subject, type_name,
        promulgation_date, due_date, priority, bussiness_doc_type, state, reject_code,
        reject_reason, signature_verdict, correlation_id, header, edxml_sha256, edxml,
        identity_key, content_sha256, conflicts_with)
    VALUES ($1, 'inbound', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
            $17, $18, $19, $20, $21, $22, $23, $38, $39, $40)
    ON CONFLICT DO NOTHING RETURNING id
), parts AS (
    INSERT INTO attachments (id, document_id, ordinal, content_id, name, description,
                             content_type, size, sha256, data)
    SELECT a.id, doc.id, a.ordinal, a.content_id, a.name, a.description, a.content_type,
           a.size, a.sha256, a.data
    FROM doc, unnest($24::uuid[], $25::int[], $26::text[], $27::text[], $28::text[],
                     $29::text[], $30::bigint[], $31::text[], $32::bytea[])
              AS a(id, ordinal, content_id, name, description, content_type, size, sha256, data)
), reports AS (
    INSERT INTO signature_reports (id, document_id, attachment_id, verdict, summary, report)
    SELECT r.id, doc.id, r.attachment_id, r.verdict, r.summary, r.report
    FROM doc, unnest($33::uuid[], $34::uuid[], $35::text[], $36::text[], $37::jsonb[])
              AS r(id, attachment_id, verdict, summary, report)
)
SELECT true FROM doc
"""


def attachment_rows(msg: EdocMessage, digests: list[str]) -> list[dict]:
    return [{"id": uuid.uuid4(), "ordinal": ordinal, "content_id": att.content_id,
             "name": att.name, "description": att.description,
             "content_type": att.content_type, "size": att.size, "sha256": digest,
             "data": att.data}
            for ordinal, (att, digest) in enumerate(zip(msg.attachments, digests, strict=True))]


def columns(rows: list, keys) -> list[list]:
    """Rows (dicts or tuples) as one list per key: the arrays ``unnest`` turns back into rows."""
    return [[r[k] for r in rows] for k in keys]


async def add_deliveries(conn: asyncpg.Connection, router: Router, material: RoutingMaterial,
                         agencies: list[str]) -> list[tuple[str, uuid.UUID]]:
    """One delivery per agency with its queue message in the outbox (one statement each);
    ``(agency, delivery_id)`` in order. Intake routes with it, and so does an operator's
    decision on a held document; a typed business message (``material.kind``) is a delivery
    of that kind (of the flow's row, or of the original for a take back)."""
    out = []
    for agency in agencies:
        delivery_id, message_id = uuid.uuid4(), uuid.uuid4()
        message = router.message(material, agency, delivery_id=delivery_id,
                                 message_id=message_id)
        await conn.execute(DELIVERY_WITH_MESSAGE, delivery_id, material.document_id, agency,
                           message_id, material.kind, *outbox_args(message))
        out.append((agency, delivery_id))
    return out

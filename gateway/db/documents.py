"""Queries that read documents for the API and the console (one place for the SQL).

``agencies`` is the caller's scope: None for operators (everything), else the agencies of an
eOffice token. A document is in scope when one of them is its sender or has a delivery of it;
inside a document in scope, every part is scoped again, so that one receiver of a document
addressed to several never learns anything of another receiver's handling:

- ``deliveries`` and transport timeline events of a delivery: the caller's agencies only
  (events naming no agency are about the document as received, which every receiver has; one
  listing ``agencies``, e.g. ``receivers.added``, keeps only the caller's in that list and
  is left out when it names none of them);
- ``statuses`` and business timeline events: those the caller's agencies reported, those of the
  document's sender (a take-back request ``13`` is addressed to every receiver), and all of
  them when the caller is the document's sender (every status answers the sender);
- ``state`` (also the list's ``state`` filter): for a receiver of an inbound document, where
  ITS delivery and ITS statuses stand (``ROUTED`` until its delivery is done, then
  ``DELIVERED``, then the state after its furthest status), not the furthest any receiver
  reached; REJECTED and other non-business states are the document's own;
- attachments and signature reports belong to the document: everyone in scope sees them.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from gateway.business.statuses import STATE_AFTER_STATUS, STATE_ORDER

_SCOPE = """
($1::text[] IS NULL
 OR d.sender_code = ANY($1)
 OR EXISTS (SELECT 1 FROM deliveries v WHERE v.document_id = d.id AND v.agency_code = ANY($1)))
"""


def _literal(values: tuple[str, ...]) -> str:
    """A SQL array literal of constant codes (module constants, never input)."""
    assert all(v.replace("_", "").isalnum() for v in values)
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]::text[]"


#: The state a scoped caller sees (see the module docstring); ``$1`` is the scope.
_STATE = f"""
CASE WHEN $1::text[] IS NULL OR d.direction <> 'inbound' OR d.sender_code = ANY($1)
          OR NOT d.state = ANY({_literal(STATE_ORDER)}) THEN d.state
     ELSE coalesce(
        (SELECT m.state FROM status_events s
         JOIN unnest({_literal(tuple(STATE_AFTER_STATUS))}, {_literal(
            tuple(STATE_AFTER_STATUS.values()))}) AS m(code, state) ON m.code = s.status_code
         WHERE s.document_id = d.id AND s.direction = 'outbound' AND s.agency_code = ANY($1)
         ORDER BY array_position({_literal(STATE_ORDER)}, m.state) DESC LIMIT 1),
        CASE WHEN EXISTS (SELECT 1 FROM deliveries v WHERE v.document_id = d.id
                          AND v.agency_code = ANY($1) AND v.state <> 'DELIVERED')
             THEN 'ROUTED' ELSE 'DELIVERED' END)
END"""

SUMMARY_COLUMNS = f"""
d.id, d.direction, d.edxml_document_id, d.axis, d.axis_doc_id, d.sender_code, d.sender_name,
d.code_number, d.code_notation, d.subject, d.type_name, d.promulgation_date, d.due_date,
d.priority, d.bussiness_doc_type, {_STATE} AS state, d.reject_code, d.reject_reason,
d.signature_verdict, d.correlation_id, d.created_at, d.updated_at, d.original_id, d.take_back
"""

#: Status events of document ``d`` the scope ``$1`` may see (see the module docstring).
_STATUS_VISIBLE = """
($1::text[] IS NULL OR s.agency_code = ANY($1) OR d.sender_code = ANY($1)
 OR (s.direction = 'inbound' AND s.agency_code = d.sender_code))
"""


async def list_documents(conn: asyncpg.Connection, *, agencies: list[str] | None,
                         state: str | None = None, direction: str | None = None,
                         limit: int = 50, before: Any = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT * FROM (SELECT {SUMMARY_COLUMNS} FROM documents d WHERE {_SCOPE}"
        " AND ($3::text IS NULL OR d.direction = $3)"
        " AND ($4::timestamptz IS NULL OR d.created_at < $4)) x"
        " WHERE ($2::text IS NULL OR x.state = $2)"
        " ORDER BY x.created_at DESC, x.id LIMIT $5",
        agencies, state, direction, before, limit,
    )
    return [dict(r) for r in rows]


async def get_document(conn: asyncpg.Connection, doc_id: uuid.UUID, *,
                       agencies: list[str] | None) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {SUMMARY_COLUMNS}, d.header, d.edxml_sha256 FROM documents d"
        f" WHERE d.id = $2 AND {_SCOPE}", agencies, doc_id)
    if row is None:
        return None
    doc = dict(row)
    doc["attachments"] = [dict(r) for r in await conn.fetch(
        "SELECT id, ordinal, content_id, name, description, content_type, size, sha256"
        " FROM attachments WHERE document_id = $1 ORDER BY ordinal", doc_id)]
    doc["deliveries"] = [dict(r) for r in await conn.fetch(
        "SELECT id, agency_code, kind, message_id, state, attempts, next_at, last_error,"
        " published_at, delivered_at, updated_at FROM deliveries WHERE document_id = $2"
        " AND ($1::text[] IS NULL OR agency_code = ANY($1)) ORDER BY agency_code",
        agencies, doc_id)]
    doc["signature_reports"] = [dict(r) for r in await conn.fetch(
        "SELECT s.id, s.attachment_id, a.name AS attachment_name, s.verdict, s.summary, s.report"
        " FROM signature_reports s LEFT JOIN attachments a ON a.id = s.attachment_id"
        " WHERE s.document_id = $1 ORDER BY a.ordinal", doc_id)]
    doc["statuses"] = [dict(r) for r in await conn.fetch(
        "SELECT s.direction, s.agency_code, s.status_code, s.description, s.staff,"
        " s.occurred_at, s.created_at FROM status_events s JOIN documents d"
        f" ON d.id = s.document_id WHERE s.document_id = $2 AND {_STATUS_VISIBLE}"
        " ORDER BY s.occurred_at, s.id", agencies, doc_id)]
    doc["timeline"] = await timeline(conn, doc_id, agencies=agencies)
    return doc


#: Whether a timeline event lists ``agencies``, and which of them are in the scope ``$1``.
_LISTS = "coalesce(jsonb_typeof(detail -> 'agencies') = 'array', false)"
_LISTED = ("ARRAY(SELECT a FROM jsonb_array_elements_text(detail -> 'agencies') a"
           " WHERE a = ANY($1))")

_TIMELINE = f"""
SELECT at, 'transport' AS kind, event, agency_code,
       CASE WHEN $1::text[] IS NULL OR NOT {_LISTS} THEN detail
            ELSE detail || jsonb_build_object('agencies', {_LISTED}) END AS detail
FROM document_events
WHERE document_id = $2 AND ($1::text[] IS NULL OR agency_code = ANY($1)
      OR (agency_code IS NULL AND (NOT {_LISTS} OR cardinality({_LISTED}) > 0)))
UNION ALL
SELECT s.created_at AS at, 'business' AS kind,
       'status.' || s.direction || '.' || s.status_code AS event, s.agency_code,
       jsonb_build_object('status_code', s.status_code, 'description', s.description,
                          'occurred_at', s.occurred_at) AS detail
FROM status_events s JOIN documents d ON d.id = s.document_id
WHERE s.document_id = $2 AND {_STATUS_VISIBLE}
ORDER BY at
"""


async def timeline(conn: asyncpg.Connection, doc_id: uuid.UUID, *,
                   agencies: list[str] | None = None) -> list[dict[str, Any]]:
    """Transport events and business statuses of one document, in time order, as far as the
    scope ``agencies`` may see them (None: all; see the module docstring)."""
    return [dict(r) for r in await conn.fetch(_TIMELINE, agencies, doc_id)]


async def get_attachment(conn: asyncpg.Connection, doc_id: uuid.UUID, att_id: uuid.UUID, *,
                         agencies: list[str] | None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT a.name, a.content_type, a.size, a.sha256, a.data FROM attachments a"
        f" JOIN documents d ON d.id = a.document_id"
        f" WHERE a.id = $3 AND a.document_id = $2 AND {_SCOPE}", agencies, doc_id, att_id)

"""Queries that read documents for the API and the console (one place for the SQL)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

_SCOPE = """
($1::text[] IS NULL
 OR d.sender_code = ANY($1)
 OR EXISTS (SELECT 1 FROM deliveries v WHERE v.document_id = d.id AND v.agency_code = ANY($1)))
"""

SUMMARY_COLUMNS = """
d.id, d.direction, d.edxml_document_id, d.axis, d.axis_doc_id, d.sender_code, d.sender_name,
d.code_number, d.code_notation, d.subject, d.type_name, d.promulgation_date, d.due_date,
d.priority, d.bussiness_doc_type, d.state, d.reject_code, d.reject_reason, d.signature_verdict,
d.correlation_id, d.created_at, d.updated_at
"""


async def list_documents(conn: asyncpg.Connection, *, agencies: list[str] | None,
                         state: str | None = None, direction: str | None = None,
                         limit: int = 50, before: Any = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {SUMMARY_COLUMNS} FROM documents d WHERE {_SCOPE}"
        " AND ($2::text IS NULL OR d.state = $2) AND ($3::text IS NULL OR d.direction = $3)"
        " AND ($4::timestamptz IS NULL OR d.created_at < $4)"
        " ORDER BY d.created_at DESC, d.id LIMIT $5",
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
        "SELECT id, agency_code, message_id, state, attempts, next_at, last_error, published_at,"
        " delivered_at, updated_at FROM deliveries WHERE document_id = $1 ORDER BY agency_code",
        doc_id)]
    doc["signature_reports"] = [dict(r) for r in await conn.fetch(
        "SELECT s.id, s.attachment_id, a.name AS attachment_name, s.verdict, s.summary, s.report"
        " FROM signature_reports s LEFT JOIN attachments a ON a.id = s.attachment_id"
        " WHERE s.document_id = $1 ORDER BY a.ordinal", doc_id)]
    doc["statuses"] = [dict(r) for r in await conn.fetch(
        "SELECT direction, agency_code, status_code, description, staff, occurred_at, created_at"
        " FROM status_events WHERE document_id = $1 ORDER BY occurred_at, id", doc_id)]
    doc["timeline"] = await timeline(conn, doc_id)
    return doc


async def timeline(conn: asyncpg.Connection, doc_id: uuid.UUID) -> list[dict[str, Any]]:
    """Transport events and business statuses of one document, in time order."""
    rows = await conn.fetch(
        """
        SELECT at, 'transport' AS kind, event, agency_code, detail FROM document_events
        WHERE document_id = $1
        UNION ALL
        SELECT created_at AS at, 'business' AS kind,
               'status.' || direction || '.' || status_code AS event, agency_code,
               jsonb_build_object('status_code', status_code, 'description', description,
                                  'occurred_at', occurred_at) AS detail
        FROM status_events WHERE document_id = $1
        ORDER BY at
        """, doc_id)
    return [dict(r) for r in rows]


async def get_attachment(conn: asyncpg.Connection, doc_id: uuid.UUID, att_id: uuid.UUID, *,
                         agencies: list[str] | None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT a.name, a.content_type, a.size, a.sha256, a.data FROM attachments a"
        f" JOIN documents d ON d.id = a.document_id"
        f" WHERE a.id = $3 AND a.document_id = $2 AND {_SCOPE}", agencies, doc_id, att_id)

"""A document's timeline (``document_events``): the events of one transaction, written in one
round trip with its audit entry. Both flows write with it (inbound intake, outbound
submission); :func:`gateway.db.documents.timeline` reads it back merged with the business
statuses."""

from __future__ import annotations

import uuid

import asyncpg

from gateway.db import audit

#: A document's timeline events (in order) and an audit entry, in one statement.
EVENTS_AND_AUDIT = f"""
WITH events AS (
    INSERT INTO document_events (document_id, event, agency_code, detail)
    SELECT $1, e.event, e.agency_code, e.detail
    FROM unnest($2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY
         AS e(event, agency_code, detail, n)
    ORDER BY e.n
), {audit.append_when(None, 5)}
SELECT 1
"""


class Timeline:
    """The timeline events (``document_events``) of one transaction, written in one
    round trip, in the order they were added (with the transaction's audit entry, if any)."""

    def __init__(self, document_id: uuid.UUID) -> None:
        self.document_id = document_id
        self.rows: list[tuple] = []

    def add(self, event: str, agency: str | None, detail: dict) -> None:
        self.rows.append((self.document_id, event, agency, detail))

    async def write(self, conn: asyncpg.Connection,
                    audit_entry: audit.AuditEntry | None = None) -> None:
        if audit_entry is not None:
            await conn.execute(EVENTS_AND_AUDIT, self.document_id,
                               [r[1] for r in self.rows], [r[2] for r in self.rows],
                               [r[3] for r in self.rows], *audit_entry.args())
        elif self.rows:
            await conn.executemany(
                "INSERT INTO document_events (document_id, event, agency_code, detail)"
                " VALUES ($1, $2, $3, $4)", self.rows)
        self.rows = []

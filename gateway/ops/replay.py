"""Replaying dead deliveries: an operator moves ``DEAD → PENDING`` with the same message id.

A delivery is DEAD when its adapter exhausted the retry ladder (or refused it for good). After
the cause is fixed (eOffice back, wrong URL corrected) the operator replays it: in one
transaction the delivery goes back to ``PENDING`` and its queue message — rebuilt from the
stored document, with the SAME message id and kind (a typed business message keeps its
``business`` block) — is written to the outbox; the relay publishes it
and the adapter delivers it (it never remembered a message it could not deliver). Replaying a
delivery that is not DEAD is refused (``DELIVERY_NOT_DEAD``): it could deliver twice.
"""

from __future__ import annotations

import uuid

import asyncpg

from gateway.db import audit
from gateway.inbound.business import delivery_material
from gateway.inbound.routing import Router
from gateway.outbound.status_back import status_material


class ReplayError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def replay_delivery(conn: asyncpg.Connection, router: Router, delivery_id: uuid.UUID, *,
                          actor: str) -> dict:
    """Replay one DEAD delivery; returns its new summary. Raises :class:`ReplayError`."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT id, document_id, agency_code, message_id, state, last_error, kind,"
            " status_event_id FROM deliveries WHERE id = $1 FOR UPDATE", delivery_id)
        if row is None:
            raise ReplayError("DELIVERY_NOT_FOUND", f"no delivery {delivery_id}")
        if row["state"] != "DEAD":
            raise ReplayError("DELIVERY_NOT_DEAD",
                              f"delivery {delivery_id} is {row['state']}, not DEAD")
        if row["agency_code"] not in router.topology.agencies:
            raise ReplayError("AGENCY_NOT_SERVED",
                              f"agency {row['agency_code']} is no longer served here")
        if row["status_event_id"] is not None:  # a receiver's status, forwarded again
            material = await status_material(conn, row["status_event_id"])
            assert material is not None  # the delivery references its status event
        else:
            material = await delivery_material(conn, row["document_id"], row["kind"])
        await conn.execute(
            "UPDATE deliveries SET state = 'PENDING', next_at = NULL, last_error = NULL,"
            " updated_at = now() WHERE id = $1", delivery_id)
        await router.enqueue(conn, material, row["agency_code"], delivery_id=delivery_id,
                             message_id=row["message_id"])
        await conn.execute(
            "INSERT INTO document_events (document_id, event, agency_code, detail)"
            " VALUES ($1, 'delivery.replayed', $2, $3)", row["document_id"],
            row["agency_code"], {"by": actor, "previous_error": row["last_error"]})
        await audit.append(conn, actor=actor, action="delivery.replay",
                           subject=str(delivery_id),
                           detail={"document_id": str(row["document_id"]),
                                   "agency": row["agency_code"]})
    return {"delivery_id": str(delivery_id), "document_id": str(row["document_id"]),
            "agency": row["agency_code"], "state": "PENDING"}


async def list_deliveries(conn: asyncpg.Connection, *, state: str | None = None,
                          agency: str | None = None, limit: int = 100) -> list[dict]:
    rows = await conn.fetch(
        "SELECT v.id, v.document_id, v.agency_code, v.kind, v.state, v.attempts, v.last_error,"
        " v.updated_at, d.subject, d.code_number, d.code_notation, d.sender_code"
        " FROM deliveries v JOIN documents d ON d.id = v.document_id"
        " WHERE ($1::text IS NULL OR v.state = $1) AND ($2::text IS NULL OR v.agency_code = $2)"
        " ORDER BY v.updated_at DESC LIMIT $3", state, agency, limit)
    return [dict(r) for r in rows]

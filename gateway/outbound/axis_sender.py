"""Sending outbox rows to an axis: status messages and documents, retried until accepted.

Rows with destination ``axis:<connection>`` carry the edXML bytes as body and
``headers.message_type`` (``status`` or ``edoc``) and optional ``headers.to``. The generic
:class:`gateway.bus.relay.OutboxRelay` drives this sender: a row is deleted only after the axis
answered with success (``ErrorCode 0``); a transient failure reschedules it with backoff and
keeps the last error on the row for operators.

A copy of an outbound document (``headers.send_id``: its ``outbound_sends`` row) is sent by
:func:`gateway.outbound.sending.send_copy`: its state and axis DocId are recorded before the row
leaves the outbox, and a copy that may already be at the axis is reconciled, never sent twice.

A permanent refusal of the axis (:func:`gateway.axis.errors.is_permanent`: an unknown receiver,
a non-retryable ``ErrorCode``) is never retried: the copy is ``FAILED`` with the axis's code and
text, a status message gets ``axis.refused`` on its document's timeline, and the row leaves the
outbox (:class:`gateway.bus.relay.Undeliverable`), so it never holds back the rows after it.
"""

from __future__ import annotations

import logging
import uuid

import asyncpg

from gateway.axis import AxisClient
from gateway.axis.errors import AxisError, AxisRejectedError, is_permanent
from gateway.bus.relay import Sender, Undeliverable
from gateway.outbound.sending import send_copy

log = logging.getLogger(__name__)

_REFUSED_EVENT = """
INSERT INTO document_events (document_id, event, agency_code, detail)
SELECT id, 'axis.refused', NULL, $2::jsonb FROM documents WHERE id = $1
"""


def axis_sender(client: AxisClient, connection: str,
                pool: asyncpg.Pool | None = None) -> Sender:
    """The relay's sender for one axis connection; ``pool`` records outbound copies' states
    and refusals (without it, rows are only sent)."""
    async def send(row: asyncpg.Record) -> None:
        headers = row["headers"] or {}
        to = headers.get("to") or None
        message_type = headers.get("message_type")
        if message_type == "edoc" and headers.get("send_id") and pool is not None:
            await send_copy(pool, client, connection, bytes(row["body"]),
                            uuid.UUID(headers["send_id"]))
            return
        try:
            if message_type == "edoc":
                result = await client.send_edoc(bytes(row["body"]), to=to)
            else:
                result = await client.send_status(bytes(row["body"]), to=to)
        except AxisError as exc:
            if not is_permanent(exc):
                raise
            assert isinstance(exc, AxisRejectedError)
            await _refused(pool, row, connection, exc)
            raise Undeliverable(f"axis ErrorCode {exc.axis_code}", exc.axis_desc) from None
        log.info("sent to axis", extra={"axis": connection, "axis_doc_id": result.doc_id,
                                        "message_type": message_type,
                                        "correlation_id": row["correlation_id"]})
    return send


async def _refused(pool: asyncpg.Pool | None, row: asyncpg.Record, connection: str,
                   exc: AxisRejectedError) -> None:
    """Put a permanent refusal on the document's timeline (before the row leaves)."""
    headers = row["headers"] or {}
    log.warning("axis refused an outbox row for good", extra={
        "axis": connection, "axis_code": exc.axis_code,
        "message_type": headers.get("message_type"), "correlation_id": row["correlation_id"]})
    if pool is not None and row["document_id"] is not None:
        await pool.execute(_REFUSED_EVENT, row["document_id"], {
            "axis": connection, "message_type": headers.get("message_type"),
            "to": headers.get("to"), "error_code": exc.axis_code,
            "error_desc": exc.axis_desc[:2000], "message_id": str(row["message_id"])})

"""Sending outbox rows to an axis: status messages and documents, retried until accepted.

Rows with destination ``axis:<connection>`` carry the edXML bytes as body and
``headers.message_type`` (``status`` or ``edoc``) and optional ``headers.to``. The generic
:class:`gateway.bus.relay.OutboxRelay` drives this sender: a row is deleted only after the axis
answered with success (``ErrorCode 0``); any failure reschedules it with backoff and keeps the
last error on the row for operators.
"""

from __future__ import annotations

import logging

import asyncpg

from gateway.axis import AxisClient
from gateway.bus.relay import Sender

log = logging.getLogger(__name__)


def axis_sender(client: AxisClient, connection: str) -> Sender:
    async def send(row: asyncpg.Record) -> None:
        headers = row["headers"] or {}
        to = headers.get("to") or None
        if headers.get("message_type") == "edoc":
            result = await client.send_edoc(bytes(row["body"]), to=to)
        else:
            result = await client.send_status(bytes(row["body"]), to=to)
        log.info("sent to axis", extra={"axis": connection, "axis_doc_id": result.doc_id,
                                        "message_type": headers.get("message_type"),
                                        "correlation_id": row["correlation_id"]})
    return send

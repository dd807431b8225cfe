"""Delivery messages: what an agency's adapter receives for one inbound document.

Messages stay small: metadata, the signature summary and attachment references with sha256
(``schemas/messages/delivery.schema.json``). Adapters fetch bodies from
``GET /v1/documents/{id}/attachments/{aid}``; files under ``inline_threshold`` bytes travel
inline (base64) to spare the round trip.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from gateway.bus.topology import Topology
from gateway.db.outbox import AMQP, OutboxMessage

SCHEMA = "edoc.delivery/1"


def delivery_message(*, topology: Topology, public_url: str, delivery_id: uuid.UUID,
                     message_id: uuid.UUID, document_id: uuid.UUID, agency: str,
                     correlation_id: str, edxml_document_id: str, bussiness_doc_type: int,
                     header: dict[str, Any], signature: dict[str, Any],
                     attachments: list[dict[str, Any]], inline_threshold: int) -> OutboxMessage:
    base = public_url.rstrip("/")
    refs = []
    for att in attachments:
        ref = {k: att[k] for k in ("id", "name", "description", "content_type", "size", "sha256")}
        ref["id"] = str(att["id"])
        ref["url"] = f"{base}/v1/documents/{document_id}/attachments/{att['id']}"
        if att["size"] <= inline_threshold:
            ref["inline_base64"] = base64.b64encode(att["data"]).decode("ascii")
        refs.append(ref)
    payload = {
        "schema": SCHEMA,
        "message_id": str(message_id),
        "delivery_id": str(delivery_id),
        "document_id": str(document_id),
        "agency": agency,
        "correlation_id": correlation_id,
        "edxml_document_id": edxml_document_id,
        "bussiness_doc_type": bussiness_doc_type,
        "header": header,
        "signature": signature,
        "attachments": refs,
        "status_url": f"{base}/v1/documents/{document_id}/status",
        "created_at": datetime.now(UTC).isoformat(),
    }
    return OutboxMessage.json(
        AMQP, payload, exchange=topology.work_exchange,
        routing_key=topology.agency_routing_key(agency), message_id=message_id,
        correlation_id=correlation_id, document_id=document_id, delivery_id=delivery_id,
        headers={"x-delivery-id": str(delivery_id), "x-document-id": str(document_id),
                 "x-agency": agency, "x-correlation-id": correlation_id},
    )

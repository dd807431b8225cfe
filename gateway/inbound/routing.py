"""Delivery messages: what an agency's adapter receives for one inbound document.

Messages stay small: metadata, the signature summary and attachment references with sha256
(``schemas/messages/delivery.schema.json``). Adapters fetch bodies from
``GET /v1/documents/{id}/attachments/{aid}``; files under ``inline_threshold`` bytes travel
inline (base64) to spare the round trip.

The same message is built at intake (from the parsed package), when a later copy of a package
names another served agency, and when an operator replays a dead delivery (both from the
database: :func:`load_material`); a replay keeps the delivery's message id, so an adapter that
did deliver after all recognises it.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway.bus.topology import Topology
from gateway.db.outbox import AMQP, OutboxMessage, enqueue
from gateway.inbound.verification import DocumentVerdict

SCHEMA = "edoc.delivery/1"


@dataclass(frozen=True)
class RoutingMaterial:
    """What every delivery message of one document is made of."""

    document_id: uuid.UUID
    edxml_document_id: str
    correlation_id: str
    bussiness_doc_type: int
    header: dict[str, Any]
    signature: dict[str, Any]
    attachments: list[dict[str, Any]]  # id, ordinal, name, description, content_type, size,
    #                                    sha256, data
    #: ``document`` for the document itself, else a typed business message about an original
    #: (:class:`gateway.business.flow_rules.FlowKind`) with its ``business`` block.
    kind: str = "document"
    business: dict[str, Any] | None = None
    #: ``kind = status``: a receiver's business status about our outbound document
    #: (:mod:`gateway.outbound.status_back`).
    status: dict[str, Any] | None = None


@dataclass(frozen=True)
class Router:
    """Where delivery messages go and how attachments are referenced."""

    topology: Topology
    public_url: str
    inline_threshold: int

    def message(self, m: RoutingMaterial, agency: str, *, delivery_id: uuid.UUID,
                message_id: uuid.UUID) -> OutboxMessage:
        """The delivery message of ``agency``'s delivery, as an outbox row."""
        return delivery_message(
            topology=self.topology, public_url=self.public_url, delivery_id=delivery_id,
            message_id=message_id, document_id=m.document_id, agency=agency,
            correlation_id=m.correlation_id, edxml_document_id=m.edxml_document_id,
            bussiness_doc_type=m.bussiness_doc_type, header=m.header, signature=m.signature,
            attachments=m.attachments, inline_threshold=self.inline_threshold, kind=m.kind,
            business=m.business, status=m.status)

    async def enqueue(self, conn: asyncpg.Connection, m: RoutingMaterial, agency: str, *,
                      delivery_id: uuid.UUID, message_id: uuid.UUID) -> None:
        await enqueue(conn, self.message(m, agency, delivery_id=delivery_id,
                                         message_id=message_id))


def signature_summary(verdict: DocumentVerdict, attachments: list[dict[str, Any]]
                      ) -> dict[str, Any]:
    by_ordinal = {a["ordinal"]: a for a in attachments}
    return {"verdict": verdict.verdict, "summary_vi": verdict.summary_vi, "files": [
        {"attachment_id": str(by_ordinal[o]["id"]), "name": by_ordinal[o]["name"],
         "verdict": f.verdict, "summary_vi": f.summary_vi, "signatures": f.signatures}
        for o, f in verdict.files.items()]}


async def load_material(conn: asyncpg.Connection, doc_id: uuid.UUID) -> RoutingMaterial:
    """The routing material of a stored document (call after locking its row)."""
    from gateway.inbound.verification import FileVerdict

    doc = await conn.fetchrow(
        "SELECT id, edxml_document_id, correlation_id, bussiness_doc_type, header,"
        " signature_verdict FROM documents WHERE id = $1", doc_id)
    attachments = [dict(r) for r in await conn.fetch(
        "SELECT id, ordinal, content_id, name, description, content_type, size, sha256, data"
        " FROM attachments WHERE document_id = $1 ORDER BY ordinal", doc_id)]
    ordinal = {a["id"]: a["ordinal"] for a in attachments}
    verdict = DocumentVerdict(doc["signature_verdict"] or "unsigned", {
        ordinal[r["attachment_id"]]: FileVerdict(
            r["verdict"], r["summary"] or "", r["report"], len(r["report"].get("signatures", [])))
        for r in await conn.fetch(
            "SELECT attachment_id, verdict, summary, report FROM signature_reports"
            " WHERE document_id = $1", doc_id)})
    return RoutingMaterial(doc["id"], doc["edxml_document_id"] or "", doc["correlation_id"],
                           doc["bussiness_doc_type"], doc["header"],
                           signature_summary(verdict, attachments), attachments)


def delivery_message(*, topology: Topology, public_url: str, delivery_id: uuid.UUID,
                     message_id: uuid.UUID, document_id: uuid.UUID, agency: str,
                     correlation_id: str, edxml_document_id: str, bussiness_doc_type: int,
                     header: dict[str, Any], signature: dict[str, Any],
                     attachments: list[dict[str, Any]], inline_threshold: int,
                     kind: str = "document", business: dict[str, Any] | None = None,
                     status: dict[str, Any] | None = None) -> OutboxMessage:
    """The ``edoc.delivery/1`` message. A typed business message (``kind`` revoke, update,
    replace, take_back) also carries ``kind`` and ``business`` (which originals it is about,
    the reason…); a receiver's status about a document the agency sent (``kind`` status)
    carries ``kind`` and ``status``; a document's message is exactly what it was before
    business flows existed (no ``kind``: adapters that predate them read it unchanged)."""
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
    headers = {"x-delivery-id": str(delivery_id), "x-document-id": str(document_id),
               "x-agency": agency, "x-correlation-id": correlation_id}
    if kind == "status":
        payload["kind"] = kind
        payload["status"] = status or {}
        payload.pop("status_url")  # a status is not answered
        headers["x-kind"] = kind
    elif kind != "document":
        payload["kind"] = kind
        payload["business"] = business or {}
        headers["x-kind"] = kind
    return OutboxMessage.json(
        AMQP, payload, exchange=topology.work_exchange,
        routing_key=topology.agency_routing_key(agency), message_id=message_id,
        correlation_id=correlation_id, document_id=document_id, delivery_id=delivery_id,
        headers=headers,
    )

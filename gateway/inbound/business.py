"""Business flows received from other agencies: revoke, update, replace, take back.

The rules (which document is the original, which state follows, what the eOffice answers) are
in :mod:`gateway.business.flow_rules`; this module applies them to the tables, inside the
caller's transaction:

* :func:`match` finds the originals a flow names (the sender's own inbound documents);
* :func:`apply_flow` links a revoke/update/replace row to its originals, moves their state,
  writes the event on both timelines and routes one TYPED delivery message (``kind`` revoke,
  update, replace; ``business`` names the originals) per served receiver — never a new,
  unrelated document;
* :func:`take_back_request` handles a status ``13``: matched to the original by its
  ``ResponseFor`` and accepted only from the original's sender, it marks the document
  ``take_back = PENDING`` and routes a ``take_back`` message to every agency that got it;
  anything else is kept unmatched with a ``problem`` code for an operator;
* :func:`answer_take_back` applies an eOffice's 15 (``TAKEN_BACK``) or 16;
* :func:`delivery_material` rebuilds the message of any delivery (operator's replay).
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import asyncpg

from gateway import edxml
from gateway.business.flow_rules import (
    FINAL_STATES,
    NOT_ORIGINAL_STATES,
    FlowError,
    FlowKind,
    FlowRequest,
    OriginalMatch,
    flow_request,
    match_originals,
    next_state,
    take_back_matches,
)
from gateway.business.statuses import insert_inbound_status
from gateway.edxml import StatusMessage
from gateway.inbound.routing import Router, RoutingMaterial, load_material
from gateway.inbound.store import Timeline, add_deliveries

#: Inbound documents that can be an original: taken in (not rejected, not a conflicting
#: second package), a new document or a replacement (itself a document), latest last.
_ORIGINALS = """
SELECT sender_code, edxml_document_id, id, state, code_number, code_notation,
       promulgation_date, take_back
FROM documents
WHERE direction = 'inbound' AND edxml_document_id = ANY($1::text[])
  AND identity_key IS NOT NULL AND conflicts_with IS NULL AND bussiness_doc_type IN (0, 3)
  AND state <> ALL($2::text[]) AND id <> ALL($3::uuid[])
ORDER BY created_at, id
"""

#: The timeline event that holds the ``business`` block of each kind (replays rebuild it).
_BLOCK_EVENT = {FlowKind.REVOKE: "business.linked", FlowKind.UPDATE: "business.linked",
                FlowKind.REPLACE: "business.linked",
                FlowKind.TAKE_BACK: "business.take_back_requested"}


async def match(conn: asyncpg.Connection, sender: str, named: tuple[str, ...], *,
                exclude: tuple[uuid.UUID, ...] = ()) -> OriginalMatch:
    """The stored originals the DocumentIds ``named`` by ``sender`` designate."""
    rows = await conn.fetch(_ORIGINALS, list(named), list(NOT_ORIGINAL_STATES), list(exclude))
    return match_originals(named, sender,
                           ((r["sender_code"], r["edxml_document_id"], r["id"]) for r in rows))


def request_of(header: dict[str, Any]) -> FlowRequest | None:
    """The flow a stored row asks for, from its header JSON (:func:`flow_request`)."""
    bussiness = header.get("bussiness")
    if not bussiness:
        return None
    msg = edxml.from_json({**header, "attachments": []})
    return flow_request(msg.bussiness)


async def apply_flow(conn: asyncpg.Connection, router: Router, material: RoutingMaterial,
                     request: FlowRequest, found: OriginalMatch, receivers: list[str],
                     timeline: Timeline, *, actor: str) -> list[tuple[str, uuid.UUID]]:
    """Link the flow row ``material.document_id`` to its originals (``found``), move their
    state, put the event on every timeline and route one typed message per receiver.
    Call inside the intake (or resolution) transaction; returns the deliveries made."""
    ids = list(dict.fromkeys(found.found.values()))
    originals = {r["id"]: r for r in await conn.fetch(
        "SELECT id, state, edxml_document_id FROM documents WHERE id = ANY($1::uuid[])"
        " ORDER BY id FOR UPDATE", ids)}
    linked = []
    for gid in ids:
        row = originals[gid]
        state = next_state(request.kind, row["state"])
        await conn.execute("UPDATE documents SET state = $2, updated_at = now() WHERE id = $1",
                           gid, state)
        await conn.execute(
            "INSERT INTO document_events (document_id, event, agency_code, detail)"
            " VALUES ($1, $2, NULL, $3)", gid, f"business.{request.kind.value}",
            {"by_document": str(material.document_id), "previous_state": row["state"],
             "state": state, "reason": request.reason, "by": actor})
        linked.append({"document_id": str(gid), "edxml_document_id": row["edxml_document_id"],
                       "previous_state": row["state"], "state": state})
    await conn.execute("UPDATE documents SET original_id = $2 WHERE id = $1",
                       material.document_id, ids[0])
    block = {**request.business_json(), "originals": linked, "unknown": list(found.unknown),
             "foreign": list(found.foreign)}
    timeline.add("business.linked", None, block)
    typed = dataclasses.replace(material, kind=request.kind.value, business=block)
    made = await add_deliveries(conn, router, typed, receivers)
    for agency, delivery_id in made:
        timeline.add("routed", agency, {"delivery_id": str(delivery_id),
                                        "kind": request.kind.value})
    return made


# -- take back (status 13) ---------------------------------------------------------------------

async def take_back_request(conn: asyncpg.Connection, router: Router, msg: StatusMessage
                            ) -> tuple[uuid.UUID | None, str | None, bool]:
    """A status 13 from the axis: ``(document, problem, new)``. Inside a transaction.

    It names the original by ``ResponseFor`` (``OrganId`` = the sender, ``DocumentId``, and
    ``Code``/``PromulgationDate`` when given, which must agree); only the original's sender
    may ask (``From`` = ``ResponseFor/OrganId`` = the document's sender). Matched and new: the
    document gets ``take_back = PENDING`` (unless final), the request goes on its timeline and
    a ``take_back`` message to every agency that received it. Else it is kept unmatched with
    ``problem`` ``BUSINESS_NOT_ORIGINAL_SENDER`` or ``BUSINESS_ORIGINAL_UNKNOWN``."""
    rf = msg.response_for
    reporter = msg.from_organ.organ_id
    named = rf.document_id or ""
    rows = await conn.fetch(_ORIGINALS, [named], list(NOT_ORIGINAL_STATES), [])
    own = [r for r in rows if r["sender_code"] == reporter == rf.organ_id
           and take_back_matches(dict(r), rf.code, rf.promulgation_date)]
    doc = own[-1] if own else None
    problem = None
    if doc is None:
        mine = [r for r in rows if r["sender_code"] == reporter]
        problem = ("BUSINESS_NOT_ORIGINAL_SENDER" if rows and (rf.organ_id != reporter
                                                                or not mine)
                   else "BUSINESS_ORIGINAL_UNKNOWN")
    doc_id = doc["id"] if doc is not None else None
    fresh = await insert_inbound_status(conn, msg, doc_id, problem=problem)
    if doc_id is None or not fresh:
        return doc_id, problem, fresh
    state = await conn.fetchval("SELECT state FROM documents WHERE id = $1 FOR UPDATE", doc_id)
    block = {"kind": FlowKind.TAKE_BACK.value, "reason": msg.description,
             "requested_by": reporter,
             "status": {"code": "13", "description": msg.description,
                        "timestamp": msg.timestamp.isoformat()},
             "originals": [{"document_id": str(doc_id), "edxml_document_id": named,
                            "previous_state": state, "state": state}]}
    timeline = Timeline(doc_id)
    if state in FINAL_STATES:
        timeline.add("business.take_back_ignored", None, {**block, "why": f"already {state}"})
        await timeline.write(conn)
        return doc_id, None, fresh
    await conn.execute("UPDATE documents SET take_back = 'PENDING', updated_at = now()"
                       " WHERE id = $1", doc_id)
    timeline.add("business.take_back_requested", None, block)
    agencies = [r["agency_code"] for r in await conn.fetch(
        "SELECT agency_code FROM deliveries WHERE document_id = $1 AND kind = 'document'"
        " AND agency_code = ANY($2::text[]) ORDER BY agency_code", doc_id,
        list(router.topology.agencies))]
    material = dataclasses.replace(await load_material(conn, doc_id), attachments=[],
                                   kind=FlowKind.TAKE_BACK.value, business=block)
    for agency, delivery_id in await add_deliveries(conn, router, material, agencies):
        timeline.add("routed", agency, {"delivery_id": str(delivery_id),
                                        "kind": FlowKind.TAKE_BACK.value})
    await timeline.write(conn)
    return doc_id, None, fresh


async def answer_take_back(conn: asyncpg.Connection, doc_id: uuid.UUID, code: str,
                           agency: str) -> str | None:
    """An eOffice's answer to a pending take back (inside the status transaction): ``15``
    makes the document ``TAKEN_BACK`` (``take_back`` AGREED), ``16`` records the refusal
    (``REFUSED``, state unchanged). Returns the new state, None when no take back was asked."""
    row = await conn.fetchrow("SELECT state, take_back FROM documents WHERE id = $1", doc_id)
    if row is None or row["take_back"] is None or code not in ("15", "16"):
        return None
    if code == "15":
        state = "TAKEN_BACK"
        await conn.execute("UPDATE documents SET state = 'TAKEN_BACK', take_back = 'AGREED',"
                           " updated_at = now() WHERE id = $1", doc_id)
    else:
        state = row["state"]
        await conn.execute("UPDATE documents SET take_back = 'REFUSED', updated_at = now()"
                           " WHERE id = $1 AND take_back = 'PENDING'", doc_id)
    await conn.execute(
        "INSERT INTO document_events (document_id, event, agency_code, detail)"
        " VALUES ($1, $2, $3, $4)", doc_id,
        "business.take_back_agreed" if code == "15" else "business.take_back_refused", agency,
        {"previous_state": row["state"], "state": state})
    return state


# -- rebuilding a message ------------------------------------------------------------------------

async def delivery_material(conn: asyncpg.Connection, doc_id: uuid.UUID,
                            kind: str) -> RoutingMaterial:
    """The material of a delivery of ``kind`` of ``doc_id`` (a replay sends the same typed
    message again: its ``business`` block is the one recorded on the timeline)."""
    material = await load_material(conn, doc_id)
    if kind == FlowKind.DOCUMENT:
        return material
    block = await conn.fetchval(
        "SELECT detail FROM document_events WHERE document_id = $1 AND event = $2"
        " ORDER BY id DESC LIMIT 1", doc_id, _BLOCK_EVENT[FlowKind(kind)])
    if kind == FlowKind.TAKE_BACK:
        material = dataclasses.replace(material, attachments=[])
    return dataclasses.replace(material, kind=kind, business=block or {"kind": kind})


__all__ = ["FlowError", "answer_take_back", "apply_flow", "delivery_material", "match",
           "request_of", "take_back_request"]

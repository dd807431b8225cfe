"""An operator's decision on a document intake did not route: ``HELD`` (by the intake policy)
or ``CONFLICT`` (a second package under a known sender and DocumentId with other content).

* ``route``: the document goes on as if intake had routed it — one delivery per served
  receiver with its queue message in the outbox, and (for a conflict, which was not
  acknowledged) status 01 to the sender; state ``ROUTED``. A revoke/update/replace (held with
  ``BUSINESS_ORIGINAL_UNKNOWN`` until its original arrives, or held by the intake policy) is
  linked to its originals and routed as a typed message
  (:func:`gateway.inbound.business.apply_flow`); while no original can be linked the decision
  is refused with that code (``BUSINESS_ORIGINAL_UNKNOWN``, ``BUSINESS_NOT_ORIGINAL_SENDER``).
* ``reject``: status 02 to the sender with the operator's reason (after a 01 for a conflict);
  state ``REJECTED`` with code ``OPERATOR_REJECTED``.

One transaction with the row locked: a decision is taken once (a second one is refused with
``DOCUMENT_NOT_HELD``); the timeline gets a ``resolved`` event and the audit log an entry
naming the operator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Literal

import asyncpg

from gateway.business.statuses import DocumentRef, describe_rejection, emit_status
from gateway.db import audit
from gateway.inbound import business
from gateway.inbound.routing import Router, load_material
from gateway.inbound.rules import RECEIVED_TEXT
from gateway.inbound.store import Timeline, add_deliveries

Action = Literal["route", "reject"]

#: States an operator decides on.
UNDECIDED = ("HELD", "CONFLICT")
MAX_REASON = 2000


class ResolutionError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def resolve_document(conn: asyncpg.Connection, router: Router, doc_id: uuid.UUID, *,
                           action: Action, reason: str | None, actor: str,
                           served: Mapping[str, str],
                           status_axis: Callable[[str, str | None], str | None]) -> dict:
    """Apply an operator's decision (``served``: code -> name of the agencies served here;
    ``status_axis(agency, arrival_axis)``: the axis connection that carries its statuses)."""
    if action not in ("route", "reject"):
        raise ResolutionError("RESOLUTION_INVALID", "action must be route or reject")
    reason = (reason or "").strip()
    if action == "reject" and not reason:
        raise ResolutionError("RESOLUTION_INVALID", "a rejection needs a reason")
    if len(reason) > MAX_REASON:
        raise ResolutionError("RESOLUTION_INVALID", f"reason over {MAX_REASON} characters")
    async with conn.transaction():
        doc = await conn.fetchrow(
            "SELECT id, state, direction, sender_code, code_number, code_notation,"
            " promulgation_date, edxml_document_id, correlation_id, axis, header,"
            " bussiness_doc_type FROM documents WHERE id = $1 FOR UPDATE", doc_id)
        if doc is None or doc["direction"] != "inbound":
            raise ResolutionError("DOCUMENT_NOT_FOUND", f"no inbound document {doc_id}")
        if doc["state"] not in UNDECIDED:
            raise ResolutionError("DOCUMENT_NOT_HELD",
                                  f"document {doc_id} is {doc['state']}, not held")
        receivers = list(dict.fromkeys(
            o.get("organ_id") for o in (doc["header"].get("to_organs") or ())
            if o.get("organ_id") in served))
        ref = DocumentRef.from_row(doc)

        async def status(agency: str, code: str, text: str) -> None:
            await emit_status(conn, ref, agency_code=agency, agency_name=served.get(agency),
                              code=code, description=text,
                              axis=status_axis(agency, ref.axis))

        if doc["state"] == "CONFLICT":  # never acknowledged at intake
            for agency in receivers:
                await status(agency, "01", RECEIVED_TEXT)
        if action == "route":
            request = business.request_of(doc["header"]) if doc["bussiness_doc_type"] else None
            if request is not None:  # a revoke/update/replace: linked, typed, or not at all
                found = await business.match(conn, doc["sender_code"] or "", request.originals,
                                             exclude=(doc_id,))
                if (problem := found.problem()) is not None:
                    raise ResolutionError(problem, f"document {doc_id}: {problem}: the"
                                          " original it names is not (yet) here")
                timeline = Timeline(doc_id)
                await business.apply_flow(conn, router, await load_material(conn, doc_id),
                                          request, found, receivers, timeline, actor=actor)
                await timeline.write(conn)
            else:
                await add_deliveries(conn, router, await load_material(conn, doc_id),
                                     receivers)
            await conn.execute("UPDATE documents SET state = 'ROUTED', updated_at = now()"
                               " WHERE id = $1", doc_id)
            state = "ROUTED"
        else:
            for agency in receivers:
                await status(agency, "02", describe_rejection("OPERATOR_REJECTED", reason))
            await conn.execute(
                "UPDATE documents SET state = 'REJECTED', reject_code = 'OPERATOR_REJECTED',"
                " reject_reason = $2, updated_at = now() WHERE id = $1", doc_id, reason)
            state = "REJECTED"
        detail = {"by": actor, "action": action, "previous_state": doc["state"],
                  "reason": reason or None, "receivers": receivers}
        await conn.execute(
            "INSERT INTO document_events (document_id, event, agency_code, detail)"
            " VALUES ($1, 'resolved', NULL, $2)", doc_id, detail)
        await audit.append(conn, actor=actor, action="document.resolve", subject=str(doc_id),
                           detail={"action": action, "previous_state": doc["state"]})
    return {"document_id": str(doc_id), "state": state, "receivers": receivers}

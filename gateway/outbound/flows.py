"""The business flows an eOffice starts on one of its outbound documents: revoke, update,
take back (and replace, which is a submission: :mod:`gateway.outbound.submission`). The rules
and states are in :mod:`gateway.outbound.flow_rules`.

Each flow, in ONE transaction with the original's row locked (two flows on one document are
checked one after the other):

1. **idempotency**: the ``Idempotency-Key`` (default: the flow, the document and the request's
   digest, so that the same request twice is one flow) seen before answers the first result;
2. **checks**: the document is the caller's (else 404 ``OUTBOUND_NOT_FOUND``) and in a state a
   flow may start from (else 409, :func:`gateway.outbound.flow_rules.refusal`);
3. a revoke or update is stored as a **flow row** (a ``documents`` row, direction
   ``outbound``, ``original_id`` = the original, ``bussiness_doc_type`` 1/2, its package and
   files) with one copy per receiver through the sending path of every outbound document
   (:mod:`gateway.outbound.sending`: exactly once, reconciled by hash); its outbox rows carry
   the ORIGINAL's id, so they are sent after anything of the original still queued;
   a take back is a status ``13`` per receiver (``status_events`` row and outbox rows);
4. the original's state and timeline (``outbound.revoke`` …, naming the flow row, receivers,
   reason, staff) and an audit entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway import edxml
from gateway.api.errors import ApiError, Conflict, NotFound
from gateway.business.statuses import DocumentRef, status_message
from gateway.config import Settings
from gateway.db import audit
from gateway.db.outbox import OutboxMessage, axis_destination, enqueue
from gateway.db.timeline import Timeline
from gateway.outbound import store
from gateway.outbound.flow_rules import (
    EVENT,
    STATE_AFTER,
    FlowBody,
    OutboundFlow,
    UpdateMetadata,
    refusal,
)
from gateway.outbound.submission import Submissions, Upload

_ORIGINAL = """
SELECT id, sender_code, sender_name, code_number, code_notation, promulgation_date,
       edxml_document_id, correlation_id, axis, state, take_back, edxml, signature_verdict
FROM documents WHERE id = $1 AND direction = 'outbound' AND original_id IS NULL
FOR UPDATE
"""

#: The receivers a flow goes to: those of the latest update, else the original's sent copies.
_RECEIVERS = """
SELECT coalesce(
    (SELECT ARRAY(SELECT jsonb_array_elements_text(detail->'receivers'))
     FROM document_events WHERE document_id = $1 AND event = 'outbound.update'
     ORDER BY id DESC LIMIT 1),
    ARRAY(SELECT receiver_code FROM outbound_sends WHERE document_id = $1 AND state = 'SENT'
          ORDER BY created_at, receiver_code))
"""

_LINK = """
UPDATE documents SET original_id = $2, bussiness_doc_type = $3 WHERE id = $1
"""

_STATUS = """
INSERT INTO status_events (document_id, direction, agency_code, status_code, description, staff,
                           occurred_at, dedup_key)
VALUES ($1, 'outbound', $2, '13', $3, $4, $5, $6)
"""

def _not_found(doc_id: uuid.UUID) -> NotFound:
    return NotFound(f"no outbound document {doc_id}", code="OUTBOUND_NOT_FOUND")


def _digest(kind: OutboundFlow, doc_id: uuid.UUID, body: Any, files: list[Upload]) -> str:
    h = hashlib.sha256(f"{kind.value}\x00{doc_id}\x00".encode())
    h.update(json.dumps(body.model_dump(mode="json"), sort_keys=True,
                        ensure_ascii=False).encode())
    for f in files:
        h.update(b"\x00" + f.name.encode("utf-8", "replace") + hashlib.sha256(f.data).digest())
    return h.hexdigest()


def _staff_info(body: FlowBody) -> edxml.StaffInfo | None:
    s = body.staff
    if s is None or not s.edxml():
        return None
    return edxml.StaffInfo(department=s.department, staff=s.staff, email=s.email,
                           mobile=s.mobile)


class Flows:
    """The flows of outbound documents; collaborators as for :class:`Submissions` (whose
    checks of a main PDF and of receivers an update reuses)."""

    def __init__(self, settings: Settings, *, pool: asyncpg.Pool, submissions: Submissions,
                 wake_relays: Callable[[], None]) -> None:
        self.settings = settings
        self.pool = pool
        self.submissions = submissions
        self.wake_relays = wake_relays

    async def start(self, kind: OutboundFlow, doc_id: uuid.UUID, body: FlowBody,
                    files: list[Upload], *, agencies: list[str] | None, actor: str,
                    idempotency_key: str | None) -> tuple[int, dict[str, Any]]:
        """Start a revoke, update or take back on ``doc_id`` (see the module docstring);
        (HTTP status, body). ``agencies``: the caller's scope (None: operator)."""
        sender = await self.pool.fetchval(
            "SELECT sender_code FROM documents WHERE id = $1 AND direction = 'outbound'"
            " AND original_id IS NULL", doc_id)
        if sender is None or (agencies is not None and sender not in agencies):
            raise _not_found(doc_id)
        digest = _digest(kind, doc_id, body, files)
        key = idempotency_key or f"{kind.value}:{doc_id}:{digest}"
        if (first := await self.submissions.repeat(sender, key, digest)) is not None:
            return first
        main = None
        if files:  # replacement files of an update: checked like a submission's
            report, verdict = await self.submissions.check_main(files[0])
            main = (report, verdict)
        if isinstance(body, UpdateMetadata) and body.receivers_added:
            await self.submissions.check_receivers(body.receivers_added)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_ORIGINAL, doc_id)
            if row is None:
                raise _not_found(doc_id)
            if (code := refusal(row["state"])) is not None:
                raise Conflict(f"document is {row['state']}: no {kind.value} now", code=code,
                               details={"state": row["state"], "flow": kind.value})
            if kind == OutboundFlow.TAKE_BACK and row["take_back"] == "PENDING" and (
                    await _take_back_open(conn, doc_id)):
                raise Conflict("a take back is already waiting for the receivers' answers",
                               code="TAKE_BACK_PENDING", details={"state": row["state"]})
            receivers = list(await conn.fetchval(_RECEIVERS, doc_id))
            if kind == OutboundFlow.TAKE_BACK:
                response = await self._take_back(conn, row, body, receivers, actor)
            else:
                response = await self._package(conn, kind, row, body, files, main,
                                               receivers, actor)
            response["flow"] = kind.value
            if await conn.fetchval(
                    "INSERT INTO outbound_idempotency (agency_code, idempotency_key,"
                    " request_sha256, document_id, response) VALUES ($1, $2, $3, $4, $5)"
                    " ON CONFLICT DO NOTHING RETURNING 1", sender, key, digest, doc_id,
                    response) is None:
                raise Conflict(f"idempotency key {key!r} is being used by another request",
                               code="IDEMPOTENCY_KEY_REUSED")
        self.wake_relays()
        return 202, response

    # -- revoke and update ---------------------------------------------------------------------

    async def _package(self, conn: asyncpg.Connection, kind: OutboundFlow,
                       row: asyncpg.Record, body: FlowBody, uploads: list[Upload],
                       main: tuple[dict, str] | None, receivers: list[str],
                       actor: str) -> dict[str, Any]:
        original = edxml.parse(bytes(row["edxml"]))
        assert isinstance(original, edxml.EdocMessage)
        agency = row["sender_code"]
        now = datetime.now(UTC)
        trace = (*original.trace_headers, edxml.TraceHeader(agency, now))
        files = ([store.StoredFile(uuid.uuid4(), i, f"file-{i + 1}", u.name,
                                   "Văn bản chính" if i == 0 else "Phụ lục",
                                   "application/pdf" if u.is_pdf else u.content_type, u.data,
                                   hashlib.sha256(u.data).hexdigest())
                  for i, u in enumerate(uploads)] if uploads else
                 [store.StoredFile(uuid.uuid4(), i, a.content_id, a.name, a.description,
                                   a.content_type, a.data, a.sha256)
                  for i, a in enumerate(original.attachments)])
        attachments = tuple(edxml.Attachment(f.content_id, f.name, f.content_type, f.data,
                                             f.description) for f in files)
        added: list[str] = []
        sends = list(receivers)
        if kind == OutboundFlow.REVOKE:
            bussiness = edxml.Bussiness(edxml.BussinessDocType.REVOKE, original.document_id,
                                        body.reason, staff_info=_staff_info(body))
            after = receivers
        else:
            assert isinstance(body, UpdateMetadata)
            _check_update(body, receivers)
            added = list(body.receivers_added)
            after = [r for r in receivers if r not in body.receivers_removed] + added
            if not after:
                raise ApiError("an update may not remove every receiver",
                               code="UPDATE_NO_RECEIVER", status=422,
                               details={"field": "receivers_removed"})
            bussiness = edxml.Bussiness(
                edxml.BussinessDocType.UPDATE, original.document_id, body.reason,
                bussiness_document_info=edxml.BussinessDocumentInfo(
                    document_info=bool(uploads),
                    document_receiver=bool(added or body.receivers_removed),
                    receivers=tuple(edxml.Receiver(r, 1) for r in after)),
                staff_info=_staff_info(body))
        msg = dataclasses.replace(original, trace_headers=trace, bussiness=bussiness,
                                  attachments=attachments,
                                  to_organs=tuple(edxml.Organ(r) for r in after))
        report, verdict = main if main else ({}, row["signature_verdict"] or "unknown")
        flow_id = await self._flow_row(conn, row, msg, files, sends, int(bussiness
                                       .bussiness_doc_type), report, verdict, actor, kind)
        response: dict[str, Any] = {"id": str(row["id"]), "flow_document": str(flow_id),
                                    "receivers": sends}
        detail = {"flow_document": str(flow_id), "reason": body.reason,
                  "staff": body.staff.edxml() if body.staff else None, "actor": actor,
                  "sent_to": sends, "receivers": after}
        if added:  # they never had the document: they get it, updated, as a new document
            fresh = dataclasses.replace(msg, bussiness=None)
            copies = [dataclasses.replace(f, id=uuid.uuid4()) for f in files]
            added_id = await self._flow_row(conn, row, fresh, copies, added, 0, report,
                                            verdict, actor, kind)
            response.update(added=added, added_document=str(added_id))
            detail.update(added=added, added_document=str(added_id),
                          removed=list(body.receivers_removed))
        elif kind == OutboundFlow.UPDATE:
            detail["removed"] = list(body.receivers_removed)
        state = STATE_AFTER[kind]
        await conn.execute("UPDATE documents SET state = $2, updated_at = now() WHERE id = $1",
                           row["id"], state)
        timeline = Timeline(row["id"])
        timeline.add(EVENT[kind], agency, detail)
        await timeline.write(conn, audit.AuditEntry(actor, EVENT[kind], str(row["id"]),
                                                    {"flow_document": str(flow_id)}))
        response["state"] = state
        return response

    async def _flow_row(self, conn: asyncpg.Connection, row: asyncpg.Record,
                        msg: edxml.EdocMessage, files: list[store.StoredFile],
                        receivers: list[str], doc_type: int, report: dict, verdict: str,
                        actor: str, kind: OutboundFlow) -> uuid.UUID:
        """Store one flow package as its own outbound row with a copy per receiver."""
        package = edxml.build(msg)
        sha = hashlib.sha256(package).hexdigest()
        flow_id = uuid.uuid4()
        copies = [store.Copy(uuid.uuid4(), r) for r in receivers]
        timeline = Timeline(flow_id)
        timeline.add("outbound.submitted", row["sender_code"], {
            "document_id": msg.document_id, "files": len(files), "actor": actor,
            "flow": kind.value, "original": str(row["id"]), "receivers": receivers})
        for c in copies:
            timeline.add("send.queued", c.receiver, {"send_id": str(c.id), "axis": row["axis"]})
        await store.store_flow_row(
            conn, doc_id=flow_id, original_id=row["id"], doc_type=doc_type,
            dedup_key=f"outbound-flow:{row['sender_code']}:{flow_id}", axis=row["axis"],
            msg=msg, sender_name=row["sender_name"], header=edxml.to_json(msg),
            package=package, package_sha256=sha, verdict=verdict, report=report, files=files,
            copies=copies, correlation_id=row["correlation_id"], timeline=timeline)
        return flow_id

    # -- take back -----------------------------------------------------------------------------

    async def _take_back(self, conn: asyncpg.Connection, row: asyncpg.Record, body: FlowBody,
                         receivers: list[str], actor: str) -> dict[str, Any]:
        """Status 13 (yêu cầu lấy lại) about the original, to each receiver."""
        agency = row["sender_code"]
        at = datetime.now(UTC)
        msg = status_message(DocumentRef.from_row(row), agency=edxml.Organ(
            agency, row["sender_name"]), code="13", description=body.reason,
            staff=_staff_info(body), at=at)
        package = edxml.build(msg)
        request_id = uuid.uuid4()
        staff = body.staff.edxml() if body.staff else None
        await conn.execute(_STATUS, row["id"], agency, body.reason, staff or None, at,
                           f"out:{row['id']}:{agency}:13:{request_id}")
        for receiver in receivers:
            await enqueue(conn, OutboxMessage(
                destination=axis_destination(row["axis"]), body=package,
                content_type="application/xml",
                headers={"message_type": "status", "to": [receiver]},
                correlation_id=row["correlation_id"], document_id=row["id"]))
        await conn.execute("UPDATE documents SET take_back = 'PENDING', updated_at = now()"
                           " WHERE id = $1", row["id"])
        timeline = Timeline(row["id"])
        timeline.add(EVENT[OutboundFlow.TAKE_BACK], agency, {
            "reason": body.reason, "staff": staff, "actor": actor, "sent_to": receivers,
            "receivers": receivers, "request": str(request_id)})
        await timeline.write(conn, audit.AuditEntry(actor, EVENT[OutboundFlow.TAKE_BACK],
                                                    str(row["id"]), {"receivers": receivers}))
        return {"id": str(row["id"]), "state": row["state"], "take_back": "PENDING",
                "receivers": receivers}


def _check_update(body: UpdateMetadata, receivers: list[str]) -> None:
    if (wrong := [r for r in body.receivers_removed if r not in receivers]):
        raise ApiError("receivers_removed names agencies that are not receivers: "
                       + ", ".join(wrong[:10]), code="RECEIVER_NOT_A_RECEIVER", status=422,
                       details={"field": "receivers_removed", "receivers": wrong[:100]})
    if (twice := [r for r in body.receivers_added if r in receivers]):
        raise ApiError("receivers_added names agencies that are receivers already: "
                       + ", ".join(twice[:10]), code="RECEIVER_ALREADY", status=422,
                       details={"field": "receivers_added", "receivers": twice[:100]})


__all__ = ["Flows"]


async def _take_back_open(conn, doc_id) -> bool:
    """Whether the latest take back still waits for an answer of some receiver: once every
    receiver answered (15 or 16) it is settled and another may be asked for."""
    from gateway.outbound.store import flows

    asked = [f for f in await flows(conn, doc_id) if f["kind"] == OutboundFlow.TAKE_BACK.value]
    return bool(asked) and asked[-1]["outcome"] == "PENDING"

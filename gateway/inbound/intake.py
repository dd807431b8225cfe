"""Intake of inbound documents: parse, check, verify, then store and route in one transaction.

The same steps serve every arrival (axis poller, push endpoint):

1. parse the edXML (hardened codec; off the event loop);
2. deduplicate on the package's identity (sender + ``DocumentId``; for revoke/update/replace
   also the action and its content) **and its content** (header without the trace hops and
   receivers, plus the attachments' SHA-256): the same content seen before stores nothing and
   answers as before; the same identity with other content is stored in state ``CONFLICT``
   for an operator, linked to the first and shown on both timelines — never answered with the
   other package's result (DocumentIds are predictable: a forgery must not pre-empt the
   genuine document, nor the genuine one take the forgery's answer);
3. keep only receivers this gateway serves; verify every PDF in the signing pool (intake lane:
   never behind API callers; every PDF under the pool's memory and time limits);
4. decide (:mod:`gateway.inbound.policy`): ``ROUTED`` (findings flagged), ``HELD`` for an
   operator, or ``REJECTED`` with a machine code and a Vietnamese reason — not addressed to us
   (``NOT_ADDRESSED_TO_US``), malformed or secret (the codec's ``EDXML_*``), and by policy an
   invalid signature, a PDF too complex to judge, an attachment that is not a readable PDF
   (``ATTACHMENT_UNREADABLE``), a seal of another agency than the sender, an indeterminate or
   missing signature, a sender without a configured seal certificate;
5. in ONE transaction (serialised per identity by an advisory lock, so that two packages of
   one identity arriving at once are told apart): the document, its attachments and signature
   reports, one delivery per served receiver with its queue message in the outbox (routed
   only), status 01 (and 02 when rejected; none for a conflict) to the sender in the outbox,
   timeline events and an audit entry.

Only after the commit may the caller acknowledge the axis: a crash before the commit makes the
axis deliver again (and step 2 makes that harmless).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg

from gateway import edxml
from gateway.business.flow_rules import FlowError, FlowRequest, OriginalMatch, flow_request
from gateway.business.statuses import (
    DocumentRef,
    describe_rejection,
    emit_status,
)
from gateway.db import audit
from gateway.edxml import BussinessDocType, EdocMessage, StatusCode, StatusMessage
from gateway.inbound import business
from gateway.inbound.policy import (
    Decision,
    SenderCheck,
    check_sender,
    decide,
    findings,
    organ_key,
)
from gateway.inbound.routing import Router, RoutingMaterial, load_material, signature_summary
from gateway.inbound.rules import (
    INLINE_PARSE_BYTES,
    REASONS_VI,
    RECEIVED_TEXT,
    Arrival,
    IntakeResult,
    PackageIdentity,
    bussiness_kind,
    digests_of,
    header_json,
    identify,
    salvage,
    sha256_hex,
)
from gateway.inbound.store import (
    DOCUMENT_WITH_PARTS,
    Timeline,
    add_deliveries,
    attachment_rows,
    columns,
)
from gateway.inbound.verification import DocumentVerdict, PdfJudge, is_pdf
from gateway.logs import correlation
from gateway.outbound.status_back import PROBLEMS, receiver_status

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.ops.metrics import Metrics
    from gateway.pki.revocation import LearnedCrlUrls

log = logging.getLogger(__name__)


class IntakeRace(Exception):
    """Another intake changed what owns a package's identity while this one stored it (a
    transaction rolled back under it): nothing was written; the package is taken in again
    (the axis offers it again; a push answers 503)."""

    code = "INTAKE_RACE"

class Intake:
    """Takes in one package at a time (see the module's steps).

    Its collaborators: the ``settings`` (served agencies, senders, intake policy, limits), the
    database ``pool``, the PDF ``judge``, the ``metrics``, the ``router`` that builds delivery
    messages, the CRL URLs it learns from verified signers (``learned_crl_urls``), which axis
    connection carries an agency's statuses (``status_axis(agency, arrival)``) and
    ``wake_relays()`` to send what it wrote to the outbox at once."""

    def __init__(self, settings: Settings, *, pool: asyncpg.Pool, judge: PdfJudge,
                 metrics: Metrics, router: Router, learned_crl_urls: LearnedCrlUrls,
                 status_axis: Callable[[str, str | None], str | None],
                 wake_relays: Callable[[], None]) -> None:
        self.pool = pool
        self.judge = judge
        self.metrics = metrics
        self.router = router
        self.learned_crl_urls = learned_crl_urls
        self.status_axis = status_axis
        self.wake_relays = wake_relays
        self.settings = settings
        self.served = {a.code: a for a in settings.agencies}
        self.limits = edxml.Limits(max_document_size=settings.max_document_bytes)
        self.bindings = {organ_key(b.agency): b for b in settings.senders}

    # -- entry point ----------------------------------------------------------------------
    async def take(self, raw: bytes, arrival: Arrival) -> IntakeResult:
        started = time.perf_counter()
        sha = sha256_hex(raw) if len(raw) <= INLINE_PARSE_BYTES \
            else await asyncio.to_thread(sha256_hex, raw)
        with correlation(None) as cid:
            try:
                # small packages parse in well under a millisecond: a thread hop costs more
                msg = edxml.parse(raw, self.limits) if len(raw) <= INLINE_PARSE_BYTES \
                    else await asyncio.to_thread(edxml.parse, raw, self.limits)
            except edxml.EdxmlError as exc:
                result = await self._reject_malformed(raw, sha, exc, arrival, cid)
            else:
                if isinstance(msg, StatusMessage):
                    result = await self._take_status(msg, cid)
                else:
                    result = await self._take_edoc(msg, raw, sha, arrival, cid)
            self.metrics.intake_seconds.observe(time.perf_counter() - started)
            log.info("intake", extra={"state": result.state, "duplicate": result.duplicate,
                                      "document": str(result.document_id),
                                      "reject_code": result.reject_code, "axis": arrival.axis,
                                      "axis_doc_id": arrival.axis_doc_id})
            return result

    async def _existing(self, conn: asyncpg.Connection, key: str) -> IntakeResult | None:
        """The stored package whose ``dedup_key`` is ``key`` (malformed packages)."""
        row = await conn.fetchrow(
            "SELECT id, state, reject_code, reject_reason, correlation_id FROM documents"
            " WHERE dedup_key = $1", key)
        return None if row is None else _result_of(row)

    async def _known(self, conn: asyncpg.Connection,
                     ident: PackageIdentity) -> tuple[IntakeResult | None, uuid.UUID | None]:
        """``(seen, conflicting)``: this very package stored before (a duplicate: answer as
        before), else the first stored package that owns this identity with other content (the
        new one conflicts with it), else ``(None, None)``. Rows stored before content was
        recorded count as the same content; rejected packages own no identity."""
        keys = ident.stored_keys()
        rows = await conn.fetch(
            "SELECT id, state, reject_code, reject_reason, correlation_id, dedup_key,"
            " identity_key, content_sha256 FROM documents"
            " WHERE (identity_key = $1 AND conflicts_with IS NULL) OR dedup_key = ANY($2::text[])"
            " ORDER BY created_at, id",
            ident.identity_key, keys)
        for row in rows:
            if row["dedup_key"] in keys or row["content_sha256"] is None:
                return _result_of(row), None
        return None, (rows[0]["id"] if rows else None)

    # -- document messages ----------------------------------------------------------------
    async def _take_edoc(self, msg: EdocMessage, raw: bytes, sha: str, arrival: Arrival,
                         cid: str) -> IntakeResult:
        header = header_json(msg)
        size = sum(a.size for a in msg.attachments)
        digests = digests_of(msg) if size <= INLINE_PARSE_BYTES \
            else await asyncio.to_thread(digests_of, msg)
        ident = identify(msg, header, digests)
        receivers = list(dict.fromkeys(o.organ_id for o in msg.to_organs
                                       if o.organ_id in self.served))
        async with self.pool.acquire() as conn:
            seen, owner = await self._known(conn, ident)
        if seen is not None:
            return await self._extend(seen, receivers, header)
        try:
            return await self._store_edoc(msg, raw, sha, arrival, cid, header, digests, ident,
                                          receivers, owner)
        except asyncpg.DataError as exc:  # a value the database cannot hold: never storable
            return await self._reject_malformed(raw, sha, edxml.EdxmlValueError(
                "EDXML_VALUE_OUT_OF_RANGE", f"a value does not fit: {exc}"), arrival, cid)

    async def _judge(self, msg: EdocMessage,
                     receivers: list[str]) -> tuple[DocumentVerdict, SenderCheck, Decision]:
        """Verify the PDFs and apply the intake policy."""
        if not receivers:
            reason = REASONS_VI["NOT_ADDRESSED_TO_US"]
            return (DocumentVerdict("unsigned"), SenderCheck("no_seal"),
                    Decision("REJECTED", "NOT_ADDRESSED_TO_US", reason))
        pdfs = {i: a.data for i, a in enumerate(msg.attachments)
                if is_pdf(a.name, a.content_type, a.data)}
        verdict = await self.judge.judge(pdfs)
        for file in verdict.files.values():
            self.metrics.signatures.labels(file.verdict).inc()
        reports = [f.report for f in verdict.files.values()]
        self.learned_crl_urls.from_reports(reports)
        sender = check_sender(msg.from_organ.organ_id, reports, self.bindings)
        names = [msg.attachments[o].name for o in verdict.files]
        decision = decide(findings(verdict.verdict, reports, sender, names=names),
                          self.settings.intake, detail=verdict.summary_vi)
        return verdict, sender, decision

    async def _store_edoc(self, msg: EdocMessage, raw: bytes, sha: str, arrival: Arrival,
                          cid: str, header: dict, digests: list[str], ident: PackageIdentity,
                          receivers: list[str], owner: uuid.UUID | None) -> IntakeResult:
        verdict, sender, decision = await self._judge(msg, receivers)
        flow = None
        if bussiness_kind(msg) != BussinessDocType.NEW and decision.state in ("ROUTED", "HELD"):
            decision, flow = await self._plan_flow(msg, decision)
        doc_id = uuid.uuid4()
        attachments = attachment_rows(msg, digests)
        seen = conflicting = None
        if owner is not None and decision.state == "REJECTED" \
                and decision.code != "NOT_ADDRESSED_TO_US":
            # a damaged or forged copy of a document already taken in: the sender is not told
            # that "its" document was refused; an operator sees both
            decision = Decision("CONFLICT", "DOCUMENT_ID_CONFLICT",
                                REASONS_VI["DOCUMENT_ID_CONFLICT"], decision.flags)
        async with self.pool.acquire() as conn, conn.transaction():
            # the common path is one statement; it writes nothing when the same package is
            # stored already or another package owns the identity (a concurrent insert of
            # either is waited for), and only then is what is stored looked at
            conflicting = owner if decision.state == "CONFLICT" else None
            inserted = await self._insert_document(conn, doc_id, ident, msg, header, raw, sha,
                                                   arrival, cid, verdict, decision,
                                                   attachments, conflicting)
            if not inserted:
                seen, conflicting = await self._known(conn, ident)
                if seen is None:
                    if conflicting is None:  # the owner went away (rolled back): try later
                        raise IntakeRace(f"identity {ident.identity_key} changed hands")
                    decision = Decision("CONFLICT", "DOCUMENT_ID_CONFLICT",
                                        REASONS_VI["DOCUMENT_ID_CONFLICT"], decision.flags)
                    inserted = await self._insert_document(
                        conn, doc_id, ident, msg, header, raw, sha, arrival, cid, verdict,
                        decision, attachments, conflicting)
                    if not inserted:
                        raise IntakeRace(f"package {ident.dedup_key} stored meanwhile")
            if inserted:
                await self._write_parts(conn, doc_id, msg, header, attachments, sha, arrival,
                                        cid, receivers, verdict, sender, decision, conflicting,
                                        flow)
        if seen is not None:
            return await self._extend(seen, receivers, header)
        self.metrics.documents_received.labels(decision.state).inc()
        if decision.state == "CONFLICT":
            self.metrics.intake_conflicts.inc()
            log.warning("package conflicts with a stored one", extra={
                "document": str(doc_id), "conflicts_with": str(conflicting),
                "edxml_document_id": msg.document_id, "sender": msg.from_organ.organ_id})
        self.wake_relays()
        return IntakeResult(doc_id, decision.state, False, cid, decision.code, decision.reason)

    async def _write_parts(self, conn, doc_id, msg: EdocMessage, header, attachments, sha,
                           arrival: Arrival, cid, receivers, verdict: DocumentVerdict,
                           sender: SenderCheck, decision: Decision,
                           conflicting: uuid.UUID | None,
                           flow: tuple[FlowRequest, OriginalMatch] | None = None) -> None:
        """Everything else of the intake transaction, after the document and its parts (a
        routed revoke/update/replace is linked to its originals and routed as a typed
        message: :func:`gateway.inbound.business.apply_flow`)."""
        ref = DocumentRef(doc_id, msg.from_organ.organ_id, msg.code.code_number,
                          msg.code.code_notation, msg.promulgation_info.promulgation_date,
                          msg.document_id, cid, arrival.axis)
        timeline = Timeline(doc_id)
        timeline.add("received", None, {
            "axis": arrival.axis, "axis_doc_id": arrival.axis_doc_id, "sha256": sha,
            "receivers": [o.organ_id for o in msg.to_organs]})
        if verdict.files:
            timeline.add("verified", None, {"verdict": verdict.verdict,
                                            "sender_check": sender.to_json(),
                                            "flags": list(decision.flags)})
        state = decision.state
        if state == "ROUTED":
            material = RoutingMaterial(
                doc_id, msg.document_id, cid, int(bussiness_kind(msg)), header,
                signature_summary(verdict, attachments), attachments)
            if flow is not None:
                await business.apply_flow(conn, self.router, material, *flow, receivers,
                                          timeline, actor=_actor(arrival))
            else:
                await self._route(conn, material, receivers, timeline)
            for code in receivers:
                await self._status(conn, ref, code, "01", RECEIVED_TEXT)
        elif state == "HELD":
            timeline.add("held", None, {"code": decision.code, "reason": decision.reason})
            for code in receivers:
                await self._status(conn, ref, code, "01", RECEIVED_TEXT)
        elif state == "CONFLICT":
            # no status to the sender: which of the two packages is genuine is not known
            detail = {"code": decision.code, "document_id": msg.document_id,
                      "sender": msg.from_organ.organ_id}
            timeline.add("conflict", None, {**detail, "with": str(conflicting)})
            await conn.execute(
                "INSERT INTO document_events (document_id, event, agency_code, detail)"
                " VALUES ($1, 'conflict', NULL, $2)", conflicting,
                {**detail, "with": str(doc_id)})
        else:
            timeline.add("rejected", None, {"code": decision.code, "reason": decision.reason})
            for code in receivers or [arrival.receiver_hint or self.settings.organ_id]:
                if receivers:
                    await self._status(conn, ref, code, "01", RECEIVED_TEXT)
                await self._status(conn, ref, code, "02",
                                   describe_rejection(decision.code, decision.reason))
        await timeline.write(conn, audit.AuditEntry(
            _actor(arrival), "document.received",
            str(doc_id), {"edxml_document_id": msg.document_id, "sha256": sha,
                          "state": state, "reject_code": decision.code,
                          "conflicts_with": str(conflicting) if conflicting else None}))

    async def _plan_flow(self, msg: EdocMessage, decision: Decision
                         ) -> tuple[Decision, tuple[FlowRequest, OriginalMatch] | None]:
        """A revoke/update/replace package: the originals it names, matched among the sender's
        own documents (:mod:`gateway.business.flow_rules`). Nothing linkable: refused
        (``BUSINESS_INVALID``, ``BUSINESS_NOT_ORIGINAL_SENDER``: status 02) or kept for an
        operator (``BUSINESS_ORIGINAL_UNKNOWN``: ``HELD``)."""
        try:
            request = flow_request(msg.bussiness)
        except FlowError as exc:
            return Decision("REJECTED", exc.code, exc.reason, decision.flags), None
        assert request is not None
        async with self.pool.acquire() as conn:
            found = await business.match(conn, msg.from_organ.organ_id, request.originals)
        problem = found.problem()
        if problem == "BUSINESS_NOT_ORIGINAL_SENDER":
            return Decision("REJECTED", problem, FlowError(problem).reason, decision.flags), None
        if problem is not None:
            return Decision("HELD", problem, FlowError(problem).reason, decision.flags), None
        return decision, (request, found)

    async def _insert_document(self, conn, doc_id, ident: PackageIdentity, msg: EdocMessage,
                               header, raw, sha, arrival, cid, verdict: DocumentVerdict,
                               decision: Decision, attachments: list[dict],
                               conflicting: uuid.UUID | None) -> bool:
        """The document, its attachments and their signature reports, in one statement;
        False (nothing written) when a concurrent intake stored the same package first."""
        kind = bussiness_kind(msg)
        reports = [(uuid.uuid4(), attachments[o]["id"], f.verdict, f.summary_vi, f.report)
                   for o, f in verdict.files.items()]
        owns_identity = decision.state != "REJECTED"
        return await conn.fetchval(
            DOCUMENT_WITH_PARTS,
            doc_id, _key_of(ident, decision), msg.document_id, arrival.axis, arrival.axis_doc_id,
            msg.from_organ.organ_id, msg.from_organ.organ_name, msg.code.code_number,
            msg.code.code_notation, msg.subject, msg.document_type.type_name,
            msg.promulgation_info.promulgation_date, msg.due_date,
            msg.other_info.priority if msg.other_info else None, int(kind),
            decision.state, decision.code, decision.reason, verdict.verdict, cid, header, sha, raw,
            *columns(attachments, ("id", "ordinal", "content_id", "name", "description",
                                    "content_type", "size", "sha256", "data")),
            *columns(reports, range(5)),
            ident.identity_key if owns_identity else None, ident.content_sha256, conflicting,
        ) or False

    async def _route(self, conn, m: RoutingMaterial, receivers: list[str],
                     timeline: Timeline) -> None:
        """One delivery per receiver with its queue message in the outbox."""
        for agency, delivery_id in await add_deliveries(conn, self.router, m, receivers):
            timeline.add("routed", agency, {"delivery_id": str(delivery_id)})

    async def _status(self, conn, ref: DocumentRef, agency: str, code: str, text: str) -> None:
        served = self.served.get(agency)
        axis = self.status_axis(agency, ref.axis)
        await emit_status(conn, ref, agency_code=agency,
                          agency_name=served.name if served else None, code=code,
                          description=text, axis=axis)

    async def _extend(self, seen: IntakeResult, receivers: list[str],
                      header: dict) -> IntakeResult:
        """A package seen before: nothing new, unless it names a served agency the first copy
        did not (a sender may send one package per receiver with the same DocumentId). A routed
        document gets that agency's delivery and 01 in one transaction, as if it had come first;
        a held or conflicting one records the agency among its receivers (acknowledged with 01
        when held), so that the operator's decision reaches it too."""
        if seen.state not in ("ROUTED", "HELD", "CONFLICT") or not receivers \
                or seen.document_id is None:
            return seen
        doc_id = seen.document_id
        async with self.pool.acquire() as conn, conn.transaction():
            doc = await conn.fetchrow(
                "SELECT id, state, sender_code, code_number, code_notation, promulgation_date,"
                " edxml_document_id, correlation_id, axis, header FROM documents WHERE id = $1"
                " FOR UPDATE", doc_id)
            if doc["state"] in ("HELD", "CONFLICT"):
                named = {o.get("organ_id") for o in doc["header"].get("to_organs") or ()}
                have = named & set(self.served)
            else:
                have = {r["agency_code"] for r in await conn.fetch(
                    "SELECT agency_code FROM deliveries WHERE document_id = $1", doc_id)}
            missing = [r for r in receivers if r not in have]
            if not missing:
                return seen
            timeline = Timeline(doc_id)
            ref = DocumentRef.from_row(doc)
            if doc["state"] in ("HELD", "CONFLICT"):
                added = [o for o in header.get("to_organs") or () if o.get("organ_id") in missing]
                await conn.execute(
                    "UPDATE documents SET header = jsonb_set(header, '{to_organs}',"
                    " coalesce(header->'to_organs', '[]'::jsonb) || $2::jsonb),"
                    " updated_at = now() WHERE id = $1", doc_id, added)
            else:
                await self._route(conn, await load_material(conn, doc_id), missing, timeline)
            if doc["state"] != "CONFLICT":  # a conflict is acknowledged when decided
                for code in missing:
                    await self._status(conn, ref, code, "01", RECEIVED_TEXT)
            timeline.add("receivers.added", None, {"agencies": missing})
            await timeline.write(conn)
        self.wake_relays()
        return seen

    # -- malformed packages -----------------------------------------------------------------
    async def _reject_malformed(self, raw: bytes, sha: str, exc: edxml.EdxmlError,
                                arrival: Arrival, cid: str) -> IntakeResult:
        from gateway.business.statuses import StatusError
        from gateway.inbound.rules import malformed_reason  # (imports kept in this method)

        key = f"inbound-raw:{sha}"
        async with self.pool.acquire() as conn:
            if (seen := await self._existing(conn, key)) is not None:
                return seen
        facts = await asyncio.to_thread(salvage, raw, exc)
        reason = malformed_reason(exc)
        detail = {"code": exc.code, "message": exc.message, "path": exc.path}
        doc_id = uuid.uuid4()
        sender = facts.get("sender") or arrival.sender_hint
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO documents (id, direction, dedup_key, edxml_document_id, axis,"
                " axis_doc_id, sender_code, subject, state, reject_code, reject_reason,"
                " correlation_id, header, edxml_sha256, edxml) VALUES ($1, 'inbound', $2, $3,"
                " $4, $5, $6, $7, 'REJECTED', $8, $9, $10, $11, $12, $13)"
                " ON CONFLICT (dedup_key) DO NOTHING RETURNING true",
                doc_id, key, facts.get("document_id") or None, arrival.axis,
                arrival.axis_doc_id, sender, facts.get("subject") or None, exc.code, reason,
                cid, {"error": detail}, sha, raw)
            if not inserted:
                seen = await self._existing(conn, key)
                assert seen is not None
                return seen
            timeline = Timeline(doc_id)
            timeline.add("received", None, {"axis": arrival.axis,
                                            "axis_doc_id": arrival.axis_doc_id, "sha256": sha})
            timeline.add("rejected", None, {"code": exc.code, "reason": reason,
                                            "path": exc.path})
            await timeline.write(conn)
            if sender and facts.get("document_id"):  # the rules: an invalid document gets a 02
                ref = DocumentRef(doc_id, sender, facts.get("code_number") or None,
                                  facts.get("code_notation") or None, None,
                                  facts["document_id"], cid, arrival.axis)
                served = [r for r in facts.get("receivers", []) if r in self.served]
                agency = arrival.receiver_hint or next(iter(served), self.settings.organ_id)
                try:
                    await self._status(conn, ref, agency, "02",
                                       describe_rejection(exc.code, reason))
                except StatusError as err:  # never let the answer block the rejection
                    timeline.add("status.not_sent", agency, {"status_code": "02",
                                                             "reason": err.code})
                    await timeline.write(conn)
            await audit.append(conn, actor=f"axis:{arrival.axis}" if arrival.axis else "push",
                               action="document.rejected", subject=str(doc_id),
                               detail={"sha256": sha, **detail})
        self.metrics.documents_received.labels("REJECTED").inc()
        self.wake_relays()
        return IntakeResult(doc_id, "REJECTED", False, cid, exc.code, reason,
                            unprocessable=True)

    # -- status messages ----------------------------------------------------------------------
    async def _take_status(self, msg: StatusMessage, cid: str) -> IntakeResult:
        if msg.status_code == StatusCode.TAKE_BACK_REQUEST:  # 13: a business flow
            async with self.pool.acquire() as conn, conn.transaction():
                doc_id, problem, fresh = await business.take_back_request(conn, self.router, msg)
            if fresh and problem is None:
                self.wake_relays()
            if problem is not None:
                log.warning("take-back request kept for an operator", extra={
                    "reject_code": problem, "sender": msg.from_organ.organ_id})
            return IntakeResult(doc_id, "STATUS_RECORDED", not fresh, cid, problem,
                                FlowError(problem).reason if problem else None)
        # a receiver's status about our outbound document: on its copy, forwarded once to the
        # sending eOffice (gateway.outbound.status_back); anything else kept for an operator
        async with self.pool.acquire() as conn, conn.transaction():
            back = await receiver_status(conn, self.router, msg)
        if back.delivery_id is not None:
            self.wake_relays()
        if back.problem is not None and back.fresh:
            log.warning("status message kept unmatched", extra={
                "reject_code": back.problem, "sender": msg.from_organ.organ_id})
        return IntakeResult(back.document_id, "STATUS_RECORDED", not back.fresh, cid,
                            back.problem, PROBLEMS.get(back.problem or ""))


def _actor(arrival: Arrival) -> str:
    return f"axis:{arrival.axis}" if arrival.axis else "push"


def _key_of(ident: PackageIdentity, decision: Decision) -> str:
    """The ``dedup_key`` a package is stored under, by what intake decided."""
    if decision.state != "REJECTED":
        return ident.dedup_key
    if decision.code == "NOT_ADDRESSED_TO_US":
        return ident.unaddressed_key
    return ident.rejected_key


def _result_of(row) -> IntakeResult:
    """The answer a stored package gave, for a repeat of it."""
    state = row["state"] if row["state"] in ("REJECTED", "HELD", "CONFLICT") else "ROUTED"
    return IntakeResult(row["id"], state, True, row["correlation_id"], row["reject_code"],
                        row["reject_reason"],
                        unprocessable=(row["reject_code"] or "").startswith("EDXML_"))

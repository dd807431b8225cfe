"""Submission of an outbound document (issue 13, "Send"): check, seal, build, store, queue.

:meth:`Submissions.submit` takes what ``POST /v1/outbound`` read (the metadata and the files,
the main PDF first) and, in order:

1. **idempotency**: the sending agency's ``Idempotency-Key`` (or ``document-id:`` and the
   DocumentId when none is given) seen before with the same request (digest of the metadata
   and the files) answers the first submission's result; with another request it is 409
   ``IDEMPOTENCY_KEY_REUSED``. Nothing else is done for a repeat;
2. **checks**: a secret document is refused (``DOCUMENT_SECRET``: ``secret_level`` or a
   secrecy mark in ``sphere_of_promulgation``, :mod:`gateway.edxml.secrecy`); receivers are
   checked against the agency directory when one is synced (a table ``agencies`` holding
   agencies this gateway does not serve): an unknown one is 422 ``RECEIVER_UNKNOWN``; a code
   of an unusual shape is a warning; the main file must be a PDF (``MAIN_FILE_NOT_PDF``)
   carrying a **valid competent person's signature** and no invalid one (verified in the
   signing pool, API lane): ``COMPETENT_SIGNATURE_MISSING``, ``SIGNATURE_INVALID``,
   ``COMPETENT_SIGNATURE_NOT_VALID`` (indeterminate: untrusted, no revocation data);
3. **sealing** (``seal`` in the metadata, else the agency's ``seal`` setting): the agency seal
   with the agency's ``seal_key`` on the main PDF, its number and date filled in the Decree 30
   layout (``SignRequest`` role ``agency``); the attachment signature (role ``attachment``,
   with the number) on every other PDF; in the signing pool;
4. **building** the edXML (:func:`gateway.edxml.build`; DocumentId
   ``<from>,<yyyy/MM/dd>,<number>/<notation>`` unless given);
5. **storing**, in ONE transaction: the document (QUEUED), its files, the main PDF's
   signature report, one copy per receiver with its outbox row (``axis:<connection>``), the
   idempotency record, timeline events and an audit entry. A DocumentId the agency already
   sent under another key is 409 ``DOCUMENT_ID_EXISTS``.

Every refusal is an :class:`gateway.api.errors.ApiError` with a machine-readable code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway import edxml
from gateway.api.errors import ApiError, Conflict
from gateway.config import ServedAgency, Settings
from gateway.db import audit
from gateway.db.timeline import Timeline
from gateway.edxml.secrecy import marker_is_secret, text_is_secret
from gateway.logs import correlation_id as current_correlation
from gateway.outbound import store
from gateway.outbound.metadata import OutboundMetadata
from gateway.outbound.states import OutboundState, SendState
from signing.keys import SignerRole
from signing.sign import SignRequest

log = logging.getLogger(__name__)

#: Verifies a PDF; returns its validation report as JSON (``ValidationReport.to_json``).
Verify = Callable[[bytes], Awaitable[dict[str, Any]]]
#: Signs a PDF with a key alias; returns the signed bytes.
Seal = Callable[[bytes, SignRequest, str], Awaitable[bytes]]
PDF_TYPE = "application/pdf"


@dataclass(frozen=True)
class Upload:
    """One file part as received (the main PDF first)."""

    name: str
    content_type: str
    data: bytes

    @property
    def is_pdf(self) -> bool:
        return b"%PDF-" in self.data[:1024]


@dataclass(frozen=True)
class Replaces:
    """What a replacement names: the original outbound document (locked and checked when the
    replacement is stored), the ``Bussiness`` block (type 3, ``ReplacementInfoList``) and the
    reason for its timeline."""

    original: uuid.UUID
    bussiness: edxml.Bussiness
    reason: str
    staff: dict[str, str] | None = None


@dataclass(frozen=True)
class Request:
    """A submission as ``POST /v1/outbound`` read it."""

    meta: OutboundMetadata
    files: list[Upload]
    idempotency_key: str | None
    actor: str
    #: A replacement (``POST /v1/outbound/{id}/replace``): the original it replaces.
    replaces: Replaces | None = None

    def digest(self) -> str:
        """SHA-256 of what makes two requests the same: the metadata as given (canonical
        JSON) and each file's name, type and SHA-256, in order."""
        h = hashlib.sha256(json.dumps(self.meta.model_dump(mode="json", by_alias=True),
                                      sort_keys=True, ensure_ascii=False).encode())
        for f in self.files:
            h.update(b"\x00" + f.name.encode("utf-8", "replace") + b"\x00"
                     + f.content_type.encode("utf-8", "replace") + b"\x00"
                     + hashlib.sha256(f.data).digest())
        return h.hexdigest()


def _refuse(code: str, message: str, status: int = 422, **details: Any) -> ApiError:
    return ApiError(message, code=code, status=status, details=details or None)


class Submissions:
    """The submission step of the outbound flow; its collaborators: the settings (served
    agencies and their seal keys), the database ``pool``, ``verify`` and ``seal`` (the signing
    pool), ``axis_for(agency)`` (the axis connection carrying the agency's messages) and
    ``wake_relays()``."""

    def __init__(self, settings: Settings, *, pool: asyncpg.Pool, verify: Verify,
                 seal: Seal, axis_for: Callable[[str], str | None],
                 wake_relays: Callable[[], None]) -> None:
        self.settings = settings
        self.pool = pool
        self.verify = verify
        self.seal = seal
        self.axis_for = axis_for
        self.wake_relays = wake_relays

    def served(self, code: str) -> ServedAgency:
        for agency in self.settings.agencies:
            if agency.code == code:
                return agency
        raise _refuse("SENDER_NOT_SERVED", f"agency {code} is not served by this gateway",
                      field="from")

    async def submit(self, req: Request) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): 202 and the new document, or the first result of a repeat."""
        meta = req.meta
        agency = self.served(meta.sender)
        document_id = meta.document_id or meta.default_document_id()
        key = req.idempotency_key or f"document-id:{document_id}"
        digest = req.digest()
        if (first := await self.repeat(agency.code, key, digest)) is not None:
            return first
        axis = self.axis_for(agency.code)
        if axis is None:
            raise _refuse("SENDER_NO_AXIS", f"no axis connection carries agency {agency.code}"
                          " (set its axis)", field="from")
        _check_secrecy(meta)
        warnings = await self.check_receivers(meta.to, meta.unusual_receivers())
        report, verdict = await self.check_main(req.files[0])
        files, sealed = await self._seal(agency, meta, req.files)
        msg = _message(meta, agency, document_id, files)
        if req.replaces is not None:
            msg = dataclasses.replace(msg, bussiness=req.replaces.bussiness)
        try:
            package = edxml.build(msg) if sum(len(f.data) for f in files) < 1 << 20 \
                else await asyncio.to_thread(edxml.build, msg)
        except edxml.EdxmlError as exc:
            raise _refuse(exc.code, exc.message, path=getattr(exc, "path", None)) from None
        return await self._store(req, agency, axis, msg, package, files, report, verdict,
                                 sealed, warnings, (agency.code, key, digest))

    async def repeat(self, agency: str, key: str, digest: str) -> tuple[int, dict] | None:
        row = await store.replayed(self.pool, agency, key)
        if row is None:
            return None
        if row["request_sha256"] != digest:
            raise Conflict(f"idempotency key {key!r} was used for another request",
                           code="IDEMPOTENCY_KEY_REUSED",
                           details={"document": row["response"].get("id")})
        return 202, {**row["response"], "replayed": True}

    async def check_receivers(self, receivers: list[str], unusual: list[str] = (),
                              field: str = "to") -> list[dict[str, str]]:
        """Refuse receivers unknown to the synced agency directory (``RECEIVER_UNKNOWN``);
        warnings for codes of an ``unusual`` shape."""
        async with self.pool.acquire() as conn:
            synced = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM agencies WHERE NOT served)")
            known = {r["code"] for r in await conn.fetch(
                "SELECT code FROM agencies WHERE code = ANY($1)", receivers)}
        if synced and (unknown := [r for r in receivers if r not in known]):
            raise _refuse("RECEIVER_UNKNOWN", "receivers not in the agency directory: "
                          + ", ".join(unknown[:10]), receivers=unknown[:100], field=field)
        return [{"code": "RECEIVER_CODE_UNUSUAL", "receiver": r,
                 "message": "not of the LLL.LL.LL.Xnn shape of an agency code"}
                for r in unusual]

    async def check_main(self, main: Upload) -> tuple[dict[str, Any], str]:
        """The main PDF's report and verdict; refused unless a competent person's signature
        is valid and no signature is invalid."""
        if not main.is_pdf:
            raise _refuse("MAIN_FILE_NOT_PDF", "the first file must be the document's PDF",
                          file=main.name)
        report = await self.verify(main.data)
        sigs = [s for s in report.get("signatures", []) if s.get("kind") == "signature"]
        bad = [s for s in sigs if s.get("verdict") == "invalid"]
        if report.get("error") or (report.get("verdict") == "invalid" and not sigs):
            err = report.get("error") or {}
            raise _refuse(err.get("code", "PDF_UNREADABLE"), "the main PDF cannot be read",
                          file=main.name)
        if bad:
            raise _refuse("SIGNATURE_INVALID", f"signature {bad[0].get('field')} of the main"
                          " PDF is invalid", file=main.name, field=bad[0].get("field"),
                          reason=bad[0].get("reason"))
        competent = [s for s in sigs if s.get("role") == "competent_person"]
        if not competent:
            raise _refuse("COMPETENT_SIGNATURE_MISSING", "the main PDF carries no signature of"
                          " the competent person", file=main.name)
        if not any(s.get("verdict") == "valid" for s in competent):
            s = competent[0]
            raise _refuse("COMPETENT_SIGNATURE_NOT_VALID", "the competent person's signature"
                          f" is {s.get('verdict')} ({s.get('reason')})", file=main.name,
                          field=s.get("field"), verdict=s.get("verdict"),
                          reason=s.get("reason"))
        return report, str(report.get("verdict"))

    async def _seal(self, agency: ServedAgency, meta: OutboundMetadata,
                    uploads: list[Upload]) -> tuple[list[store.StoredFile], bool]:
        wanted = agency.seal if meta.seal is None else meta.seal
        if wanted and not agency.seal_key:
            raise _refuse("SEAL_NOT_CONFIGURED", f"agency {agency.code} has no seal_key",
                          field="seal")
        d = meta.promulgation_date
        datas = [u.data for u in uploads]
        if wanted:
            assert agency.seal_key is not None
            main = SignRequest(role=SignerRole.AGENCY, document_number=meta.code,
                               document_date=f"ngày {d.day:02d} tháng {d.month:02d} năm {d.year}",
                               reason="Ban hành văn bản", location=meta.promulgation_place)
            jobs = [self.seal(uploads[0].data, main, agency.seal_key)]
            others = [i for i, u in enumerate(uploads[1:], 1) if u.is_pdf]
            jobs += [self.seal(uploads[i].data, SignRequest(
                role=SignerRole.ATTACHMENT, document_number=meta.code), agency.seal_key)
                for i in others]
            signed = await asyncio.gather(*jobs)
            datas[0] = signed[0]
            for i, data in zip(others, signed[1:], strict=True):
                datas[i] = data
        files = [store.StoredFile(
            id=uuid.uuid4(), ordinal=i, content_id=f"file-{i + 1}", name=u.name,
            description="Văn bản chính" if i == 0 else "Phụ lục",
            content_type=PDF_TYPE if u.is_pdf else u.content_type, data=data,
            sha256=hashlib.sha256(data).hexdigest())
            for i, (u, data) in enumerate(zip(uploads, datas, strict=True))]
        return files, bool(wanted)

    async def _store(self, req: Request, agency: ServedAgency, axis: str,
                     msg: edxml.EdocMessage, package: bytes, files: list[store.StoredFile],
                     report: dict, verdict: str, sealed: bool, warnings: list[dict],
                     idempotency: tuple[str, str, str]) -> tuple[int, dict[str, Any]]:
        doc_id = uuid.uuid4()
        copies = [store.Copy(uuid.uuid4(), r) for r in req.meta.to]
        response = {
            "id": str(doc_id), "document_id": msg.document_id, "state": OutboundState.QUEUED,
            "sealed": sealed, "receivers": [{"code": c.receiver, "send_id": str(c.id),
                                             "state": SendState.QUEUED} for c in copies],
            "warnings": warnings}
        timeline = Timeline(doc_id)
        timeline.add("outbound.submitted", agency.code, {
            "document_id": msg.document_id, "files": len(files), "actor": req.actor,
            "verdict": verdict, "receivers": [c.receiver for c in copies]})
        if sealed:
            timeline.add("outbound.sealed", agency.code, {"key": agency.seal_key})
        for c in copies:
            timeline.add("send.queued", c.receiver, {"send_id": str(c.id), "axis": axis})
        sha = hashlib.sha256(package).hexdigest()
        header = edxml.to_json(msg)
        cid = current_correlation.get() or str(doc_id)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                new = await store.store(
                    conn, doc_id=doc_id, dedup_key=f"outbound:{agency.code}:{msg.document_id}",
                    axis=axis, msg=msg, sender_name=agency.name or None, header=header,
                    package=package, package_sha256=sha, verdict=verdict, report=report,
                    files=files, copies=copies, correlation_id=cid, idempotency=idempotency,
                    response=response, timeline=timeline, audit_entry=audit.AuditEntry(
                        req.actor, "outbound.submitted", str(doc_id),
                        {"document_id": msg.document_id, "sha256": sha, "sealed": sealed}))
                if new and req.replaces is not None:
                    response["replaces"] = await store.mark_replaced(
                        conn, req.replaces.original, doc_id, reason=req.replaces.reason,
                        staff=req.replaces.staff, actor=req.actor)
                    await conn.execute("UPDATE outbound_idempotency SET response = $3"
                                       " WHERE agency_code = $1 AND idempotency_key = $2",
                                       idempotency[0], idempotency[1], response)
        except store.KeyTaken:
            first = await self.repeat(*idempotency)
            assert first is not None
            return first
        if not new:
            raise Conflict(f"agency {agency.code} already sent DocumentId {msg.document_id!r}",
                           code="DOCUMENT_ID_EXISTS", details={"document_id": msg.document_id})
        self.wake_relays()
        log.info("outbound document queued", extra={
            "document": str(doc_id), "receivers": len(copies), "sealed": sealed})
        return 202, response


def _check_secrecy(meta: OutboundMetadata) -> None:
    """Secret documents never travel over the axis (Decree 30; spec §6)."""
    if marker_is_secret(meta.secret_level) or text_is_secret(meta.sphere_of_promulgation):
        field = "secret_level" if marker_is_secret(meta.secret_level) \
            else "sphere_of_promulgation"
        raise _refuse("DOCUMENT_SECRET", "secret documents may not be sent over the axis",
                      field=field)


def _message(meta: OutboundMetadata, agency: ServedAgency, document_id: str,
             files: list[store.StoredFile]) -> edxml.EdocMessage:
    other = None
    if any(v is not None for v in (meta.priority, meta.sphere_of_promulgation,
                                   meta.promulgation_amount, meta.page_amount)):
        other = edxml.OtherInfo(priority=meta.priority,
                                sphere_of_promulgation=meta.sphere_of_promulgation,
                                promulgation_amount=meta.promulgation_amount,
                                page_amount=meta.page_amount)
    return edxml.EdocMessage(
        from_organ=edxml.Organ(agency.code, agency.name or None),
        to_organs=tuple(edxml.Organ(r) for r in meta.to),
        document_id=document_id,
        code=edxml.Code(meta.code_number, meta.code_notation),
        promulgation_info=edxml.PromulgationInfo(meta.promulgation_place,
                                                 meta.promulgation_date),
        document_type=edxml.DocumentType(meta.document_type, meta.type_name, meta.type_detail),
        subject=meta.subject,
        signer_info=edxml.SignerInfo(meta.signer.full_name, meta.signer.competence,
                                     meta.signer.position),
        content=meta.content, due_date=meta.due_date, other_info=other,
        response_for=tuple(edxml.ResponseFor(r.organ_id, r.code, r.promulgation_date,
                                             r.document_id) for r in meta.response_for),
        steering_type=meta.steering_type,
        to_places=tuple(meta.to_places) if meta.to_places is not None else None,
        trace_headers=(edxml.TraceHeader(agency.code, datetime.now(UTC)),),
        attachments=tuple(edxml.Attachment(f.content_id, f.name, f.content_type, f.data,
                                           f.description) for f in files),
    )

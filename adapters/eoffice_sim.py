"""An eOffice simulator: receives webhooks like a real eOffice and answers with statuses.

What it does, per ``POST /webhook``:

- counts the request (``received``), then answers 503 (``fail_status``) while ``down`` is set
  or for the first ``fail_first`` requests — to exercise the adapter's retry ladder;
- verifies the HMAC signature (401 with a code otherwise, see :mod:`adapters.signature`);
- deduplicates on ``Idempotency-Key``: a repeat is counted in ``duplicates`` and answered 409
  with the reference it already has; a new document is counted in ``accepted``;
- checks every attachment's ``content_base64`` against the announced size and sha256 and
  stores what it got (:class:`ReceivedDocument`); a document with a bad file gets 422;
- when ``answer`` is ``"03"`` (accepted) or ``"02"`` (returned) and a ``gateway_url`` is set,
  reports that business status to ``POST {gateway_url}/v1/documents/{document_id}/status``
  in a background task after answering, retrying a few times; results are in
  ``status_reports``;
- a typed business message (``kind`` revoke, update, replace, take_back; issue 13) acts on the
  documents it names (``business.originals``) like an eOffice would: a revoke cancels them
  (``revoked``; Decree 30 Art. 18.4b), a replace marks them ``replaced`` (the replacement is a
  new document, answered with ``answer``), an update marks them ``updated``; a take back hands
  them back (``taken_back``) when ``business_answer`` is ``"15"``. Revoke, update and take back
  are then answered with ``business_answer`` (``"15"`` agree, ``"16"`` refuse with a reason,
  None: no answer) on the message's ``document_id``. Every typed message is kept in
  ``business``.
- a receiver's status about a document this eOffice SENT (``kind`` status, issue 13
  "Tracking") is recorded in ``statuses`` (:class:`ReceivedStatus`: the outbound document,
  receiver, code, description, staff, time) and never answered; a repeat of the same message
  is a duplicate like any other.

Use it as ``async with EOfficeSimulator(secret) as sim: ... sim.url ...``.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web

from adapters.errors import WebhookSignatureError
from adapters.signature import IDEMPOTENCY_HEADER, verify_webhook_signature
from gateway.edxml.payload import b64decode_strict

log = logging.getLogger(__name__)

BusinessAnswer = Literal["03", "02"]
FlowAnswer = Literal["15", "16"]
DEFAULT_STAFF = {"Department": "Văn phòng", "Staff": "Văn thư"}
DESCRIPTIONS = {
    "03": "Đã tiếp nhận văn bản (eOffice mô phỏng)",
    "02": "Từ chối tiếp nhận: văn bản gửi nhầm đơn vị (eOffice mô phỏng)",
    "15": "Đồng ý: đã hủy/cập nhật/trả lại văn bản (eOffice mô phỏng)",
    "16": "Không đồng ý: văn bản đã được xử lý (eOffice mô phỏng)",
}


@dataclass(frozen=True)
class ReceivedFile:
    id: str
    name: str
    size: int
    sha256: str
    sha256_ok: bool


@dataclass(frozen=True)
class ReceivedDocument:
    message_id: str
    document_id: str
    agency: str
    reference: str
    correlation_id: str | None
    attachments: tuple[ReceivedFile, ...]
    payload: dict[str, Any] = field(repr=False, compare=False)
    kind: str = "document"

    @property
    def originals(self) -> tuple[str, ...]:
        """Gateway ids of the documents a typed business message is about."""
        return tuple(str(o.get("document_id")) for o in
                     (self.payload.get("business") or {}).get("originals") or ())


@dataclass(frozen=True)
class ReceivedStatus:
    """A receiver's business status about a document this eOffice sent."""

    message_id: str
    document_id: str
    edxml_document_id: str
    receiver: str
    code: str
    description: str | None
    staff: dict[str, Any] | None
    timestamp: str | None


@dataclass(frozen=True)
class StatusReport:
    document_id: str
    agency: str
    status: str
    ok: bool
    attempts: int
    http_status: int | None
    error: str | None = None


class EOfficeSimulator:
    def __init__(self, secret: bytes, *, gateway_url: str | None = None,
                 gateway_token: str | None = None, answer: BusinessAnswer | None = "03",
                 fail_first: int = 0, fail_status: int = 503, host: str = "127.0.0.1",
                 port: int = 0, max_skew: float = 300.0, report_attempts: int = 5,
                 report_delay: float = 0.2, staff: dict[str, str] | None = None,
                 latency: float = 0.0, business_answer: FlowAnswer | None = "15") -> None:
        if answer not in ("03", "02", None):
            raise ValueError("answer must be '03', '02' or None")
        if business_answer not in ("15", "16", None):
            raise ValueError("business_answer must be '15', '16' or None")
        self.business_answer = business_answer
        #: Typed business messages received, and what they did to the documents named.
        self.business: list[ReceivedDocument] = []
        self.revoked: set[str] = set()
        self.replaced: set[str] = set()
        self.updated: set[str] = set()
        self.taken_back: set[str] = set()
        #: Statuses from the receivers of documents this eOffice sent, in arrival order.
        self.statuses: list[ReceivedStatus] = []
        self.secret = secret
        self.gateway_url = gateway_url.rstrip("/") if gateway_url else None
        self.gateway_token = gateway_token
        self.answer = answer
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.down = False
        #: Seconds each webhook takes to answer (a slow eOffice).
        self.latency = latency
        self.received = 0
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.failed = 0
        self.documents: dict[str, ReceivedDocument] = {}
        self.status_reports: list[StatusReport] = []
        self._host = host
        self._port = port
        self._max_skew = max_skew
        self._report_attempts = report_attempts
        self._report_delay = report_delay
        self._staff = staff or dict(DEFAULT_STAFF)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._reports: set[asyncio.Task[None]] = set()
        self.url = ""
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/webhook", self._on_webhook)
        app.router.add_get("/health", self._on_health)
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self._host}:{port}"
        self.url = f"{self.base_url}/webhook"
        return self.url

    async def stop(self, *, grace: float = 5.0) -> None:
        if self._reports:
            _done, pending = await asyncio.wait(set(self._reports), timeout=grace)
            for task in pending:
                task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> EOfficeSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_reports(self, within: float = 10.0) -> None:
        """Wait until every background status report has finished."""
        if self._reports:
            await asyncio.wait(set(self._reports), timeout=within)

    # -- HTTP ------------------------------------------------------------------------------

    async def _on_health(self, request: web.Request) -> web.Response:
        return web.json_response({"accepted": self.accepted, "duplicates": self.duplicates,
                                  "received": self.received, "down": self.down})

    async def _on_webhook(self, request: web.Request) -> web.Response:
        self.received += 1
        body = await request.read()
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.down or self.failed < self.fail_first:
            self.failed += 1
            return _error(self.fail_status, "SIM_UNAVAILABLE", "simulated outage")
        try:
            verify_webhook_signature(self.secret, body, request.headers, max_skew=self._max_skew)
        except WebhookSignatureError as exc:
            self.rejected += 1
            return _error(401, exc.code, str(exc))
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if not key:
            self.rejected += 1
            return _error(400, "IDEMPOTENCY_KEY_MISSING", "Idempotency-Key header required")
        known = self.documents.get(key)
        if known is not None:
            self.duplicates += 1
            return web.json_response({"reference": known.reference, "duplicate": True},
                                     status=409)
        try:
            payload = json.loads(body)
            document = self._document(key, payload, request)
        except (ValueError, KeyError, TypeError) as exc:
            self.rejected += 1
            return _error(400, "SIM_BAD_PAYLOAD", f"payload not understood: {exc}")
        bad = [f.name for f in document.attachments if not f.sha256_ok]
        if bad:
            self.rejected += 1
            return _error(422, "SIM_ATTACHMENT_MISMATCH", f"bad files: {', '.join(bad)}")
        # No await between the lookup above and this insert: concurrent repeats see it.
        self.documents[key] = document
        self.accepted += 1
        log.info("eoffice-sim accepted document",
                 extra={"message_id": key, "document_id": document.document_id,
                        "agency": document.agency, "reference": document.reference})
        if document.kind == "status":
            self._record_status(document)
            return web.json_response({"reference": document.reference}, status=200)
        answer = self._act(document) if document.kind != "document" else self.answer
        if answer and self.gateway_url:
            task = asyncio.create_task(self._report_status(document, answer))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)
        return web.json_response({"reference": document.reference}, status=200)

    def _record_status(self, document: ReceivedDocument) -> None:
        status = document.payload.get("status") or {}
        self.statuses.append(ReceivedStatus(
            message_id=document.message_id, document_id=document.document_id,
            edxml_document_id=str(document.payload.get("edxml_document_id") or ""),
            receiver=str(status.get("receiver") or ""), code=str(status.get("code") or ""),
            description=status.get("description"), staff=status.get("staff"),
            timestamp=status.get("timestamp")))

    def statuses_for(self, document_id: str) -> list[ReceivedStatus]:
        """Statuses received about one document this eOffice sent (the gateway's id)."""
        return [s for s in self.statuses if s.document_id == document_id]

    def _act(self, document: ReceivedDocument) -> str | None:
        """What a typed business message does here, and the status to answer it with."""
        self.business.append(document)
        originals = set(document.originals)
        if document.kind == "replace":
            self.replaced |= originals
            return self.answer  # the replacement is a document: registered (03) or not
        if document.kind == "revoke":
            self.revoked |= originals  # cancelled whatever the answer (Art. 18.4b)
        elif document.kind == "update":
            self.updated |= originals
        elif document.kind == "take_back" and self.business_answer == "15":
            self.taken_back |= originals
        return self.business_answer

    def _document(self, key: str, payload: dict[str, Any],
                  request: web.Request) -> ReceivedDocument:
        files = []
        for att in payload["attachments"]:
            content = att.get("content_base64")
            if content is None:
                ok = True  # metadata-only webhook (include_files=False)
            else:
                try:
                    data = b64decode_strict(content)
                except (binascii.Error, ValueError):
                    data = b""
                ok = len(data) == att["size"] and hashlib.sha256(data).hexdigest() == att[
                    "sha256"]
            files.append(ReceivedFile(id=str(att["id"]), name=str(att["name"]),
                                      size=int(att["size"]), sha256=str(att["sha256"]),
                                      sha256_ok=ok))
        return ReceivedDocument(
            message_id=key,
            document_id=str(payload["document_id"]),
            agency=str(payload["agency"]),
            reference=f"EO-{self.accepted + 1:06d}",
            correlation_id=request.headers.get("X-Edoc-Correlation-Id"),
            attachments=tuple(files),
            payload={k: v for k, v in payload.items() if k != "attachments"},
            kind=str(payload.get("kind") or "document"),
        )

    # -- business status back to the gateway -----------------------------------------------

    def status_body(self, document: ReceivedDocument, status: str) -> dict[str, Any]:
        return {"agency": document.agency, "status": status,
                "description": DESCRIPTIONS[status], "staff": dict(self._staff)}

    async def _report_status(self, document: ReceivedDocument, status: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.gateway_url}/v1/documents/{document.document_id}/status"
        headers = {"X-Correlation-Id": document.correlation_id or ""}
        if self.gateway_token:
            headers["Authorization"] = f"Bearer {self.gateway_token}"
        http_status: int | None = None
        error: str | None = None
        delay = self._report_delay
        for attempt in range(1, self._report_attempts + 1):
            try:
                async with self._session.post(url, json=self.status_body(document, status),
                                              headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    http_status = resp.status
                    text = await resp.text(errors="replace")
                if 200 <= http_status < 300 or http_status == 409:
                    self._record(document, status, True, attempt, http_status, None)
                    return
                error = f"HTTP {http_status}: {text[:200]}"
                if 400 <= http_status < 500 and http_status not in (408, 429):
                    break  # the gateway refused this report: retrying cannot help
            except (aiohttp.ClientError, TimeoutError) as exc:
                http_status, error = None, f"{type(exc).__name__}: {exc}"
            if attempt < self._report_attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._record(document, status, False, attempt, http_status, error)

    def _record(self, document: ReceivedDocument, status: str, ok: bool, attempts: int,
                http_status: int | None, error: str | None) -> None:
        self.status_reports.append(StatusReport(document.document_id, document.agency, status,
                                                ok, attempts, http_status, error))
        level = logging.INFO if ok else logging.WARNING
        log.log(level, "eoffice-sim status report " + ("sent" if ok else "failed"),
                extra={"document_id": document.document_id, "status": status,
                       "attempts": attempts, "http_status": http_status, "error": error})


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


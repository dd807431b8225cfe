"""A faithful in-process VDXP axis for tests and demos (``edoc-gateway axis-sim``).

It speaks the protocol of :mod:`gateway.axis.vdxp` over real HTTP: it verifies the
``XroadVnpt-*`` HMAC headers of every request (HTTP 401 with ``ErrorCode "401"`` and a ``reason``
on a bad signature, unknown system or stale timestamp), keeps per-agency queues of document and
status packages (:mod:`gateway.axis.sim_state`), appends its own TraceHeader to every document it
delivers, and can inject faults (:mod:`gateway.axis.sim_faults`).

Routing: a document goes to every OrganId of the ``to`` parameter when given, else to the edXML
``To/OrganId`` list; a status goes to ``to`` when given, else to ``ResponseFor/OrganId``.

``getSentEdocList`` answers for one ``docId`` (the sender's DocId), or [I] for a ``hash-file``
(the SHA-256 of the uploaded file, either hex form): every package the caller sent with that
hash, oldest first (how a sender reconciles after losing a ``sendEdoc`` answer; see
:mod:`gateway.axis.vdxp`).

Envelope ``ErrorCode`` values of the simulator (the real axis' numeric codes are not public):
``"400"`` bad request (missing/invalid parameter, hash-file mismatch), ``"403"`` the ``from``
OrganId or the docId does not belong to the caller, ``"404"`` unknown docId or operation,
``"422"`` no or unknown receiver.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.axis.base import MessageType, is_multipart
from gateway.axis.edxml_peek import (
    append_trace,
    receiver_organ_ids,
    response_for_organ_ids,
    sender_organ_id,
)
from gateway.axis.errors import AxisAuthError
from gateway.axis.sim_faults import Faults
from gateway.axis.sim_state import (
    AckRecord,
    SimAgency,
    SimPackage,
    SimState,
    StatusSummary,
    Submission,
)
from gateway.axis.vdxp_auth import (
    DEFAULT_MAX_SKEW,
    VDXP_TZ,
    hash_file_matches,
    signed_params,
    verify_headers,
)
from gateway.edxml.payload import b64encode

__all__ = ["AxisSimulator", "SimAgency", "Submission"]

log = logging.getLogger(__name__)
AXIS_ORGAN_ID = "000.00.00.H00"
MAX_PACKAGE = 64 * 1024 * 1024


class SimFailure(Exception):
    """An operation answered with ``status FAIL`` and an axis ``ErrorCode``."""

    def __init__(self, error_code: str, desc: str) -> None:
        super().__init__(desc)
        self.error_code = error_code
        self.desc = desc


_OK = {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success"}


def _envelope(data: Any = None, **extra: Any) -> web.Response:
    return web.json_response({**_OK, "data": data, **extra})


#: ``_envelope(<a string>)`` up to the string's first character: getEdoc appends the base64
#: text itself (it needs no JSON escaping) and closes with ``"}``.
_ENVELOPE_HEAD = json.dumps({**_OK, "data": ""}, separators=(",", ":")).encode()[:-2]


def _fail(error_code: str, desc: str, http_status: int = 200, **extra: Any) -> web.Response:
    body = {"status": "FAIL", "ErrorCode": error_code, "ErrorDesc": desc, "data": None, **extra}
    return web.json_response(body, status=http_status)


def _axis_time(when: datetime) -> str:
    return f"{when.astimezone(VDXP_TZ):%Y-%m-%d %H:%M:%S}"


def _parse_to(raw: str) -> list[str]:
    """``to`` parameter: a JSON array of OrganIds (or of objects with an OrganId), or a list
    separated by ``;``/``,``."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = [part for part in raw.replace(",", ";").split(";")]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SimFailure("400", "to must be a JSON array of OrganIds")
    organs = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("OrganId") or item.get("organId") or item.get("code") or ""
        if not isinstance(item, str):
            raise SimFailure("400", "to must be a JSON array of OrganIds")
        if item.strip():
            organs.append(item.strip())
    return organs


class AxisSimulator:
    """The simulated axis. Use ``async with AxisSimulator([...]) as sim:`` then ``sim.base_url``."""

    def __init__(
        self,
        agencies: list[SimAgency],
        organ_id: str = AXIS_ORGAN_ID,
        *,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.organ_id = organ_id
        self.state = SimState(agencies)
        self.faults = Faults()
        self.max_skew = max_skew
        self.clock = clock or (lambda: datetime.now(UTC))
        #: (operation, outcome) of every request, in arrival order.
        self.calls: list[tuple[str, str]] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._handlers = {
            "sendEdoc": self._send_edoc,
            "getReceivedEdocList": self._received_list,
            "getEdoc": self._get_edoc,
            "downloadEdoc": self._download_edoc,
            "updateStatus": self._update_status,
            "getSentEdocList": self._sent_list,
            "countReceiveEdoc": self._count_edoc,
            "countReceiveStatus": self._count_status,
            "getAgenciesList": self._agencies,
            "getAgenciesListQD20": self._agencies,
        }

    # ----------------------------------------------------------------- lifecycle

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_PACKAGE)
        app.router.add_route("*", "/{operation}", self._dispatch)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = ephemeral) and return the base URL."""
        runner = web.AppRunner(
            self.make_app(), handle_signals=False, access_log=None, shutdown_timeout=0.2
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> AxisSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- test helpers

    def post_document(
        self,
        edxml: bytes,
        *,
        from_organ: str | None = None,
        to: list[str] | None = None,
        message_type: MessageType = MessageType.EDOC,
    ) -> Submission:
        """Queue a package as if ``from_organ`` (default: the edXML From) had sent it.

        Any bytes are accepted (with ``to`` when they carry no readable receivers), so tests can
        hand malformed or hostile packages to a receiver.
        """
        sender = from_organ or sender_organ_id(edxml) or ""
        return self._submit(edxml, sender, MessageType(message_type), to)

    def sent_to(self, organ_id: str, message_type: MessageType | None = None) -> list[SimPackage]:
        """Every copy ever delivered to ``organ_id`` (acked or not), oldest first."""
        return self.state.sent_to(organ_id, message_type)

    def pending(self, organ_id: str, message_type: MessageType | None = None) -> list[SimPackage]:
        """Copies still queued for ``organ_id`` (not acked done/fail)."""
        return self.state.pending(organ_id, message_type)

    def statuses_for(self, organ_id: str) -> list[StatusSummary]:
        """Status packages delivered to ``organ_id``, summarised."""
        return self.state.statuses_for(organ_id)

    @property
    def acks(self) -> list[AckRecord]:
        return list(self.state.acks)

    def call_count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    # ----------------------------------------------------------------- HTTP

    def _secret_of(self, system_id: str) -> str | None:
        agency = self.state.by_system.get(system_id)
        return agency.secret if agency else None

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        operation = request.match_info["operation"]
        delay = self.faults.take_delay(operation)
        if delay > 0:
            await asyncio.sleep(delay)
        failure = self.faults.take_failure(operation)
        if failure is not None:
            self.calls.append((operation, f"http_{failure}"))
            return _fail(str(failure), "injected failure", http_status=failure)
        drop = self.faults.take_drop(operation)
        if drop is False:
            self.calls.append((operation, "dropped"))
            return self._drop(request)
        if self.faults.take_garble(operation):
            self.calls.append((operation, "garbled"))
            return web.Response(text="<html><body>502 Bad Gateway</body></html>",
                                content_type="text/html")
        handler = self._handlers.get(operation)
        if handler is None:
            self.calls.append((operation, "unknown"))
            return _fail("404", f"unknown operation {operation}", http_status=404)
        try:
            system_id = verify_headers(request.headers, self._secret_of, self.clock(),
                                       self.max_skew)
        except AxisAuthError as exc:
            self.calls.append((operation, exc.code))
            return _fail("401", exc.message, http_status=401, reason=exc.code)
        agency = self.state.by_system[system_id]
        try:
            response = await handler(request, agency, signed_params(request.headers))
            outcome = "ok"
        except SimFailure as exc:
            response, outcome = _fail(exc.error_code, exc.desc), f"fail_{exc.error_code}"
        if drop is True:
            self.calls.append((operation, "dropped_after"))
            return self._drop(request)
        hold = self.faults.take_hold(operation) if outcome == "ok" else 0.0
        if hold > 0:
            await asyncio.sleep(hold)
        self.calls.append((operation, outcome))
        return response

    def _submit(
        self, edxml: bytes, sender: str, message_type: MessageType, to: list[str] | None
    ) -> Submission:
        if to:
            receivers = to
        elif message_type is MessageType.EDOC:
            receivers = receiver_organ_ids(edxml)
        else:
            receivers = response_for_organ_ids(edxml)
        receivers = list(dict.fromkeys(receivers))
        if not receivers:
            raise SimFailure("422", "no receiver: give 'to' or address the package")
        unknown = [r for r in receivers if r not in self.state.by_organ]
        if unknown:
            raise SimFailure("422", f"unknown receiver(s): {', '.join(unknown)}")
        now = self.clock()
        if message_type is MessageType.EDOC:
            edxml = append_trace(edxml, self.organ_id, now.astimezone(VDXP_TZ))
        return self.state.submit(
            dict.fromkeys(receivers, edxml), from_organ=sender, message_type=message_type, now=now
        )

    async def _read_file(self, request: web.Request) -> bytes:
        if is_multipart(request.headers.get("Content-Type")):
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if getattr(part, "name", None) == "file_doc":
                    return bytes(await part.read(decode=False))
            return b""
        return await request.read()

    async def _send_edoc(self, request: web.Request, agency: SimAgency, p: dict) -> web.Response:
        try:
            message_type = MessageType(p.get("messagetype", ""))
        except ValueError as exc:
            raise SimFailure("400", "messagetype must be edoc or status") from exc
        if p.get("from") != agency.organ_id:
            raise SimFailure("403", f"from {p.get('from')!r} is not the caller's OrganId")
        data = await self._read_file(request)
        if not data:
            raise SimFailure("400", "no file_doc part")
        if not hash_file_matches(data, p.get("hash-file", "")):
            raise SimFailure("400", "hash-file does not match the uploaded file")
        to = _parse_to(p["to"]) if p.get("to") else None
        submission = self._submit(data, agency.organ_id, message_type, to)
        self.state.hashes[submission.doc_id] = hashlib.sha256(data).hexdigest()
        return _envelope(None, DocId=submission.doc_id)

    def _own_copy(self, agency: SimAgency, p: dict) -> SimPackage:
        doc_id = p.get("docId", "")
        copy = self.state.packages.get(doc_id)
        if copy is None:
            raise SimFailure("404", f"unknown docId {doc_id!r}")
        if copy.to_organ != agency.organ_id:
            raise SimFailure("403", f"docId {doc_id!r} is not addressed to the caller")
        return copy

    async def _received_list(self, request: web.Request, agency: SimAgency, p: dict):
        try:
            message_type = MessageType(p.get("messagetype", "edoc"))
        except ValueError as exc:
            raise SimFailure("400", "messagetype must be edoc or status") from exc
        entries = [
            {
                "docId": c.doc_id, "from": c.from_organ, "to": c.to_organ, "serviceType": "eDoc",
                "messageType": c.message_type.value, "status": c.receive_status,
                "status_desc": c.receive_status_desc, "created_time": _axis_time(c.created),
                "updated_time": _axis_time(c.updated),
            }
            for c in self.state.pending(agency.organ_id, message_type)
        ]
        if entries and self.faults.take_duplicate():
            entries = [e for e in entries for _ in range(2)]
        return _envelope(entries)

    async def _get_edoc(self, request: web.Request, agency: SimAgency, p: dict):
        copy = self._own_copy(agency, p)
        # _envelope(<base64 text>) without json.dumps scanning ~160 KB of base64
        return web.Response(body=_ENVELOPE_HEAD + b64encode(copy.data) + b'"}',
                            content_type="application/json")

    async def _download_edoc(self, request: web.Request, agency: SimAgency, p: dict):
        copy = self._own_copy(agency, p)
        return web.Response(body=copy.data, content_type="application/octet-stream")

    async def _update_status(self, request: web.Request, agency: SimAgency, p: dict):
        copy = self._own_copy(agency, p)
        status = p.get("status", "")
        if status not in ("done", "fail", "processing"):
            raise SimFailure("400", "status must be done, fail or processing")
        keep = status != "processing" and self.faults.take_redeliver(status)
        self.state.ack(agency.organ_id, copy.doc_id, status, p.get("description", ""),
                       self.clock(), keep_queued=keep)
        return _envelope(None)

    async def _sent_list(self, request: web.Request, agency: SimAgency, p: dict):
        if not p.get("docId") and p.get("hash-file"):
            wanted = p["hash-file"].strip().lower()
            doc_ids = [d for d, sha in self.state.hashes.items()
                       if self.state.senders[d] == agency.organ_id
                       and wanted in (sha, "".join(f"{b:x}" for b in bytes.fromhex(sha)))]
            return _envelope(self._sent_entries(doc_ids))
        doc_id = p.get("docId", "")
        if doc_id not in self.state.sent:
            raise SimFailure("404", f"unknown docId {doc_id!r}")
        if self.state.senders[doc_id] != agency.organ_id:
            raise SimFailure("403", f"docId {doc_id!r} was not sent by the caller")
        return _envelope(self._sent_entries([doc_id]))

    def _sent_entries(self, doc_ids: list[str]) -> list[dict]:
        entries = []
        for doc_id, receiver_doc_id in ((d, r) for d in doc_ids for r in self.state.sent[d]):
            c = self.state.packages[receiver_doc_id]
            entries.append({
                "serviceType": "eDoc", "messageType": c.message_type.value,
                "senderDocId": doc_id, "receiverDocId": c.doc_id,
                "fromCode": c.from_organ, "toCode": c.to_organ,
                "sendStatus": "done", "sendStatusDesc": "delivered to the receiver's queue",
                "receiveStatus": c.receive_status, "receiveStatusDesc": c.receive_status_desc,
                "sentTime": _axis_time(c.created),
                "receivedTime": _axis_time(c.updated) if c.receive_status != "initial" else None,
            })
        return entries

    async def _count_edoc(self, request: web.Request, agency: SimAgency, p: dict):
        return _envelope(None, count=len(self.state.pending(agency.organ_id, MessageType.EDOC)))

    async def _count_status(self, request: web.Request, agency: SimAgency, p: dict):
        return _envelope(None, count=len(self.state.pending(agency.organ_id, MessageType.STATUS)))

    async def _agencies(self, request: web.Request, agency: SimAgency, p: dict):
        return _envelope([
            {"id": str(i), "pid": a.pid, "code": a.organ_id, "name": a.name, "mail": a.mail,
             "code102": a.code102 or a.organ_id}
            for i, a in enumerate(self.state.agencies, start=1)
        ])

"""Client of the national document-exchange axis VDXP (VPCP/VNPT REST, SDK 3.0.201608).

Protocol rules implemented here (see /work/shared/spec/edxml-and-axis.md section 5):

- ``POST {endpoint}/{operation}`` (``GET`` for the count operations); every parameter travels as a
  signed ``XroadVnpt-*`` header (:mod:`gateway.axis.vdxp_auth`), the body is empty except for
  ``sendEdoc``, a multipart form whose file part is named ``file_doc``.
- ``sendEdoc`` parameters: ``from`` (the sender's OrganId, taken from the edXML ``From``),
  ``servicetype=eDoc``, ``messagetype=edoc|status``, optional ``to`` (a JSON array of OrganIds,
  [I]: the SDK passes the caller's JSON through), ``hash-file`` (:func:`vdxp_auth.hash_file`).
- every answer is a JSON envelope ``{status, ErrorCode, ErrorDesc, data}``; ``ErrorCode "0"`` is
  success. ``sendEdoc`` puts ``DocId`` and the count operations ``count`` at the top level.

Failure mapping: HTTP 401/403 -> :class:`AxisAuthError`; HTTP 5xx/408/429, timeouts and
dropped connections -> :class:`AxisTransientError` after ``retries`` further attempts with
exponential backoff and jitter (each attempt is signed afresh); ``ErrorCode != "0"`` ->
:class:`AxisRejectedError`; anything unparsable -> :class:`AxisProtocolError`.

aiohttp itself re-sends an idempotent request (``GET``: the count operations) once when a kept-alive
connection turns out closed, so one attempt there may be two HTTP requests.

Retrying ``sendEdoc`` after a timeout can make the axis hold the package twice, so a document
(``messagetype=edoc``) is retried here only when it surely did not reach the axis (connection
refused, an HTTP 5xx/408/429 answer); after a timeout or a connection lost mid-request the
error is raised with ``maybe_sent`` and the caller reconciles through :meth:`find_sent` before
sending again (:mod:`gateway.outbound.axis_sender`). Status messages are retried as before
(receivers deduplicate them on their content).

``find_sent`` [I]: ``getSentEdocList`` with a ``hash-file`` parameter (the SHA-256 of the
package, 64 hex digits) instead of ``docId``, answering the same per-receiver entries for every
package the caller sent with that hash. The public SDK documents only the ``docId`` form; the
simulator implements this one, a real axis without it must be reconciled by its operator's
listing (the client raises what the axis answers).
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from gateway.axis.base import (
    AckStatus,
    AxisAuthError,
    AxisClient,
    AxisProtocolError,
    AxisRejectedError,
    AxisTransientError,
    DirectoryEntry,
    MessageType,
    ReceivedItem,
    SendResult,
    SentReceipt,
)
from gateway.axis.edxml_peek import sender_organ_id
from gateway.axis.vdxp_auth import USER_AGENT, hash_file, sign_headers, verify_headers
from gateway.edxml.payload import decode_base64

__all__ = ["VdxpClient", "parse_envelope", "sign_headers", "verify_headers"]

log = logging.getLogger(__name__)
SERVICE_TYPE = "eDoc"
_TRANSIENT_HTTP = {408, 429}


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class VdxpClient(AxisClient):
    """One VDXP connection (``system_id`` + ``secret``) speaking over aiohttp.

    ``organ_id`` is the sender code put in ``from``; by default it is read from each package's
    ``From/OrganId``. ``clock`` returns the aware "now" used for the signed timestamp.
    """

    def __init__(
        self,
        endpoint: str,
        system_id: str,
        secret: str,
        *,
        organ_id: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        backoff_cap: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], datetime] | None = None,
        sdk_hash_file: bool = True,
        max_response_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        if retries < 0 or timeout <= 0:
            raise ValueError("retries must be >= 0 and timeout > 0")
        self.endpoint = endpoint.rstrip("/")
        self.system_id = system_id
        self.organ_id = organ_id
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self._secret = secret
        self._session = session
        self._owns_session = session is None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sdk_hash_file = sdk_hash_file
        #: An answer larger than this is refused (a 100 MB package is ~134 MB of base64).
        self.max_response_bytes = max_response_bytes

    @property
    def longest_call(self) -> float:
        """Every attempt's timeout plus the longest backoff before each retry."""
        return (self.retries + 1) * self.timeout + self.retries * self.backoff_cap

    def __repr__(self) -> str:  # never show the secret
        return f"VdxpClient(endpoint={self.endpoint!r}, system_id={self.system_id!r})"

    # ------------------------------------------------------------------ operations

    async def send_edoc(self, edxml: bytes, *, to: list[str] | None = None) -> SendResult:
        return await self._send(edxml, MessageType.EDOC, to, retry_maybe_sent=False)

    async def send_status(self, edxml: bytes, *, to: list[str] | None = None) -> SendResult:
        return await self._send(edxml, MessageType.STATUS, to)

    async def _send(
        self, edxml: bytes, message_type: MessageType, to: list[str] | None,
        *, retry_maybe_sent: bool = True,
    ) -> SendResult:
        if not edxml:
            raise ValueError("empty edXML package")
        sender = self.organ_id or sender_organ_id(edxml) or self.system_id
        params = {
            "from": sender,
            "servicetype": SERVICE_TYPE,
            "messagetype": message_type.value,
            "hash-file": hash_file(edxml, sdk_compatible=self._sdk_hash_file),
        }
        if to:
            params["to"] = json.dumps(list(to), separators=(",", ":"))
        doc = await self._call("sendEdoc", params, file=edxml,
                               retry_maybe_sent=retry_maybe_sent)
        doc_id = doc.get("DocId")
        if doc_id is None and isinstance(doc.get("data"), dict):
            doc_id = doc["data"].get("DocId") or doc["data"].get("docId")
        if not isinstance(doc_id, str | int) or not _str(doc_id).strip():
            raise AxisProtocolError("missing_field", "sendEdoc: answer carries no DocId")
        return SendResult(
            doc_id=_str(doc_id).strip(),
            status=_str(doc.get("status")),
            description=_str(doc.get("ErrorDesc")),
        )

    async def list_received(self, message_type: MessageType) -> list[ReceivedItem]:
        message_type = MessageType(message_type)
        doc = await self._call(
            "getReceivedEdocList",
            {"servicetype": SERVICE_TYPE, "messagetype": message_type.value},
        )
        items = []
        for entry in self._data_list(doc, "getReceivedEdocList"):
            doc_id = entry.get("docId", entry.get("DocId"))
            if doc_id is None or not _str(doc_id).strip():
                raise AxisProtocolError("missing_field", "getReceivedEdocList: entry without docId")
            try:
                entry_type = MessageType(_str(entry.get("messageType")).lower())
            except ValueError:
                entry_type = message_type
            items.append(
                ReceivedItem(
                    doc_id=_str(doc_id).strip(),
                    message_type=entry_type,
                    from_=_str(entry.get("from")),
                    to=_str(entry.get("to")),
                    status=_str(entry.get("status")),
                    status_desc=_str(entry.get("status_desc")),
                    service_type=_str(entry.get("serviceType")) or SERVICE_TYPE,
                    created_time=_opt(entry.get("created_time")),
                    updated_time=_opt(entry.get("updated_time")),
                )
            )
        return items

    async def count_received(self, message_type: MessageType) -> int:
        message_type = MessageType(message_type)
        operation = (
            "countReceiveEdoc" if message_type is MessageType.EDOC else "countReceiveStatus"
        )
        doc = await self._call(operation, {"servicetype": SERVICE_TYPE}, method="GET")
        count = doc.get("count")
        if count is None and isinstance(doc.get("data"), dict):
            count = doc["data"].get("count")
        if isinstance(count, str) and count.strip().isdigit():
            count = int(count)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise AxisProtocolError("missing_field", f"{operation}: answer carries no count")
        return count

    async def fetch(self, doc_id: str) -> bytes:
        doc = await self._call("getEdoc", {"docId": doc_id})
        data = doc.get("data")
        if not isinstance(data, str) or not data.strip():
            raise AxisProtocolError("missing_field", f"getEdoc {doc_id}: no base64 data")
        try:
            content = _decode_package(data) if len(data) <= _INLINE_BYTES \
                else await asyncio.to_thread(_decode_package, data)
        except (binascii.Error, ValueError) as exc:
            raise AxisProtocolError("bad_base64", f"getEdoc {doc_id}: data is not base64") from exc
        if not content:
            raise AxisProtocolError("missing_field", f"getEdoc {doc_id}: empty package")
        return content

    async def ack(
        self, doc_id: str, status: AckStatus, description: str | None = None
    ) -> None:
        params = {"docId": doc_id, "status": AckStatus(status).value}
        if description and description.strip():
            params["description"] = " ".join(description.split())  # one header line
        await self._call("updateStatus", params)

    async def list_sent(self, doc_id: str) -> list[SentReceipt]:
        return self._receipts(await self._call("getSentEdocList", {"docId": doc_id}))

    async def find_sent(self, sha256: str) -> list[SentReceipt]:
        digest = sha256.strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("find_sent takes a SHA-256 in hex")
        return self._receipts(await self._call("getSentEdocList", {"hash-file": digest}))

    def _receipts(self, doc: dict[str, Any]) -> list[SentReceipt]:
        receipts = []
        for entry in self._data_list(doc, "getSentEdocList"):
            to_code = _str(entry.get("toCode")).strip()
            if not to_code:
                raise AxisProtocolError("missing_field", "getSentEdocList: entry without toCode")
            receipts.append(
                SentReceipt(
                    to_code=to_code,
                    send_status=_str(entry.get("sendStatus")),
                    send_status_desc=_str(entry.get("sendStatusDesc")),
                    receive_status=_str(entry.get("receiveStatus")),
                    receive_status_desc=_str(entry.get("receiveStatusDesc")),
                    sender_doc_id=_str(entry.get("senderDocId")),
                    receiver_doc_id=_str(entry.get("receiverDocId")),
                    from_code=_str(entry.get("fromCode")),
                    message_type=_str(entry.get("messageType")),
                    title=_str(entry.get("title")),
                    notation=_str(entry.get("notation")),
                    sent_time=_opt(entry.get("sentTime")),
                    received_time=_opt(entry.get("receivedTime")),
                )
            )
        return receipts

    async def directory(self) -> list[DirectoryEntry]:
        doc = await self._call("getAgenciesList", {})
        known = {"id", "pid", "code", "name", "mail", "code102"}
        entries = []
        for entry in self._data_list(doc, "getAgenciesList"):
            agency_id, code = _str(entry.get("id")).strip(), _str(entry.get("code")).strip()
            code102 = _opt(entry.get("code102"))
            if not agency_id or not (code or code102):
                raise AxisProtocolError("missing_field", "getAgenciesList: entry without id/code")
            entries.append(
                DirectoryEntry(
                    id=agency_id,
                    code=code or _str(code102),
                    name=_str(entry.get("name")),
                    pid=_opt(entry.get("pid")),
                    mail=_opt(entry.get("mail")),
                    code102=code102,
                    extra={k: _str(v) for k, v in entry.items() if k not in known},
                )
            )
        return entries

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # ------------------------------------------------------------------ transport

    @staticmethod
    def _data_list(doc: dict[str, Any], operation: str) -> list[dict[str, Any]]:
        data = doc.get("data")
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise AxisProtocolError("bad_envelope", f"{operation}: data is not a list of objects")
        return data

    def backoff_delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): exponential, capped, equal jitter."""
        ceiling = min(self.backoff_cap, self.backoff * (2 ** (attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _call(
        self,
        operation: str,
        params: dict[str, str],
        *,
        method: str = "POST",
        file: bytes | None = None,
        retry_maybe_sent: bool = True,
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._call_once(operation, params, method, file)
            except AxisTransientError as exc:
                exc.attempts = attempt
                if attempt > self.retries or (exc.maybe_sent and not retry_maybe_sent):
                    raise
                delay = self.backoff_delay(attempt)
                log.warning(
                    "axis %s %s: attempt %d failed (%s); retrying in %.2fs",
                    self.system_id, operation, attempt, exc.code, delay,
                )
            await asyncio.sleep(delay)

    async def _call_once(
        self, operation: str, params: dict[str, str], method: str, file: bytes | None
    ) -> dict[str, Any]:
        if self._session is None:
            if not self._owns_session:
                raise RuntimeError("VdxpClient is closed")
            self._session = aiohttp.ClientSession()
        headers = sign_headers(params, self.system_id, self._secret, self._clock())
        headers["User-Agent"] = USER_AGENT
        data: aiohttp.FormData | None = None
        if file is not None:
            data = aiohttp.FormData()
            data.add_field(
                "file_doc", file, filename="package.edxml", content_type="application/octet-stream"
            )
        url = f"{self.endpoint}/{operation}"
        try:
            async with self._session.request(
                method,
                url,
                headers=headers,
                data=data,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                status = response.status
                if (response.content_length or 0) > self.max_response_bytes:
                    raise AxisProtocolError("too_large", f"{operation}: answer of "
                                            f"{response.content_length} bytes is over the limit")
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise AxisProtocolError("too_large",
                                                f"{operation}: answer is over the limit")
                    chunks.append(chunk)
                body = b"".join(chunks)
        except TimeoutError as exc:
            message = f"{operation}: no answer in {self.timeout}s"
            raise AxisTransientError("timeout", message, maybe_sent=True) from exc
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing was sent
            raise AxisTransientError(
                "connect", f"{operation}: {type(exc).__name__}: {exc}"
            ) from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise AxisTransientError(
                "connection", f"{operation}: {type(exc).__name__}: {exc}", maybe_sent=True
            ) from exc
        if len(body) <= _INLINE_BYTES:
            return parse_envelope(operation, status, body)
        return await asyncio.to_thread(parse_envelope, operation, status, body)  # big getEdoc


#: Answers up to this size are decoded on the event loop; bigger ones (getEdoc of a large
#: package) in a thread so the loop keeps serving.
_INLINE_BYTES = 1 << 20


def _decode_package(data: str) -> bytes:
    """Strict base64 with line breaks allowed (:func:`~gateway.edxml.payload.decode_base64`,
    SIMD when available): a character outside the alphabet is an error, never skipped."""
    return decode_base64(data)


def parse_envelope(operation: str, http_status: int, body: bytes) -> dict[str, Any]:
    """Turn one HTTP answer into the envelope dict, or raise the matching typed error."""
    if http_status >= 500 or http_status in _TRANSIENT_HTTP:
        raise AxisTransientError(
            f"http_{http_status}", f"{operation}: HTTP {http_status}", http_status=http_status
        )
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if http_status in (401, 403):
        reason = _str(doc.get("reason")) if isinstance(doc, dict) else ""
        desc = _str(doc.get("ErrorDesc")) if isinstance(doc, dict) else ""
        raise AxisAuthError(reason or "auth_failed", f"{operation}: HTTP {http_status} {desc}")
    if not isinstance(doc, dict):
        raise AxisProtocolError(
            "invalid_json", f"{operation}: HTTP {http_status}, answer is not a JSON object"
        )
    if "ErrorCode" not in doc or "status" not in doc:
        raise AxisProtocolError("bad_envelope", f"{operation}: no status/ErrorCode in answer")
    error_code = _str(doc["ErrorCode"]).strip()
    if error_code != "0":
        raise AxisRejectedError(error_code, _str(doc.get("ErrorDesc")), operation=operation)
    if _str(doc["status"]).upper() == "FAIL" or not 200 <= http_status < 300:
        raise AxisProtocolError(
            "bad_envelope",
            f"{operation}: HTTP {http_status} status {doc['status']!r} with ErrorCode 0",
        )
    return doc

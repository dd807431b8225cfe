"""The ``edoc.delivery/1`` queue message as typed dataclasses, parsed strictly.

The rule: a message that does not follow ``schemas/messages/delivery.schema.json`` (bad
JSON, a missing or mistyped required field, a wrong ``schema`` marker) raises
:class:`MessageFormatError` with a precise reason, so the runner can dead-letter it with a
clear error instead of crashing or dropping it. Unknown extra fields are kept in ``raw``.

Business flows (issue 13): ``kind`` says what the message carries — ``document`` (absent in a
document's message: older gateways never send it) or a typed business message about documents
delivered before: ``revoke``, ``update``, ``replace``, ``take_back``, with a ``business`` block
whose ``originals`` name them (gateway ``document_id`` and ``edxml_document_id``). A kind this
adapter does not know is refused (``MESSAGE_KIND_UNKNOWN``: dead-lettered, never delivered as
if it were a new document).

Statuses back (issue 13, "Tracking"): ``kind = status`` is a business status a receiver sent
about a document the agency SENT (``document_id`` is the outbound document); its ``status``
block (``receiver``, ``code``, ``description``, ``staff``, ``timestamp`` …) must be an object
with string ``receiver`` and ``code``. It carries no attachments and is not answered.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import MessageFormatError

SCHEMA = "edoc.delivery/1"
VERDICTS = frozenset({"valid", "invalid", "indeterminate", "unsigned"})
DOCUMENT = "document"
#: Kinds of typed business messages (``gateway.business.flow_rules.FlowKind``).
BUSINESS_KINDS = frozenset({"revoke", "update", "replace", "take_back"})
#: A receiver's business status about a document the agency sent.
STATUS = "status"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Attachment:
    id: str
    name: str
    content_type: str
    size: int
    sha256: str
    url: str
    description: str | None = None
    inline_base64: str | None = None


@dataclass(frozen=True)
class DeliveryMessage:
    """One delivery of one document to one agency, as published by the gateway."""

    message_id: str
    delivery_id: str
    document_id: str
    agency: str
    correlation_id: str
    edxml_document_id: str
    bussiness_doc_type: int
    header: dict[str, Any]
    signature: dict[str, Any]
    attachments: tuple[Attachment, ...]
    status_url: str | None = None
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: ``document`` or a business kind (:data:`BUSINESS_KINDS`), and its ``business`` block.
    kind: str = DOCUMENT
    business: dict[str, Any] | None = None
    #: ``kind = status``: the receiver's status (receiver, code, description, staff …).
    status: dict[str, Any] | None = None

    @property
    def original_ids(self) -> tuple[str, ...]:
        """Gateway ids of the documents a business message is about (empty for a document)."""
        originals = (self.business or {}).get("originals") or ()
        return tuple(o["document_id"] for o in originals)

    def metadata(self) -> dict[str, Any]:
        """The message as JSON without inline attachment bodies (safe to forward or store)."""
        data = dict(self.raw)
        data["attachments"] = [
            {k: v for k, v in a.items() if k != "inline_base64"}
            for a in self.raw.get("attachments", [])
        ]
        return data


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise MessageFormatError(f"{where}{key}: required field missing")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MessageFormatError(f"{where}{key}: wrong type {type(value).__name__}")
    return value


def _uuid(data: dict[str, Any], key: str) -> str:
    value = _require(data, key, str, "")
    try:
        uuid.UUID(value)
    except ValueError:
        raise MessageFormatError(f"{key}: not a uuid") from None
    return value


def _optional_str(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise MessageFormatError(f"{where}{key}: wrong type {type(value).__name__}")
    return value


def _attachment(item: Any, index: int) -> Attachment:
    where = f"attachments[{index}]."
    if not isinstance(item, dict):
        raise MessageFormatError(f"attachments[{index}]: not an object")
    size = _require(item, "size", int, where)
    sha = _require(item, "sha256", str, where)
    if size < 0:
        raise MessageFormatError(f"{where}size: negative")
    if not _SHA256.match(sha):
        raise MessageFormatError(f"{where}sha256: not 64 lowercase hex digits")
    return Attachment(
        id=_require(item, "id", str, where),
        name=_require(item, "name", str, where),
        content_type=_require(item, "content_type", str, where),
        size=size,
        sha256=sha,
        url=_require(item, "url", str, where),
        description=_optional_str(item, "description", where),
        inline_base64=_optional_str(item, "inline_base64", where),
    )


def parse_delivery(body: bytes) -> DeliveryMessage:
    """Parse and check one queue message body; raise :class:`MessageFormatError` if invalid."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageFormatError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageFormatError("body is not a JSON object")
    if data.get("schema") != SCHEMA:
        raise MessageFormatError(f"schema: expected {SCHEMA!r}, got {data.get('schema')!r}")
    doc_type = _require(data, "bussiness_doc_type", int, "")
    if doc_type not in (0, 1, 2, 3):
        raise MessageFormatError(f"bussiness_doc_type: {doc_type} not in 0..3")
    signature = _require(data, "signature", dict, "")
    if signature.get("verdict") not in VERDICTS:
        raise MessageFormatError(f"signature.verdict: {signature.get('verdict')!r} unknown")
    attachments = _require(data, "attachments", list, "")
    kind, business = _kind(data)
    status = _status(data) if kind == STATUS else None
    return DeliveryMessage(
        message_id=_uuid(data, "message_id"),
        delivery_id=_uuid(data, "delivery_id"),
        document_id=_uuid(data, "document_id"),
        agency=_require(data, "agency", str, ""),
        correlation_id=_require(data, "correlation_id", str, ""),
        edxml_document_id=_require(data, "edxml_document_id", str, ""),
        bussiness_doc_type=doc_type,
        header=_require(data, "header", dict, ""),
        signature=signature,
        attachments=tuple(_attachment(a, i) for i, a in enumerate(attachments)),
        status_url=_optional_str(data, "status_url", ""),
        created_at=_optional_str(data, "created_at", ""),
        raw=data,
        kind=kind,
        business=business,
        status=status,
    )


def _kind(data: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """``kind`` and ``business`` of a message: a business kind needs a ``business`` object
    whose ``originals`` is a list of objects with a uuid ``document_id``."""
    kind = data.get("kind", DOCUMENT)
    if kind in (DOCUMENT, STATUS):
        return kind, None
    if not isinstance(kind, str) or kind not in BUSINESS_KINDS:
        raise MessageFormatError(f"kind: {str(kind)[:40]!r} unknown to this adapter",
                                 code="MESSAGE_KIND_UNKNOWN")
    business = _require(data, "business", dict, "")
    originals = _require(business, "originals", list, "business.")
    for i, item in enumerate(originals):
        if not isinstance(item, dict):
            raise MessageFormatError(f"business.originals[{i}]: not an object")
        _uuid(item, "document_id")
    return kind, business


def _status(data: dict[str, Any]) -> dict[str, Any]:
    """The ``status`` block of a ``kind = status`` message: an object whose ``receiver`` and
    ``code`` are strings."""
    status = _require(data, "status", dict, "")
    _require(status, "receiver", str, "status.")
    _require(status, "code", str, "status.")
    return status

"""The pure rules of intake: result types, business dedup keys, rejection reasons, and what a
rejected package still tells. No I/O: :mod:`gateway.intake` applies them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass

from gateway import edxml
from gateway.axis import edxml_peek
from gateway.edxml import BussinessDocType, EdocMessage

#: Packages up to this size are parsed on the event loop (≈0.3 ms per MB with the
#: accelerated codec); larger ones in a thread.
INLINE_PARSE_BYTES = 2 * 1024 * 1024

RECEIVED_TEXT = "Văn bản đã đến (tiếp nhận tự động)"

REASONS_VI = {
    "NOT_ADDRESSED_TO_US": "văn bản không gửi cho cơ quan do cổng này phục vụ",
    "SIGNATURE_INVALID": "chữ ký số trên văn bản không hợp lệ",
    "SIGNATURE_MISSING": "văn bản không có chữ ký số",
    "EDXML_SECRET_DOCUMENT": "văn bản mật không được gửi qua trục liên thông",
    "EDXML_BAD_PAYLOAD": "tệp đính kèm bị hỏng (dữ liệu base64 hoặc tệp nén không hợp lệ)",
}


@dataclass(frozen=True)
class IntakeResult:
    document_id: uuid.UUID | None
    state: str  # ROUTED | REJECTED | STATUS_RECORDED
    duplicate: bool
    correlation_id: str
    reject_code: str | None = None
    reject_reason: str | None = None
    #: The package can never be processed (malformed): the axis may be told ``fail``.
    unprocessable: bool = False

    def to_json(self) -> dict[str, object]:
        return {"document_id": str(self.document_id) if self.document_id else None,
                "state": self.state, "duplicate": self.duplicate,
                "correlation_id": self.correlation_id, "reject_code": self.reject_code,
                "reject_reason": self.reject_reason}


@dataclass(frozen=True)
class Arrival:
    """Where a package came from."""

    axis: str | None = None          # axis connection name (None: pushed)
    axis_doc_id: str | None = None
    receiver_hint: str | None = None  # OrganId of the axis connection it arrived for
    sender_hint: str | None = None


def header_json(msg: EdocMessage) -> dict:
    """The message as JSON without attachment bodies and the raw XML signature."""
    return edxml.to_json(dataclasses.replace(msg, attachments=(), signature=None))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digests_of(msg: EdocMessage) -> list[str]:
    return [a.sha256 for a in msg.attachments]


def bussiness_kind(msg: EdocMessage) -> BussinessDocType:
    return msg.bussiness.bussiness_doc_type if msg.bussiness else BussinessDocType.NEW


def dedup_key(msg: EdocMessage, header: dict, digests: list[str]) -> str:
    """The business identity of a package: sender and DocumentId for a new document; for a
    revoke/update/replace also the action and a hash of its content (header without the trace
    hops, plus the attachments' sha256), so the same action arriving by two routes — whose bytes
    differ in their TraceHeaders — is one action, while a later, different one is new."""
    kind = bussiness_kind(msg)
    base = f"inbound:{msg.from_organ.organ_id}:{msg.document_id}"
    if kind == BussinessDocType.NEW:
        return base
    content = {k: v for k, v in header.items() if k != "trace_headers"}
    material = json.dumps(content, sort_keys=True, ensure_ascii=False) + "|" + ",".join(digests)
    return f"{base}:b{int(kind)}:{hashlib.sha256(material.encode()).hexdigest()[:16]}"


_SALVAGE_MAX = 20 * 1024 * 1024


def salvage(raw: bytes, exc: edxml.EdxmlError) -> dict:
    """What a rejected package still tells (sender, DocumentId…) to answer it with a 02.

    Hostile or oversized packages are not read again."""
    if isinstance(exc, edxml.EdxmlSecurityError | edxml.EdxmlLimitError | edxml.EdxmlSyntaxError) \
            or len(raw) > _SALVAGE_MAX:
        return {}
    return {
        "sender": edxml_peek.header_text(raw, "From", "OrganId"),
        "document_id": edxml_peek.header_text(raw, "DocumentId"),
        "code_number": edxml_peek.header_text(raw, "Code", "CodeNumber"),
        "code_notation": edxml_peek.header_text(raw, "Code", "CodeNotation"),
        "subject": edxml_peek.header_text(raw, "Subject"),
        "receivers": edxml_peek.receiver_organ_ids(raw),
    }

"""The pure rules of intake: result types, business dedup keys, rejection reasons, and what a
rejected package still tells. No I/O: :mod:`gateway.inbound.intake` applies them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from dataclasses import dataclass

from lxml import etree

from gateway import edxml
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
    "DOCUMENT_ID_CONFLICT": "đã nhận một văn bản khác cùng mã định danh từ cơ quan gửi;"
                            " chờ cán bộ vận hành xử lý",
    "EDXML_BAD_PAYLOAD": "tệp đính kèm bị hỏng (dữ liệu base64 hoặc tệp nén không hợp lệ)",
}


@dataclass(frozen=True)
class IntakeResult:
    document_id: uuid.UUID | None
    state: str  # ROUTED | HELD | CONFLICT | REJECTED | STATUS_RECORDED
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


#: Header fields that are transport, not the document's business content: the hops each axis
#: appends (TraceHeaderList) and the receivers (a sender may send one package per receiver
#: under one DocumentId).
TRANSPORT_FIELDS = frozenset({"trace_headers", "to_organs"})


def content_sha256(header: dict, digests: list[str]) -> str:
    """SHA-256 of a package's business content: every header field but
    :data:`TRANSPORT_FIELDS` (the XML signature and attachment bodies are already out of
    ``header``), then the attachments' SHA-256 in order."""
    content = {k: v for k, v in header.items() if k not in TRANSPORT_FIELDS}
    material = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256((material + "|" + ",".join(digests)).encode()).hexdigest()


@dataclass(frozen=True)
class PackageIdentity:
    """Who says it and about what (``identity_key``), and what exactly it says
    (``content_sha256``). Two packages are one document when both are equal; the same identity
    with other content is a conflict (a forged package can claim a predictable DocumentId)."""

    identity_key: str
    content_sha256: str
    #: A revoke/update/replace: its identity already names its content (:func:`dedup_key`).
    business_action: bool = False

    #: Receivers named by this copy (OrganIds): a rejection as not addressed to us is a fact
    #: about them, not about the content.
    receivers: tuple[str, ...] = ()

    @property
    def dedup_key(self) -> str:
        """The unique key of the stored package (``documents.dedup_key``)."""
        if self.business_action:
            return self.identity_key
        return f"{self.identity_key}:c{self.content_sha256[:32]}"

    @property
    def rejected_key(self) -> str:
        """The key of this package when rejected. A rejected package does not own its
        identity (``identity_key`` NULL): a forgery or a copy damaged in transit, rejected
        first, neither blocks the genuine package nor answers for it."""
        return f"{self.dedup_key}:rejected"

    @property
    def unaddressed_key(self) -> str:
        """The key of this copy when rejected as not addressed to us: its receivers are part
        of it, so that the same content for a served receiver is not its duplicate."""
        to = hashlib.sha256(",".join(sorted(self.receivers)).encode()).hexdigest()[:16]
        return f"{self.dedup_key}:unaddressed:{to}"

    def stored_keys(self) -> list[str]:
        """Every key under which this very package may already be stored."""
        return [self.dedup_key, self.rejected_key, self.unaddressed_key]


def identify(msg: EdocMessage, header: dict, digests: list[str]) -> PackageIdentity:
    return PackageIdentity(dedup_key(msg, header, digests), content_sha256(header, digests),
                           bussiness_kind(msg) != BussinessDocType.NEW,
                           tuple(o.organ_id for o in msg.to_organs))


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


#: The header of a package must end within its first bytes for a rejected package to be
#: answered (MessageHeader precedes the body and the attachments; a long Content fits).
SALVAGE_BYTES = 2 * 1024 * 1024
_SALVAGE_CHUNK = 64 * 1024
#: Longest OrganId / DocumentId (QCVN 102: DocumentId is an opaque string of at most 255) /
#: other header value taken from a rejected package; longer is unreadable.
_ORGAN_ID_MAX, _DOCUMENT_ID_MAX, _TEXT_MAX = 64, 255, 500
#: Characters a status Description may not carry (XML 1.0 Char excludes C0 controls but TAB,
#: LF, CR, and U+FFFE/U+FFFF; surrogates cannot be encoded).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def salvage(raw: bytes, exc: edxml.EdxmlError) -> dict:
    """What a rejected package still tells (sender, DocumentId…) to answer it with a 02.

    Whatever the refusal (not well-formed after the header, a limit, a DOCTYPE, a bad
    payload…), the ``MessageHeader`` is read again, safely: from the first
    :data:`SALVAGE_BYTES` only, incrementally (parsing stops at the header's end tag), with no
    entity expansion, no DTD loading and no network. A value that holds an entity reference,
    a control character or is over its bound counts as unreadable. Empty dict: no header.
    """
    header = _read_header(memoryview(raw)[:SALVAGE_BYTES])
    if header is None:
        return {}

    def text(*path: str, bound: int = _TEXT_MAX) -> str:
        node: etree._Element | None = header
        for name in path:
            node = next((c for c in node if _local(c, name)), None) if node is not None else None
        return _plain(node, bound)

    return {
        "sender": text("From", "OrganId", bound=_ORGAN_ID_MAX),
        "document_id": text("DocumentId", bound=_DOCUMENT_ID_MAX),
        "code_number": text("Code", "CodeNumber"),
        "code_notation": text("Code", "CodeNotation"),
        "subject": text("Subject"),
        "receivers": [v for to in header if _local(to, "To")
                      for o in to if _local(o, "OrganId")
                      if (v := _plain(o, _ORGAN_ID_MAX))],
    }


def _read_header(data: memoryview) -> etree._Element | None:
    """The ``MessageHeader`` element, parsed incrementally from ``data`` (None if the header is
    not complete and well-formed within it)."""
    parser = etree.XMLPullParser(events=("end",), resolve_entities=False, load_dtd=False,
                                 no_network=True, huge_tree=False, remove_pis=True)
    for pos in range(0, len(data), _SALVAGE_CHUNK):
        broken = False
        try:
            parser.feed(bytes(data[pos:pos + _SALVAGE_CHUNK]))
        except etree.XMLSyntaxError:
            broken = True  # the events before the error are still good
        for _event, element in parser.read_events():
            if _local(element, "MessageHeader"):
                return element
        if broken:
            return None
    return None


def _local(element: etree._Element, name: str) -> bool:
    return isinstance(element.tag, str) and etree.QName(element).localname == name


def _plain(element: etree._Element | None, bound: int) -> str:
    """The element's text when it is plain (no child, hence no unexpanded entity reference),
    printable and at most ``bound`` characters; else ``""``."""
    if element is None or len(element):
        return ""
    value = " ".join((element.text or "").split())
    if len(value) > bound or not value.isprintable():
        return ""
    return value


def malformed_reason(exc: edxml.EdxmlError) -> str:
    """The Vietnamese reason for a package the codec refused: a fixed text per known code,
    else a generic one with the codec's message, cleaned of characters a status message could
    not carry and bounded (it travels in the 02's ``Description``)."""
    if exc.code in REASONS_VI:
        return REASONS_VI[exc.code]
    detail = _NOT_XML.sub(" ", exc.message)
    if len(detail) > 300:
        detail = detail[:300] + "…"
    return f"gói tin edXML không hợp lệ: {detail}"

"""``build``: a model to edXML bytes in the canonical layout.

Canonical layout: UTF-8, root ``edXML`` with the QCVN namespace both as default and bound to the
prefix ``edXML``; envelope elements prefixed ``edXML:``; ``MessageHeader`` children in the order
From, To+, DocumentId, Code, PromulgationInfo, DocumentType, Subject, Content, SignerInfo,
DueDate, OtherInfo, ResponseFor, SteeringType, ToPlaces; dates ``yyyy/MM/dd``, timestamps
``yyyy/MM/dd HH:mm:ss`` in Vietnam time; each attachment zipped (one entry) and base64-encoded
on one line. Optional values that are ``None`` are omitted; ``""`` gives an empty element.
"""

from __future__ import annotations

import re
from datetime import date

from . import dates
from .errors import EdxmlBuildError, EdxmlPolicyError
from .model import (
    EDXML_NS,
    Attachment,
    Bussiness,
    EdocMessage,
    Organ,
    OtherInfo,
    ResponseFor,
    StaffInfo,
    StatusCode,
    StatusMessage,
    TraceHeader,
)
from .payload import encode_payload
from .secrecy import text_is_secret

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
P = "edXML:"


def _esc(value: str, path: str) -> str:
    if _INVALID_XML.search(value):
        raise EdxmlBuildError("EDXML_BUILD_INVALID", "text contains characters not allowed in "
                              "XML", path)
    return value.translate(_ESCAPES)


class _Writer:
    """Indented XML writer collecting str pieces and raw byte payloads."""

    def __init__(self) -> None:
        self.parts: list[str | bytes] = []
        self.depth = 0
        self.stack: list[str] = []

    def open(self, tag: str, attrs: str = "") -> None:
        self.parts.append(f"{'  ' * self.depth}<{tag}{attrs}>\n")
        self.stack.append(tag)
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.parts.append(f"{'  ' * self.depth}</{self.stack.pop()}>\n")

    def leaf(self, tag: str, value: object, path: str = "") -> None:
        if value is None:
            return
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, date):
            text = dates.format_date(value)
        else:
            text = _esc(str(value), path or tag)
        indent = "  " * self.depth
        self.parts.append(f"{indent}<{tag}>{text}</{tag}>\n" if text else f"{indent}<{tag}/>\n")

    def raw(self, data: bytes) -> None:
        self.parts.append(data)

    def result(self) -> bytes:
        return b"".join(p.encode("utf-8") if isinstance(p, str) else p for p in self.parts)


def _require(value: object, path: str) -> None:
    if value is None or value == "":
        raise EdxmlBuildError("EDXML_BUILD_INVALID", "required value is missing", path)


def _organ(w: _Writer, tag: str, organ: Organ) -> None:
    _require(organ.organ_id, f"{tag}/OrganId")
    w.open(P + tag)
    for name, value in (("OrganId", organ.organ_id), ("OrganName", organ.organ_name),
                        ("OrganizationInCharge", organ.organization_in_charge),
                        ("OrganAdd", organ.organ_add), ("Email", organ.email),
                        ("Telephone", organ.telephone), ("Fax", organ.fax),
                        ("Website", organ.website)):
        w.leaf(P + name, value)
    w.close()


def _response_for(w: _Writer, rf: ResponseFor) -> None:
    if rf.is_empty and all(v is None for v in (rf.organ_id, rf.code, rf.document_id)):
        w.leaf(P + "ResponseFor", "")
        return
    w.open(P + "ResponseFor")
    w.leaf(P + "OrganId", rf.organ_id)
    w.leaf(P + "Code", rf.code)
    w.leaf(P + "PromulgationDate", rf.promulgation_date)
    w.leaf(P + "DocumentId", rf.document_id)
    w.close()


def _staff(w: _Writer, staff: StaffInfo | None) -> None:
    if staff is None:
        return
    w.open(P + "StaffInfo")
    w.leaf(P + "Department", staff.department)
    w.leaf(P + "Staff", staff.staff)
    w.leaf(P + "Email", staff.email)
    w.leaf(P + "Mobile", staff.mobile)
    w.close()


def _other_info(w: _Writer, other: OtherInfo | None) -> None:
    if other is None:
        return
    sphere = other.sphere_of_promulgation
    if text_is_secret(sphere):
        raise EdxmlPolicyError("EDXML_SECRET_DOCUMENT", "secret documents may not be sent",
                               "OtherInfo/SphereOfPromulgation")
    w.open(P + "OtherInfo")
    w.leaf(P + "Priority", other.priority)
    w.leaf(P + "SphereOfPromulgation", sphere)
    w.leaf(P + "TyperNotation", other.typer_notation)
    w.leaf(P + "PromulgationAmount", other.promulgation_amount)
    w.leaf(P + "PageAmount", other.page_amount)
    w.leaf(P + "Direction", other.direction)
    if other.appendixes is not None:
        w.open(P + "Appendixes")
        for item in other.appendixes:
            w.leaf(P + "Appendix", item)
        w.close()
    w.close()


def _trace_list(w: _Writer, traces: tuple[TraceHeader, ...], bussiness: Bussiness | None) -> None:
    w.open(P + "TraceHeaderList")
    for trace in traces:
        w.open(P + "TraceHeader")
        w.leaf(P + "OrganId", trace.organ_id or "")
        w.leaf(P + "Timestamp", dates.format_timestamp(trace.timestamp))
        w.close()
    if bussiness is not None:
        _bussiness(w, bussiness)
    w.close()


def _bussiness(w: _Writer, b: Bussiness) -> None:
    w.open(P + "Bussiness")
    w.leaf(P + "DocumentId", b.document_id)
    w.leaf(P + "BussinessDocType", int(b.bussiness_doc_type))
    w.leaf(P + "BussinessDocReason", b.bussiness_doc_reason)
    w.leaf(P + "Paper", b.paper)
    info = b.bussiness_document_info
    if info is not None:
        w.open(P + "BussinessDocumentInfo")
        w.leaf(P + "DocumentInfo", info.document_info)
        w.leaf(P + "DocumentReceiver", info.document_receiver)
        w.open(P + "ReceiverList")
        for r in info.receivers:
            w.open(P + "Receiver")
            w.leaf(P + "OrganId", r.organ_id)
            w.leaf(P + "ReceiverType", r.receiver_type)
            w.close()
        w.close()
        w.close()
    if b.replacement_info_list is not None:
        w.open(P + "ReplacementInfoList")
        for rep in b.replacement_info_list:
            w.open(P + "ReplacementInfo")
            for doc_id in rep.document_ids:
                w.leaf(P + "DocumentId", doc_id)
            w.open(P + "OrganIdList")
            for organ_id in rep.organ_ids:
                w.leaf(P + "OrganId", organ_id)
            w.close()
            w.close()
        w.close()
    _staff(w, b.staff_info)
    w.close()


def _signature(w: _Writer, signature: bytes | None) -> None:
    if signature:
        w.parts.append("      ")
        w.raw(signature.strip())
        w.parts.append("\n")


def _start(w: _Writer) -> None:
    w.parts.append('<?xml version="1.0" encoding="UTF-8"?>\n')
    w.open("edXML", f' xmlns="{EDXML_NS}" xmlns:edXML="{EDXML_NS}"')
    w.open(P + "edXMLEnvelope")
    w.open(P + "edXMLHeader")
    w.open(P + "MessageHeader")


def _attachments(w: _Writer, attachments: tuple[Attachment, ...]) -> None:
    seen: set[str] = set()
    for att in attachments:
        _require(att.content_id, "Attachment/ContentId")
        if att.content_id in seen:
            raise EdxmlBuildError("EDXML_DUPLICATE_CONTENT_ID",
                                  f"ContentId {att.content_id!r} used twice", "Attachment")
        seen.add(att.content_id)
    w.open("AttachmentEncoded")
    for att in attachments:
        w.open("Attachment")
        w.leaf("ContentId", att.content_id)
        w.leaf("AttachmentName", att.name)
        w.leaf("Description", att.description)
        w.leaf("ContentType", att.content_type)
        w.parts.append(f"{'  ' * w.depth}<{P}ContentTransferEncoded>")
        w.raw(encode_payload(att.content_id, att.name, att.data))
        w.parts.append(f"</{P}ContentTransferEncoded>\n")
        w.close()
    w.close()


def build_edoc(msg: EdocMessage) -> bytes:
    if not msg.to_organs:
        raise EdxmlBuildError("EDXML_BUILD_INVALID", "at least one receiver (To) is required",
                              "MessageHeader/To")
    _require(msg.document_id, "MessageHeader/DocumentId")
    w = _Writer()
    _start(w)
    _organ(w, "From", msg.from_organ)
    for organ in msg.to_organs:
        _organ(w, "To", organ)
    w.leaf(P + "DocumentId", msg.document_id)
    w.open(P + "Code")
    w.leaf(P + "CodeNumber", msg.code.code_number)
    w.leaf(P + "CodeNotation", msg.code.code_notation)
    w.close()
    w.open(P + "PromulgationInfo")
    w.leaf(P + "Place", msg.promulgation_info.place)
    w.leaf(P + "PromulgationDate", msg.promulgation_info.promulgation_date)
    w.close()
    w.open(P + "DocumentType")
    w.leaf(P + "Type", msg.document_type.type)
    w.leaf(P + "TypeDetail", msg.document_type.type_detail)
    w.leaf(P + "TypeName", msg.document_type.type_name)
    w.close()
    w.leaf(P + "Subject", msg.subject)
    w.leaf(P + "Content", msg.content)
    w.open(P + "SignerInfo")
    w.leaf(P + "Competence", msg.signer_info.competence)
    w.leaf(P + "Position", msg.signer_info.position)
    w.leaf(P + "FullName", msg.signer_info.full_name)
    w.close()
    w.leaf(P + "DueDate", msg.due_date)
    _other_info(w, msg.other_info)
    for rf in msg.response_for:
        _response_for(w, rf)
    w.leaf(P + "SteeringType", msg.steering_type)
    if msg.to_places is not None:
        w.open(P + "ToPlaces")
        for place in msg.to_places:
            w.leaf(P + "Place", place)
        w.close()
    w.close()  # MessageHeader
    _trace_list(w, msg.trace_headers, msg.bussiness)
    _signature(w, msg.signature)
    w.close()  # edXMLHeader
    w.open(P + "edXMLBody")
    w.open(P + "edXMLManifest", ' version="1.0"')
    for att in msg.attachments:
        w.open(P + "Reference")
        w.leaf(P + "ContentId", att.content_id)
        w.leaf(P + "ContentType", att.content_type)
        w.leaf(P + "Description", att.description)
        w.leaf(P + "AttachmentName", att.name)
        w.close()
    w.close()
    w.close()  # edXMLBody
    w.close()  # edXMLEnvelope
    _attachments(w, msg.attachments)
    w.close()  # edXML
    return w.result()


def build_status(msg: StatusMessage) -> bytes:
    code = msg.status_code.value if isinstance(msg.status_code, StatusCode) else msg.status_code
    if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isdigit()):
        raise EdxmlBuildError("EDXML_BAD_STATUS_CODE", f"StatusCode {code!r} is not two digits",
                              "MessageHeader/StatusCode")
    if isinstance(msg.status_code, StatusCode) and msg.status_code.requires_reason \
            and not msg.description.strip():
        raise EdxmlBuildError("EDXML_MISSING_REASON", f"status {code} requires a reason",
                              "MessageHeader/Description")
    _require(msg.response_for.document_id, "MessageHeader/ResponseFor/DocumentId")
    w = _Writer()
    _start(w)
    _organ(w, "From", msg.from_organ)
    _response_for(w, msg.response_for)
    _staff(w, msg.staff_info)
    w.leaf(P + "StatusCode", code)
    w.leaf(P + "Description", msg.description)
    w.leaf(P + "Timestamp", dates.format_timestamp(msg.timestamp))
    w.close()  # MessageHeader
    if msg.trace_headers:
        _trace_list(w, msg.trace_headers, None)
    _signature(w, msg.signature)
    w.close()  # edXMLHeader
    w.close()  # edXMLEnvelope
    w.close()  # edXML
    return w.result()


def build(msg: EdocMessage | StatusMessage) -> bytes:
    """Serialise a message in the canonical layout; ``parse(build(m)) == m``."""
    if isinstance(msg, EdocMessage):
        return build_edoc(msg)
    if isinstance(msg, StatusMessage):
        return build_status(msg)
    raise TypeError(f"cannot build {type(msg).__name__}")

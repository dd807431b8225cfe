"""``parse``: edXML bytes to :class:`EdocMessage` or :class:`StatusMessage`.

Parsing does not depend on element order. Elements are matched by local name in the QCVN
namespace (or no namespace, as some producers leave ``AttachmentEncoded`` unqualified);
unknown elements are ignored. Every defect raises an :class:`EdxmlError` subclass carrying the
path of the offending element.
"""

from __future__ import annotations

import copy

from lxml import etree

from .errors import (
    EdxmlAttachmentError,
    EdxmlLimitError,
    EdxmlPolicyError,
    EdxmlStructureError,
    EdxmlValueError,
)
from .limits import DEFAULT_LIMITS, Limits
from .loader import Loaded, load
from .model import (
    XLINK_NS,
    Attachment,
    Bussiness,
    BussinessDocType,
    BussinessDocumentInfo,
    Code,
    DocumentType,
    EdocMessage,
    Organ,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusMessage,
    TraceHeader,
)
from .node import Node
from .payload import decode_payload
from .secrecy import SECRECY_MARKERS, marker_is_secret, text_is_secret


def _organ(node: Node) -> Organ:
    return Organ(
        organ_id=node.req("OrganId"), organ_name=node.str("OrganName"),
        organization_in_charge=node.str("OrganizationInCharge"), organ_add=node.str("OrganAdd"),
        email=node.str("Email"), telephone=node.str("Telephone"), fax=node.str("Fax"),
        website=node.str("Website"))


def _response_for(node: Node) -> ResponseFor:
    return ResponseFor(organ_id=node.str("OrganId"), code=node.str("Code"),
                       promulgation_date=node.date("PromulgationDate"),
                       document_id=node.ident("DocumentId", False))


def _staff(node: Node | None) -> StaffInfo | None:
    if node is None:
        return None
    return StaffInfo(department=node.str("Department"), staff=node.str("Staff"),
                     email=node.str("Email"), mobile=node.str("Mobile"))


def _trace_header(node: Node) -> TraceHeader:
    organ = node.str("OrganId")
    if organ is not None and organ.lower() in ("", "null"):
        organ = None
    return TraceHeader(organ_id=organ, timestamp=node.timestamp("Timestamp"))


def _bussiness(node: Node) -> Bussiness:
    kind = node.int("BussinessDocType", True)
    try:
        doc_type = BussinessDocType(kind)
    except ValueError:
        raise EdxmlValueError("EDXML_BAD_VALUE", f"BussinessDocType {kind} is not 0..3",
                              f"{node.path}/BussinessDocType") from None
    info = None
    info_node = node.one("BussinessDocumentInfo", False)
    if info_node is not None:
        receivers: tuple[Receiver, ...] = ()
        rl = info_node.one("ReceiverList", False)
        if rl is not None:
            receivers = tuple(Receiver(organ_id=r.req("OrganId"),
                                       receiver_type=r.int("ReceiverType"))
                              for r in rl.many("Receiver"))
        info = BussinessDocumentInfo(document_info=info_node.bool("DocumentInfo"),
                                     document_receiver=info_node.bool("DocumentReceiver"),
                                     receivers=receivers)
    replacements = None
    rep_list = node.one("ReplacementInfoList", False)
    if rep_list is not None:
        items = []
        for rep in rep_list.many("ReplacementInfo"):
            doc_ids = tuple(d.text for d in rep.many("DocumentId"))
            if not doc_ids:
                raise EdxmlStructureError("EDXML_MISSING_ELEMENT", "ReplacementInfo needs a "
                                          "DocumentId", f"{rep.path}/DocumentId")
            organs = rep.one("OrganIdList", False)
            organ_ids = tuple(o.text for o in organs.many("OrganId")) if organs else ()
            items.append(ReplacementInfo(document_ids=doc_ids, organ_ids=organ_ids))
        replacements = tuple(items)
    return Bussiness(
        bussiness_doc_type=doc_type, document_id=node.ident("DocumentId", False),
        bussiness_doc_reason=node.str("BussinessDocReason"), paper=node.bool("Paper"),
        bussiness_document_info=info, replacement_info_list=replacements,
        staff_info=_staff(node.one("StaffInfo", False)))


def _refuse_secret(mh: Node) -> None:
    """Secrecy marks (:mod:`.secrecy`) anywhere under ``MessageHeader``, at any depth."""
    for el in mh.el.iter():
        tag = el.tag
        if not isinstance(tag, str):
            continue
        local = tag.rpartition("}")[2]
        if local in SECRECY_MARKERS:
            secret = marker_is_secret("".join(el.itertext()))
        elif local == "SphereOfPromulgation":
            secret = text_is_secret(el.text)
        else:
            continue
        if secret:
            raise EdxmlPolicyError("EDXML_SECRET_DOCUMENT", f"secret document ({local}: "
                                   f"{(el.text or '').strip()[:60]!r}) may not travel over the "
                                   "axis", _path_below(mh, el))


def _path_below(mh: Node, el: etree._Element) -> str:
    """``/edXML/…/MessageHeader/OtherInfo/SecretLevel`` (local names) for ``el`` under ``mh``."""
    names = []
    while el is not mh.el:
        names.append(el.tag.rpartition("}")[2])
        el = el.getparent()
    return mh.path + "".join("/" + n for n in reversed(names))


def _other_info(node: Node | None) -> OtherInfo | None:
    if node is None:
        return None
    appendixes = None
    app = node.one("Appendixes", False)
    if app is not None:
        appendixes = tuple(a.text for a in app.many("Appendix"))
    return OtherInfo(
        priority=node.int("Priority"), sphere_of_promulgation=node.str("SphereOfPromulgation"),
        typer_notation=node.str("TyperNotation"),
        promulgation_amount=node.int("PromulgationAmount"), page_amount=node.int("PageAmount"),
        direction=node.bool("Direction"), appendixes=appendixes)


def _content_id(node: Node, what: str) -> str:
    cid = node.str("ContentId")
    if not cid:
        href = node.el.get(f"{{{XLINK_NS}}}href") or node.el.get("href")
        cid = href.strip() if href else None
    if not cid:
        raise EdxmlStructureError("EDXML_MISSING_ELEMENT", f"{what} without ContentId",
                                  f"{node.path}/ContentId")
    return cid[4:].strip() if cid.lower().startswith("cid:") else cid


def _attachments(root: Node, envelope: Node, loaded: Loaded) -> tuple[Attachment, ...]:
    limits = root.limits
    refs: dict[str, Node] = {}
    body = envelope.one("edXMLBody", False)
    manifest = body.one("edXMLManifest", False) if body is not None else None
    ref_nodes = manifest.many("Reference") if manifest is not None else []
    if len(ref_nodes) > limits.max_attachments:
        raise EdxmlLimitError("EDXML_TOO_MANY_ATTACHMENTS", f"{len(ref_nodes)} references, "
                              f"limit {limits.max_attachments}", manifest.path)  # type: ignore
    for ref in ref_nodes:
        cid = _content_id(ref, "Reference")
        if cid in refs:
            raise EdxmlAttachmentError("EDXML_DUPLICATE_CONTENT_ID",
                                       f"ContentId {cid!r} referenced twice", ref.path)
        refs[cid] = ref
    container = root.one("AttachmentEncoded", False)
    att_nodes = container.many("Attachment") if container is not None else []
    if len(att_nodes) > limits.max_attachments:
        raise EdxmlLimitError("EDXML_TOO_MANY_ATTACHMENTS", f"{len(att_nodes)} attachments, "
                              f"limit {limits.max_attachments}", container.path)  # type: ignore
    seen: set[str] = set()
    result = []
    budget = limits.max_total_attachment_size
    for att in att_nodes:
        cid = _content_id(att, "Attachment")
        if cid in seen:
            raise EdxmlAttachmentError("EDXML_DUPLICATE_CONTENT_ID",
                                       f"two attachments with ContentId {cid!r}", att.path)
        seen.add(cid)
        enc = att.one("ContentTransferEncoded")
        assert enc is not None
        text = enc.el.text or ""
        index = loaded.skeleton.index_of(text)
        if index is not None:
            start, end = loaded.skeleton.spans[index]
            payload = memoryview(loaded.data)[start:end]
        else:
            payload = "".join(enc.el.itertext())
        data = decode_payload(payload, limits, enc.path, budget)
        del payload
        budget -= len(data)
        ref = refs.get(cid)
        name = (ref.str("AttachmentName") if ref else None) or att.str("AttachmentName") or cid
        ctype = ((ref.str("ContentType") if ref else None) or att.str("ContentType")
                 or "application/octet-stream")
        desc = ref.str("Description") if ref is not None and ref.has("Description") else None
        if desc is None:
            desc = att.str("Description")
        result.append(Attachment(content_id=cid, name=name, content_type=ctype, data=data,
                                 description=desc))
    for cid, ref in refs.items():
        if cid not in seen:
            raise EdxmlAttachmentError("EDXML_REFERENCE_WITHOUT_ATTACHMENT",
                                       f"Reference {cid!r} has no Attachment", ref.path)
    return tuple(result)


def _signature(header: Node) -> bytes | None:
    """The ``Signature`` element serialised on its own, without unused inherited namespaces."""
    found = header.kids.get("Signature")
    if not found:
        return None
    element = copy.deepcopy(found[0])
    element.tail = None
    etree.cleanup_namespaces(element)
    return etree.tostring(element)


def _edoc(root: Node, envelope: Node, header: Node, mh: Node, loaded: Loaded) -> EdocMessage:
    to_nodes = mh.many("To")
    if not to_nodes:
        raise EdxmlStructureError("EDXML_MISSING_ELEMENT", "at least one To is required",
                                  f"{mh.path}/To")
    code = mh.one("Code")
    prom = mh.one("PromulgationInfo")
    dtype = mh.one("DocumentType")
    signer = mh.one("SignerInfo")
    assert code and prom and dtype and signer
    _refuse_secret(mh)
    other = _other_info(mh.one("OtherInfo", False))
    to_places = None
    tp = mh.one("ToPlaces", False)
    if tp is not None:
        to_places = tuple(p.text for p in tp.many("Place"))
    traces: tuple[TraceHeader, ...] = ()
    bussiness = None
    tl = header.one("TraceHeaderList", False)
    if tl is not None:
        traces = tuple(_trace_header(t) for t in tl.many("TraceHeader"))
        bn = tl.one("Bussiness", False)
        bussiness = _bussiness(bn) if bn is not None else None
    return EdocMessage(
        from_organ=_organ(mh.one("From")),  # type: ignore[arg-type]
        to_organs=tuple(_organ(t) for t in to_nodes),
        document_id=mh.ident("DocumentId"),  # type: ignore[arg-type]
        code=Code(code_number=code.req("CodeNumber"), code_notation=code.req("CodeNotation")),
        promulgation_info=PromulgationInfo(place=prom.req("Place"),
                                           promulgation_date=prom.date("PromulgationDate", True)),
        document_type=DocumentType(type=dtype.int("Type", True), type_name=dtype.req("TypeName"),
                                   type_detail=dtype.int("TypeDetail")),
        subject=mh.req("Subject"),
        signer_info=SignerInfo(full_name=signer.req("FullName"),
                               competence=signer.str("Competence"),
                               position=signer.str("Position")),
        content=mh.str("Content"), due_date=mh.date("DueDate"), other_info=other,
        response_for=tuple(_response_for(r) for r in mh.many("ResponseFor")),
        steering_type=mh.int("SteeringType"), to_places=to_places, trace_headers=traces,
        bussiness=bussiness, signature=_signature(header),
        attachments=_attachments(root, envelope, loaded))


def _status(header: Node, mh: Node) -> StatusMessage:
    code_node = mh.one("StatusCode")
    assert code_node is not None
    raw = code_node.text
    if len(raw) != 2 or not raw.isascii() or not raw.isdigit():
        raise EdxmlValueError("EDXML_BAD_STATUS_CODE", f"StatusCode {raw!r} is not two digits",
                              code_node.path)
    status = StatusCode.coerce(raw)
    description = mh.req("Description")
    if isinstance(status, StatusCode) and status.requires_reason and not description:
        raise EdxmlValueError("EDXML_MISSING_REASON", f"status {raw} requires a reason in "
                              "Description", f"{mh.path}/Description")
    rf = mh.one("ResponseFor")
    assert rf is not None
    response_for = _response_for(rf)
    rf.ident("DocumentId")  # required in a status message
    tl = header.one("TraceHeaderList", False)
    traces = tuple(_trace_header(t) for t in tl.many("TraceHeader")) if tl else ()
    return StatusMessage(
        from_organ=_organ(mh.one("From")),  # type: ignore[arg-type]
        response_for=response_for, status_code=status, description=description,
        timestamp=mh.timestamp("Timestamp"), staff_info=_staff(mh.one("StaffInfo", False)),
        trace_headers=traces, signature=_signature(header))


def parse(data: bytes, limits: Limits | None = None) -> EdocMessage | StatusMessage:
    """Parse one edXML message; a ``MessageHeader`` with ``StatusCode`` is a status message."""
    limits = limits or DEFAULT_LIMITS
    loaded = load(data, limits)
    root = Node(loaded.root, "/edXML", limits)
    envelope = root.one("edXMLEnvelope")
    header = envelope.one("edXMLHeader")  # type: ignore[union-attr]
    mh = header.one("MessageHeader")  # type: ignore[union-attr]
    assert envelope and header and mh
    if mh.has("StatusCode"):
        return _status(header, mh)
    return _edoc(root, envelope, header, mh, loaded)


def parse_edoc(data: bytes, limits: Limits | None = None) -> EdocMessage:
    """Parse and require a document message."""
    msg = parse(data, limits)
    if not isinstance(msg, EdocMessage):
        raise EdxmlStructureError("EDXML_WRONG_MESSAGE_TYPE", "expected a document message, "
                                  "got a status message", "/edXML")
    return msg


def parse_status(data: bytes, limits: Limits | None = None) -> StatusMessage:
    """Parse and require a status message."""
    msg = parse(data, limits)
    if not isinstance(msg, StatusMessage):
        raise EdxmlStructureError("EDXML_WRONG_MESSAGE_TYPE", "expected a status message, "
                                  "got a document message", "/edXML")
    return msg

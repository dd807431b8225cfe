"""The few edXML facts the axis layer needs: sender, receivers, status summary, one more hop.

The project codec (:mod:`gateway.edxml`) is used first, except for the receivers, which are
read from the header alone. When the codec refuses a package (the axis must still move, and tests
must be able to inject, packages the codec would reject), a tiny safe lxml reading (no entities,
no DTD, no network) looks the values up by local name under ``MessageHeader``. This module never
decides whether a package is valid: that is intake's job.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from gateway import edxml

_PARSER = etree.XMLParser(
    resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, recover=False
)


def _parsed(data: bytes) -> edxml.EdocMessage | edxml.StatusMessage | None:
    try:
        return edxml.parse(data)
    except edxml.EdxmlError:
        return None


def _message_header(data: bytes) -> etree._Element | None:
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError:
        return None
    for element in root.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "MessageHeader":
            return element
    return None


def _local(element: etree._Element, name: str) -> bool:
    return isinstance(element.tag, str) and etree.QName(element).localname == name


def _organ_ids(data: bytes, child: str) -> list[str]:
    header = _message_header(data)
    if header is None:
        return []
    return [
        (sub.text or "").strip()
        for element in header if _local(element, child)
        for sub in element if _local(sub, "OrganId") and (sub.text or "").strip()
    ]


def header_text(data: bytes, *path: str) -> str:
    """Text of ``MessageHeader/<path...>`` (local names, first match), or ``""``."""
    node = _message_header(data)
    for name in path:
        if node is None:
            return ""
        node = next((c for c in node if _local(c, name)), None)
    return "" if node is None else (node.text or "").strip()


def sender_organ_id(data: bytes) -> str | None:
    """``From/OrganId`` of a package, or None when unreadable."""
    msg = _parsed(data)
    if msg is not None:
        return msg.from_organ.organ_id or None
    ids = _organ_ids(data, "From")
    return ids[0] if ids else None


def receiver_organ_ids(data: bytes) -> list[str]:
    """``To/OrganId`` values of a document package, in document order, read from the header
    alone: an axis routes by the header and need not decode the attachments (the codec's full
    parse of a 117 KB package costs ~0.9 ms, this ~0.2 ms)."""
    return _organ_ids(data, "To")


def response_for_organ_ids(data: bytes) -> list[str]:
    """``ResponseFor/OrganId`` values (a status message has exactly one)."""
    msg = _parsed(data)
    if isinstance(msg, edxml.StatusMessage):
        return [msg.response_for.organ_id] if msg.response_for.organ_id else []
    if isinstance(msg, edxml.EdocMessage):
        return [r.organ_id for r in msg.response_for if r.organ_id]
    return _organ_ids(data, "ResponseFor")


def status_fields(data: bytes) -> dict[str, str]:
    """StatusCode, Description, ResponseFor DocumentId/OrganId of a status package."""
    msg = _parsed(data)
    if isinstance(msg, edxml.StatusMessage):
        code = msg.status_code
        return {
            "status_code": code.value if isinstance(code, edxml.StatusCode) else str(code),
            "description": msg.description,
            "document_id": msg.response_for.document_id or "",
            "response_for": msg.response_for.organ_id or "",
        }
    return {
        "status_code": header_text(data, "StatusCode"),
        "description": header_text(data, "Description"),
        "document_id": header_text(data, "ResponseFor", "DocumentId"),
        "response_for": next(iter(_organ_ids(data, "ResponseFor")), ""),
    }


def append_trace(data: bytes, organ_id: str, when: datetime) -> bytes:
    """``data`` with one more ``TraceHeader``; unchanged when the codec cannot read it."""
    try:
        return edxml.append_trace_header(data, organ_id, when)
    except edxml.EdxmlError:
        return data

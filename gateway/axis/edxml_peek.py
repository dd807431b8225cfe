"""The two edXML facts the axis layer needs before the full codec: sender and receivers.

Uses the project codec (:mod:`gateway.edxml`) when it is importable; otherwise a tiny, safe lxml
fallback (no entities, no DTD, no network) that reads ``MessageHeader/From/OrganId``,
``MessageHeader/To/OrganId`` and ``MessageHeader/ResponseFor/OrganId`` by local name.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

_PARSER = etree.XMLParser(
    resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, recover=False
)


def _message_header(data: bytes) -> etree._Element | None:
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError:
        return None
    for element in root.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "MessageHeader":
            return element
    return None


def _organ_ids(data: bytes, child: str) -> list[str]:
    header = _message_header(data)
    if header is None:
        return []
    found = []
    for element in header:
        if not isinstance(element.tag, str) or etree.QName(element).localname != child:
            continue
        for sub in element:
            if isinstance(sub.tag, str) and etree.QName(sub).localname == "OrganId":
                value = (sub.text or "").strip()
                if value:
                    found.append(value)
    return found


def sender_organ_id(data: bytes) -> str | None:
    """``From/OrganId`` of an edXML package, or None when unreadable."""
    ids = _organ_ids(data, "From")
    return ids[0] if ids else None


def receiver_organ_ids(data: bytes) -> list[str]:
    """``To/OrganId`` values of a document package, in document order."""
    return _organ_ids(data, "To")


def response_for_organ_ids(data: bytes) -> list[str]:
    """``ResponseFor/OrganId`` values of a status (or reply) package."""
    return _organ_ids(data, "ResponseFor")


def header_text(data: bytes, *path: str) -> str:
    """Text of ``MessageHeader/<path...>`` (local names, first match), or ``""``."""
    node = _message_header(data)
    for name in path:
        if node is None:
            return ""
        node = next(
            (c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == name),
            None,
        )
    return "" if node is None else (node.text or "").strip()


def append_trace(data: bytes, organ_id: str, when: datetime) -> bytes:
    """Append ``TraceHeader{OrganId, Timestamp yyyy/MM/dd HH:mm:ss}`` to ``TraceHeaderList``.

    Prefers the codec's ``append_trace_header``; the fallback creates the list after the
    ``MessageHeader`` when missing. Unparsable input is returned unchanged.
    """
    try:
        from gateway.edxml import append_trace_header  # type: ignore[attr-defined]
    except ImportError:
        append_trace_header = None
    if append_trace_header is not None:
        return append_trace_header(data, organ_id, when)
    header = _message_header(data)
    if header is None:
        return data
    ns = etree.QName(header).namespace
    q = (lambda n: f"{{{ns}}}{n}") if ns else (lambda n: n)
    parent = header.getparent()
    trace_list = next(
        (c for c in parent if isinstance(c.tag, str)
         and etree.QName(c).localname == "TraceHeaderList"),
        None,
    )
    if trace_list is None:
        trace_list = etree.Element(q("TraceHeaderList"), nsmap=header.nsmap)
        header.addnext(trace_list)
    trace = etree.SubElement(trace_list, q("TraceHeader"))
    etree.SubElement(trace, q("OrganId")).text = organ_id
    etree.SubElement(trace, q("Timestamp")).text = f"{when:%Y/%m/%d %H:%M:%S}"
    return etree.tostring(header.getroottree(), xml_declaration=True, encoding="UTF-8")

"""``append_trace_header``: add one hop to an edXML message without touching its attachments.

Every party that forwards a message appends a ``TraceHeader`` {``OrganId``, ``Timestamp``} to
``edXMLHeader/TraceHeaderList`` (created after ``MessageHeader`` when absent). The attachment
payloads are copied byte for byte: only the small skeleton is re-serialised.
"""

from __future__ import annotations

import re
from datetime import datetime

from lxml import etree

from . import dates
from .errors import EdxmlStructureError
from .limits import DEFAULT_LIMITS, Limits
from .loader import load
from .model import EDXML_NS

_N = f"{{{EDXML_NS}}}"


def _child(parent: etree._Element, local: str) -> etree._Element | None:
    for child in parent:
        if isinstance(child.tag, str) and etree.QName(child).localname == local \
                and etree.QName(child).namespace in (EDXML_NS, None):
            return child
    return None


def _require(parent: etree._Element, local: str, path: str) -> etree._Element:
    found = _child(parent, local)
    if found is None:
        raise EdxmlStructureError("EDXML_MISSING_ELEMENT", f"required element {local} is "
                                  "missing", f"{path}/{local}")
    return found


def append_trace_header(data: bytes, organ_id: str, when: datetime,
                        limits: Limits | None = None) -> bytes:
    """Return ``data`` with one more ``TraceHeader`` (``when`` written in Vietnam time)."""
    loaded = load(data, limits or DEFAULT_LIMITS)
    root = loaded.root
    envelope = _require(root, "edXMLEnvelope", "/edXML")
    header = _require(envelope, "edXMLHeader", "/edXML/edXMLEnvelope")
    message_header = _require(header, "MessageHeader", "/edXML/edXMLEnvelope/edXMLHeader")
    trace_list = _child(header, "TraceHeaderList")
    if trace_list is None:
        trace_list = etree.Element(_N + "TraceHeaderList")
        message_header.addnext(trace_list)
        trace_list.tail = message_header.tail
    traces = [c for c in trace_list if isinstance(c.tag, str)
              and etree.QName(c).localname == "TraceHeader"]
    trace = etree.Element(_N + "TraceHeader")
    etree.SubElement(trace, _N + "OrganId").text = organ_id
    etree.SubElement(trace, _N + "Timestamp").text = dates.format_timestamp(when)
    if traces:
        last = traces[-1]
        last.addnext(trace)
        trace.tail = last.tail
    else:
        trace_list.insert(0, trace)
        trace.tail = trace_list.text
    out = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    skeleton = loaded.skeleton
    if not skeleton.spans:
        return out
    marker = re.compile(rb"@@edxml:" + skeleton.nonce.encode("ascii") + rb":(\d+)@@")
    view = memoryview(loaded.data)
    pieces: list[bytes | memoryview] = []
    pos = 0
    for m in marker.finditer(out):
        pieces.append(out[pos:m.start()])
        start, end = skeleton.spans[int(m.group(1))]
        pieces.append(view[start:end])
        pos = m.end()
    pieces.append(out[pos:])
    return b"".join(pieces)

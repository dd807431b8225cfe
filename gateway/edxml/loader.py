"""Hardened loading of untrusted edXML bytes into an lxml tree.

Rules: UTF-8 only; any DOCTYPE or ENTITY declaration is refused outright (so no entity
expansion, no external DTD, no billion laughs); the parser resolves no entities, loads no DTD
and touches no network; sizes are bounded by :class:`Limits`. Attachment payloads are cut out
before parsing (see :mod:`.payload`), so lxml only sees a small skeleton.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from lxml import etree

from .errors import EdxmlLimitError, EdxmlSecurityError, EdxmlStructureError, EdxmlSyntaxError
from .limits import Limits
from .model import EDXML_NS
from .payload import Skeleton, cut_payloads

_DECL = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml\s([^?>]*)\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_UTF8_NAMES = {b"utf-8", b"utf8"}
_HUGE_TEXT = 9 * 1024 * 1024
_local = threading.local()


def _parser(huge: bool) -> etree.XMLParser:
    """A per-thread parser (lxml parsers must not be shared between threads)."""
    name = "huge" if huge else "normal"
    parser = getattr(_local, name, None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
            huge_tree=huge, collect_ids=False, remove_blank_text=False)
        setattr(_local, name, parser)
    return parser


@dataclass(slots=True)
class Loaded:
    root: etree._Element
    skeleton: Skeleton
    data: bytes


def check_prolog(data: bytes) -> None:
    """Refuse empty input, non-UTF-8 encodings and any DOCTYPE/ENTITY declaration."""
    if not data or (len(data) <= 4096 and not data.strip()):
        raise EdxmlSyntaxError("EDXML_EMPTY", "the document is empty")
    head = data[:4]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
        raise EdxmlSyntaxError("EDXML_ENCODING", "only UTF-8 is accepted (UTF-16/32 found)")
    m = _DECL.match(data[:1024])
    if m is None and data.lstrip(b"\xef\xbb\xbf \t\r\n")[:5] == b"<?xml":
        # a declaration padded past 1024 bytes would hide its encoding from this check
        raise EdxmlSyntaxError("EDXML_NOT_WELL_FORMED",
                               "the XML declaration does not end within 1024 bytes")
    if m:
        enc = _ENCODING.search(m.group(1))
        if enc and enc.group(1).lower() not in _UTF8_NAMES:
            raise EdxmlSyntaxError(
                "EDXML_ENCODING",
                f"declared encoding {enc.group(1).decode('ascii')!r}: only UTF-8 is accepted")
    if len(data) > 4096 and not data[:4096].strip() and not data.strip():
        raise EdxmlSyntaxError("EDXML_EMPTY", "the document is empty")
    first = _FIRST_ELEMENT.search(data)
    prolog = data[: first.start()] if first else data
    # ENTITY declarations can only live in a DOCTYPE; the tree's docinfo is checked again
    # after parsing.
    if b"<!DOCTYPE" in prolog.upper():
        raise EdxmlSecurityError("EDXML_DTD_FORBIDDEN", "DOCTYPE and ENTITY declarations are "
                                 "not allowed in edXML")


def parse_tree(xml: bytes) -> etree._Element:
    """Parse bytes with the hardened parser, mapping lxml errors to codec errors."""
    try:
        root = etree.fromstring(xml, _parser(len(xml) > _HUGE_TEXT))
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        code = "EDXML_NOT_WELL_FORMED"
        if "UTF-8" in text or "encoding" in text.lower() or "Char 0x" in text:
            code = "EDXML_ENCODING"
        raise EdxmlSyntaxError(code, f"not well-formed XML: {text}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise EdxmlSecurityError("EDXML_DTD_FORBIDDEN", "DOCTYPE is not allowed in edXML")
    return root


def load(data: bytes, limits: Limits) -> Loaded:
    """Check, cut payloads, parse; verify the root is ``{QCVN ns}edXML``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("edXML must be given as bytes")
    data = bytes(data) if not isinstance(data, bytes) else data
    if len(data) > limits.max_document_size:
        raise EdxmlLimitError("EDXML_DOCUMENT_TOO_LARGE",
                              f"document of {len(data)} bytes exceeds {limits.max_document_size}")
    check_prolog(data)
    skeleton = cut_payloads(data)
    root = parse_tree(skeleton.xml)
    qname = etree.QName(root)
    if qname.localname != "edXML":
        raise EdxmlStructureError("EDXML_WRONG_ROOT", f"root element is {qname.localname!r}, "
                                  "expected 'edXML'", f"/{qname.localname}")
    if qname.namespace != EDXML_NS:
        raise EdxmlStructureError(
            "EDXML_WRONG_NAMESPACE",
            f"root namespace is {qname.namespace!r}, expected {EDXML_NS!r}", "/edXML")
    return Loaded(root, skeleton, data)

"""Helpers to mutate edXML bytes in tests (lxml on small documents)."""

from __future__ import annotations

from lxml import etree

from gateway.edxml import EDXML_NS

NS = {"e": EDXML_NS}


def tree(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def to_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def remove(data: bytes, xpath: str) -> bytes:
    """Remove every element matching ``xpath`` (prefix ``e:`` = the edXML namespace)."""
    root = tree(data)
    found = root.xpath(xpath, namespaces=NS)
    assert found, f"nothing matches {xpath}"
    for el in found:
        el.getparent().remove(el)
    return to_bytes(root)


def set_text(data: bytes, xpath: str, text: str | None) -> bytes:
    root = tree(data)
    found = root.xpath(xpath, namespaces=NS)
    assert found, f"nothing matches {xpath}"
    for el in found:
        el.text = text
    return to_bytes(root)

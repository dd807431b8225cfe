"""``Node``: an lxml element with its path, children grouped by local name, typed readers.

Matching is by local name in the QCVN namespace or no namespace (``Signature`` in any
namespace); every reader raises an :class:`EdxmlError` subclass carrying the element path.
"""

from __future__ import annotations

from datetime import date, datetime

from lxml import etree

from . import dates
from .errors import EdxmlLimitError, EdxmlStructureError, EdxmlValueError
from .limits import Limits
from .model import EDXML_NS

_MAX_ID = 255


class Node:
    """An element with its path and its edXML children grouped by local name."""

    __slots__ = ("el", "kids", "limits", "path")

    def __init__(self, el: etree._Element, path: str, limits: Limits) -> None:
        self.el = el
        self.path = path
        self.limits = limits
        kids: dict[str, list[etree._Element]] = {}
        for child in el:
            tag = child.tag
            if not isinstance(tag, str):
                continue  # comments, processing instructions
            if tag[0] == "{":
                ns, _, local = tag[1:].partition("}")
                if ns != EDXML_NS and local != "Signature":
                    continue
            else:
                local = tag
            kids.setdefault(local, []).append(child)
        self.kids = kids

    def has(self, name: str) -> bool:
        return name in self.kids

    def one(self, name: str, required: bool = True) -> Node | None:
        found = self.kids.get(name)
        path = f"{self.path}/{name}"
        if not found:
            if required:
                raise EdxmlStructureError("EDXML_MISSING_ELEMENT",
                                          f"required element {name} is missing", path)
            return None
        if len(found) > 1:
            raise EdxmlStructureError("EDXML_DUPLICATE_ELEMENT",
                                      f"element {name} must occur once", f"{path}[2]")
        return Node(found[0], path, self.limits)

    def many(self, name: str) -> list[Node]:
        found = self.kids.get(name, [])
        if len(found) == 1:
            return [Node(found[0], f"{self.path}/{name}", self.limits)]
        return [Node(el, f"{self.path}/{name}[{i}]", self.limits)
                for i, el in enumerate(found, 1)]

    @property
    def text(self) -> str:
        value = "".join(self.el.itertext())
        if len(value) > self.limits.max_text_length:
            raise EdxmlLimitError("EDXML_TEXT_TOO_LONG",
                                  f"text of {len(value)} characters is too long", self.path)
        return value.strip()

    def str(self, name: str, required: bool = False) -> str | None:
        node = self.one(name, required)
        return None if node is None else node.text

    def req(self, name: str) -> str:
        return self.one(name, True).text  # type: ignore[union-attr]

    def int(self, name: str, required: bool = False) -> int | None:
        node = self.one(name, required)
        if node is None:
            return None
        text = node.text
        if not text and not required:
            return None
        try:
            return int(text)
        except ValueError:
            raise EdxmlValueError("EDXML_BAD_INTEGER", f"{text!r} is not an integer",
                                  node.path) from None

    def bool(self, name: str) -> bool | None:
        node = self.one(name, False)
        if node is None or not node.text:
            return None
        text = node.text.lower()
        if text in ("1", "true"):
            return True
        if text in ("0", "false"):
            return False
        raise EdxmlValueError("EDXML_BAD_VALUE", f"{node.text!r} is not a boolean (0/1)",
                              node.path)

    def date(self, name: str, required: bool = False) -> date | None:
        node = self.one(name, required)
        if node is None or (not node.text and not required):
            return None
        try:
            return dates.parse_date(node.text)
        except ValueError:
            raise EdxmlValueError("EDXML_BAD_DATE", f"{node.text!r} is not a date "
                                  "(yyyy/MM/dd)", node.path) from None

    def timestamp(self, name: str) -> datetime:
        node = self.one(name, True)
        assert node is not None
        try:
            return dates.parse_timestamp(node.text)
        except ValueError:
            raise EdxmlValueError("EDXML_BAD_DATE", f"{node.text!r} is not a timestamp "
                                  "(yyyy/MM/dd HH:mm:ss)", node.path) from None

    def ident(self, name: str, required: bool = True) -> str | None:
        node = self.one(name, required)
        if node is None:
            return None
        value = node.text
        if required and not value:
            raise EdxmlValueError("EDXML_EMPTY_VALUE", f"{name} must not be empty", node.path)
        if len(value) > _MAX_ID:
            raise EdxmlValueError("EDXML_VALUE_TOO_LONG",
                                  f"{name} longer than {_MAX_ID} characters", node.path)
        return value

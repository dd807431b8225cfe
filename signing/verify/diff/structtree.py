"""Structure tree additions for new widget annotations (ISO 32000-2 §14.7, tagged PDF).

A tagged document that gets a new signature field also gets a structure element for its widget
(§14.7.5.4 object references ``/OBJR``; §14.8.4.7.4 form elements): new ``/K`` entries of the
structure tree root, new ``/ParentTree`` number-tree entries (§14.7.5.4: the widget's
``/StructParent`` key maps to its element) and a higher ``/ParentTreeNextKey``.
:class:`StructTreeAdditionRule` accepts exactly that, at FORM_FILLING: new elements whose
content is only object references to *new* widget annotations. A new element that marks page
content (an MCID, an ``/MCR``) or refers to any existing object (a page, an existing
annotation) is not an addition for a new widget: left unexplained, hence refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver
from pyhanko.sign.diff_analysis import (
    ModificationLevel,
    QualifiedWhitelistRule,
    ReferenceUpdate,
)
from pyhanko.sign.diff_analysis.commons import compare_dicts

from signing.verify.diff.equality import unchanged_since

__all__ = ["StructTreeAdditionRule"]

_FORM = ModificationLevel.FORM_FILLING
_ROOT_KEYS = frozenset({"/K", "/ParentTree", "/ParentTreeNextKey"})
#: keys of a new structure element (§14.7.2 Table 355); ``/A`` only as direct attributes.
_ELEM_KEYS = frozenset({"/Type", "/S", "/P", "/K", "/Pg", "/T", "/Lang", "/Alt", "/ActualText",
                        "/E", "/ID", "/C", "/A"})
_MAX_DEPTH = 16


class _Refused(Exception):
    """This change is not a structure addition for new widgets (left to the other rules)."""


def _items(value: generic.PdfObject | None) -> list[generic.PdfObject]:
    if value is None:
        return []
    if isinstance(value, generic.ArrayObject):
        return list(value)
    return [value]


def _no_refs(obj: generic.PdfObject, depth: int = 0) -> bool:
    if isinstance(obj, generic.IndirectObject) or depth > _MAX_DEPTH:
        return False
    if isinstance(obj, generic.DictionaryObject):
        return all(_no_refs(v, depth + 1) for v in obj.values())
    if isinstance(obj, generic.ArrayObject):
        return all(_no_refs(v, depth + 1) for v in obj)
    return True


class _Check:
    def __init__(self, old: HistoricalResolver, new: HistoricalResolver) -> None:
        self.old, self.new = old, new
        self.cleared: set[generic.Reference] = set()
        self.elements: set[generic.Reference] = set()

    def new_ref(self, obj: generic.PdfObject) -> generic.Reference:
        if not isinstance(obj, generic.IndirectObject) or not self.old.is_ref_unassignable(
                obj.reference):
            raise _Refused("not a new object")
        return obj.reference

    def element(self, ref: generic.Reference, parent: generic.Reference, depth: int) -> None:
        if depth > _MAX_DEPTH or ref in self.elements:
            raise _Refused("structure too deep or shared")
        elem = self.new(ref)
        if not isinstance(elem, generic.DictionaryObject) or isinstance(
                elem, generic.StreamObject):
            raise _Refused("element is not a dictionary")
        if set(elem.keys()) - _ELEM_KEYS or elem.get("/Type", "/StructElem") != "/StructElem":
            raise _Refused("unexpected element keys")
        if not isinstance(elem.raw_get("/P"), generic.IndirectObject) or (
                elem.raw_get("/P").reference != parent):
            raise _Refused("element /P is not its parent")
        if "/A" in elem and not _no_refs(elem.raw_get("/A")):
            raise _Refused("attributes must be direct")
        self.elements.add(ref)
        kids = elem.raw_get("/K") if "/K" in elem else None
        if isinstance(kids, generic.IndirectObject):
            self.cleared.add(self.new_ref(kids))
            kids = kids.get_object()
        content = _items(kids)
        if not content:
            raise _Refused("element without content")
        for kid in content:
            self.content(kid, ref, depth + 1)

    def content(self, kid: generic.PdfObject, parent: generic.Reference, depth: int) -> None:
        if isinstance(kid, generic.IndirectObject):
            ref = self.new_ref(kid)
            value = kid.get_object()
            if isinstance(value, generic.DictionaryObject) and value.get("/Type") == "/OBJR":
                self.cleared.add(ref)
                self.objr(value)
            else:
                self.element(ref, parent, depth)
        elif isinstance(kid, generic.DictionaryObject) and kid.get("/Type") == "/OBJR":
            self.objr(kid)
        else:  # an MCID (integer) or a marked-content reference: existing page content
            raise _Refused("new element marks page content")

    def objr(self, objr: generic.DictionaryObject) -> None:
        if set(objr.keys()) - {"/Type", "/Obj", "/Pg"}:
            raise _Refused("unexpected /OBJR keys")
        target = self.new(self.new_ref(objr.raw_get("/Obj")))
        if not isinstance(target, generic.DictionaryObject) or target.get(
                "/Subtype") != "/Widget":
            raise _Refused("/OBJR does not reference a new widget annotation")
        if "/Pg" in objr and not isinstance(objr.raw_get("/Pg"), generic.IndirectObject):
            raise _Refused("/Pg must be a reference")

    def parent_tree(self, old_pt_raw, new_pt_raw) -> None:
        old_pt, new_pt = _resolve(old_pt_raw), _resolve(new_pt_raw)
        if not isinstance(new_pt, generic.DictionaryObject):
            raise _Refused("/ParentTree is not a dictionary")
        old_pt = old_pt if isinstance(old_pt, generic.DictionaryObject) else (
            generic.DictionaryObject())
        if "/Kids" in old_pt or "/Kids" in new_pt:
            raise _Refused("only flat parent trees are handled")
        if not compare_dicts(old_pt, new_pt, frozenset({"/Nums"}), raise_exc=False):
            raise _Refused("parent tree changed beyond /Nums")
        self._changed_container(old_pt_raw, new_pt_raw)
        old_nums_raw, new_nums_raw = _get(old_pt, "/Nums"), _get(new_pt, "/Nums")
        self._changed_container(old_nums_raw, new_nums_raw)
        old_nums, new_nums = _items(_resolve(old_nums_raw)), _items(_resolve(new_nums_raw))
        if len(new_nums) % 2 or len(old_nums) % 2:
            raise _Refused("odd /Nums")
        old_map = dict(zip(old_nums[::2], old_nums[1::2], strict=True))
        for key, value in zip(new_nums[::2], new_nums[1::2], strict=True):
            if key in old_map:
                if old_map.pop(key) != value:
                    raise _Refused("parent tree entry changed")
            elif not (isinstance(value, generic.IndirectObject)
                      and value.reference in self.elements):
                raise _Refused("new parent tree entry is not a new element")
        if old_map:
            raise _Refused("parent tree entries removed")

    def _changed_container(self, old_raw, new_raw) -> None:
        """An indirect container written again (same or new number) is cleared here."""
        if isinstance(new_raw, generic.IndirectObject):
            ref = new_raw.reference
            if self.old.is_ref_unassignable(ref):
                self.cleared.add(ref)
            elif old_raw == new_raw and not unchanged_since(self.old, self.new, ref):
                self.cleared.add(ref)
            elif old_raw != new_raw:
                raise _Refused("container swapped for an existing object")


def _get(d: generic.DictionaryObject, key: str):
    try:
        return d.raw_get(key)
    except KeyError:
        return None


def _resolve(value):
    return value.get_object() if isinstance(value, generic.IndirectObject) else value


class StructTreeAdditionRule(QualifiedWhitelistRule):
    """See the module docstring. Anything else in the structure tree stays unexplained."""

    def apply_qualified(self, old: HistoricalResolver, new: HistoricalResolver,
                        ) -> Iterable[tuple[ModificationLevel, ReferenceUpdate]]:
        try:
            old_raw = old.root.raw_get("/StructTreeRoot")
            new_raw = new.root.raw_get("/StructTreeRoot")
        except KeyError:
            return
        if not isinstance(old_raw, generic.IndirectObject) or old_raw != new_raw:
            return
        ref = old_raw.reference
        if unchanged_since(old, new, ref):
            return
        try:
            yield from self._additions(old, new, ref)
        except (_Refused, ValueError, TypeError, KeyError):
            return

    def _additions(self, old: HistoricalResolver, new: HistoricalResolver,
                   ref: generic.Reference) -> Iterator[tuple[ModificationLevel, ReferenceUpdate]]:
        old_root, new_root = old(ref), new(ref)
        if not isinstance(new_root, generic.DictionaryObject) or not compare_dicts(
                old_root, new_root, _ROOT_KEYS, raise_exc=False):
            raise _Refused("structure tree root changed beyond its additions")
        check = _Check(old, new)
        old_k, new_k = _get(old_root, "/K"), _get(new_root, "/K")
        check._changed_container(old_k, new_k)
        old_items, new_items = _items(_resolve(old_k)), _items(_resolve(new_k))
        if new_items[:len(old_items)] != old_items:
            raise _Refused("existing structure tree kids changed")
        for item in new_items[len(old_items):]:
            check.element(check.new_ref(item), ref, 0)
        check.parent_tree(_get(old_root, "/ParentTree"), _get(new_root, "/ParentTree"))
        old_next, new_next = _get(old_root, "/ParentTreeNextKey"), _get(
            new_root, "/ParentTreeNextKey")
        if old_next != new_next and not (
                isinstance(new_next, generic.NumberObject)
                and (old_next is None or new_next > old_next)):
            raise _Refused("/ParentTreeNextKey decreased")
        if not check.elements:
            raise _Refused("structure tree changed without new elements")
        # The root's dictionary was compared key by key; it is also every element's /P.
        yield _FORM, ReferenceUpdate(ref)
        for cleared in check.cleared | check.elements:
            yield _FORM, ReferenceUpdate(cleared)

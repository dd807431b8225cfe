"""Semantic equality of PDF objects across two revisions, and the rule built on it.

ISO 32000-2 §7.3.10: an indirect reference stands for its object; which object number holds a
value does not change what the document shows. Stock pyHanko only ignores an object overwritten
with an identical copy *under the same number*; producers also re-serialise unchanged values
under new numbers (an appearance stream ``/AP /N`` replaced by a fresh stream with the same bytes
and dictionary). :func:`same_value` compares the old value (as the signed revision reads it) with
the new one (as the later revision reads it), following references on both sides;
:class:`EquivalentOverrideRule` clears an overwritten object whose new value is equal in that
sense, with the new objects it took from.

Object identity does matter where a reference names *which* object is meant (a field's
``/Parent``, an annotation's ``/P``, the page tree, structure elements): a deep-equal copy there
is another object. References in those places must keep their number (see
:data:`IDENTITY_KEYS`, :data:`IDENTITY_TYPES`).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver
from pyhanko.sign.diff_analysis import ReferenceUpdate, WhitelistRule

__all__ = ["IDENTITY_KEYS", "IDENTITY_TYPES", "EquivalentOverrideRule", "same_value",
           "unchanged_since"]

#: keys whose reference designates a particular object, not a value.
IDENTITY_KEYS = frozenset({"/Parent", "/Kids", "/P", "/Pg", "/Obj", "/Popup", "/IRT", "/Annots",
                           "/V", "/StructTreeRoot", "/ParentTree"})
#: dictionary types that are objects in their own right (page tree, annotations, signatures).
IDENTITY_TYPES = frozenset({"/Page", "/Pages", "/Annot", "/Sig", "/DocTimeStamp", "/StructElem",
                            "/StructTreeRoot", "/Catalog", "/OBJR", "/MCR"})
_MAX_DEPTH = 64
_MAX_NODES = 20_000

_PRIMITIVES = (generic.NumberObject, generic.FloatObject, generic.BooleanObject,
               generic.NameObject, generic.NullObject)
_STRINGS = (generic.TextStringObject, generic.ByteStringObject)


def unchanged_since(old: HistoricalResolver, new: HistoricalResolver,
                    ref: generic.Reference) -> bool:
    """``ref`` reads from the same bytes in both revisions (written at or before ``old``)."""
    xrefs = old.reader.xrefs
    before = xrefs.get_historical_ref(ref, old.revision)
    return before is not None and before == xrefs.get_historical_ref(ref, new.revision)


class _Walk:
    def __init__(self, old: HistoricalResolver, new: HistoricalResolver) -> None:
        self.old, self.new = old, new
        self.assumed: set[tuple[generic.Reference, generic.Reference]] = set()
        self.new_refs: set[generic.Reference] = set()
        self.nodes = 0

    def eq(self, a: generic.PdfObject, b: generic.PdfObject, depth: int, key: str | None,
           ) -> bool:
        self.nodes += 1
        if depth > _MAX_DEPTH or self.nodes > _MAX_NODES:
            return False
        a_ind = isinstance(a, generic.IndirectObject)
        b_ind = isinstance(b, generic.IndirectObject)
        if a_ind and b_ind:
            ra, rb = a.reference, b.reference
            if ra == rb and unchanged_since(self.old, self.new, ra):
                return True
            if ra != rb and key in IDENTITY_KEYS:
                return False
            if (ra, rb) in self.assumed:  # co-inductive: a cycle that matched so far
                return True
            self.assumed.add((ra, rb))
            a_val, b_val = self.old(ra), self.new(rb)
            if ra != rb and _is_identity_object(a_val):
                return False
            if ra != rb:
                if not self.old.is_ref_unassignable(rb):
                    return False  # swapped for another *existing* object
                self.new_refs.add(rb)
            return self.eq(a_val, b_val, depth + 1, None)
        if a_ind or b_ind:
            return False  # direct <-> indirect: keep it simple and strict
        if isinstance(a, _PRIMITIVES):
            return type(a) is type(b) and a == b
        if isinstance(a, _STRINGS):
            return isinstance(b, _STRINGS) and a.original_bytes == b.original_bytes
        if isinstance(a, generic.ArrayObject):
            return (isinstance(b, generic.ArrayObject) and len(a) == len(b)
                    and all(self.eq(x, y, depth + 1, key) for x, y in zip(a, b, strict=True)))
        if isinstance(a, generic.StreamObject):
            if not (isinstance(b, generic.StreamObject) and a.encoded_data == b.encoded_data):
                return False
        elif isinstance(b, generic.StreamObject):
            return False
        if isinstance(a, generic.DictionaryObject):
            return (isinstance(b, generic.DictionaryObject) and set(a.keys()) == set(b.keys())
                    and all(self.eq(a.raw_get(k), b.raw_get(k), depth + 1, k) for k in a))
        return False


def _is_identity_object(obj: generic.PdfObject) -> bool:
    if not isinstance(obj, generic.DictionaryObject):
        return False
    kind = obj.get("/Type")
    return (kind in IDENTITY_TYPES or ("/Subtype" in obj and obj.get("/Subtype") == "/Widget")
            or "/FT" in obj or "/T" in obj)


def same_value(old: HistoricalResolver, a: generic.PdfObject | None, new: HistoricalResolver,
               b: generic.PdfObject | None,
               new_refs: set[generic.Reference] | None = None) -> bool:
    """Whether ``a`` (read in ``old``) and ``b`` (read in ``new``) are the same PDF value.

    References are followed on both sides; a reference to another object number is equal only
    to a *new* object with an equal value, and never for :data:`IDENTITY_KEYS` or
    :data:`IDENTITY_TYPES`. ``None`` (key absent) equals only ``None``. The new objects the
    match went through are added to ``new_refs``. Bounded (depth and node count): too large a
    comparison answers ``False`` (different), never ``True``.
    """
    if a is None or b is None:
        return a is None and b is None
    walk = _Walk(old, new)
    result = walk.eq(a, b, 0, None)
    if result and new_refs is not None:
        new_refs.update(walk.new_refs)
    return result


class EquivalentOverrideRule(WhitelistRule):
    """An existing object overwritten with an equal value (ISO 32000-2 §7.3.10) is no change.

    For every object of the signed revision that the later revision writes again, its new value
    is compared with :func:`same_value`; if equal, the object and the new objects its new value
    uses (a re-serialised appearance stream, say) are cleared. Meant for LTA_UPDATES (nothing
    shown changes)."""

    def apply(self, old: HistoricalResolver, new: HistoricalResolver,
              ) -> Iterable[ReferenceUpdate]:
        xrefs = old.reader.xrefs
        for ref in new.explicit_refs_in_revision():
            if old.is_ref_unassignable(ref) or xrefs.get_historical_ref(ref, old.revision) is None:
                continue
            found: set[generic.Reference] = set()
            if same_value(old, old(ref), new, new(ref), found):
                yield ReferenceUpdate(ref)
                yield from (ReferenceUpdate(r) for r in found)

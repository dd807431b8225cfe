"""Comments added after a signature: level ANNOTATIONS (ISO 32000-2 §12.8.2.2.2, DocMDP P=3).

Whether ANNOTATIONS keeps a signature valid is the verdict's business (:mod:`signing.verify`:
with no DocMDP, or P=3). These rules only say which later changes *are* annotation changes:

* :class:`AnnotationAdditionRule` — comments appended to a page's ``/Annots``: sticky notes
  (§12.5.6.4 text annotations: "when closed, the annotation shall appear as an icon", at most
  :data:`ICON_MAX` points a side) and their pop-up windows (§12.5.6.14, drawn by the viewer:
  no appearance stream of their own): new annotation objects, appended after the existing
  ones (whose order, hence stacking, stays), with no action (``/A``, ``/AA``), no file
  attachment, nothing else on the page changed, and not covering an annotation the page
  already had (a signature's or a field's appearance). Existing annotations never change here.
  Free text annotations (§12.5.6.6: text "displayed directly on the page", of any size and
  appearance) are not comments here: over the signed page content they are the "evil
  annotation" attack (Mainka et al., IEEE S&P 2021), indistinguishable from the content.
* :class:`NamesAppearanceRule` — the catalog's name dictionary may gain entries in its
  ``/AP`` tree (§7.7.4, named appearance streams) and nothing else: never ``/JavaScript``
  or ``/EmbeddedFiles`` (the catalog rule is told to leave ``/Names`` to this rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver, RawPdfPath
from pyhanko.sign.diff_analysis import (
    ModificationLevel,
    QualifiedWhitelistRule,
    ReferenceUpdate,
    SuspiciousModification,
)
from pyhanko.sign.diff_analysis.commons import compare_dicts

from signing.verify.diff.equality import unchanged_since

__all__ = ["ALLOWED_SUBTYPES", "ICON_MAX", "AnnotationAdditionRule", "NamesAppearanceRule"]

_ANNOT = ModificationLevel.ANNOTATIONS
#: comment annotations that may be added (no actions, no files, no multimedia, no free text).
ALLOWED_SUBTYPES = frozenset({"/Text", "/Popup"})
#: the largest side of a sticky note's icon rectangle, in points (viewers draw 20-24).
ICON_MAX = 32.0
#: keys that bring actions, scripts or files into a new annotation or what it uses.
FORBIDDEN_KEYS = frozenset({"/A", "/AA", "/JS", "/FS", "/EF", "/RichMedia", "/Movie", "/Sound"})
_MAX_DEPTH = 32


def _raw(d, key: str):
    try:
        return d.raw_get(key)
    except (KeyError, AttributeError):
        return None


def _refs(value) -> list[generic.Reference] | None:
    value = value.get_object() if isinstance(value, generic.IndirectObject) else value
    if value is None:
        return []
    if not isinstance(value, generic.ArrayObject) or not all(
            isinstance(v, generic.IndirectObject) for v in value):
        return None
    return [v.reference for v in value]


def _rect(annot) -> tuple[float, float, float, float] | None:
    try:
        x1, y1, x2, y2 = (float(v) for v in annot["/Rect"])
    except (KeyError, TypeError, ValueError):
        return None
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _overlap(a, b) -> bool:
    return a is not None and b is not None and (
        min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]))


def _clean(obj: generic.PdfObject, depth: int = 0) -> bool:
    """No action, script or file in the direct content of ``obj``."""
    if depth > _MAX_DEPTH:
        return False
    if isinstance(obj, generic.DictionaryObject):
        if FORBIDDEN_KEYS & set(obj.keys()):
            return False
        return all(_clean(v, depth + 1) for v in obj.values()
                   if not isinstance(v, generic.IndirectObject))
    if isinstance(obj, generic.ArrayObject):
        return all(_clean(v, depth + 1) for v in obj if not isinstance(v, generic.IndirectObject))
    return True


def _shown_as_comment(annot: generic.DictionaryObject, rect) -> bool:
    """A sticky note is an icon (§12.5.6.4), a pop-up a window the viewer draws (§12.5.6.14,
    so no ``/AP`` of its own): neither can paint text or boxes of any size over the page."""
    if annot.get("/Subtype") == "/Popup":
        return "/AP" not in annot
    return rect is not None and max(rect[2] - rect[0], rect[3] - rect[1]) <= ICON_MAX


class AnnotationAdditionRule(QualifiedWhitelistRule):
    """See the module docstring. Only pages written again in the revision are looked at."""

    def apply_qualified(self, old: HistoricalResolver, new: HistoricalResolver,
                        ) -> Iterable[tuple[ModificationLevel, ReferenceUpdate]]:
        pages: set[generic.Reference] = set()
        for ref in new.explicit_refs_in_revision():
            if old.is_ref_unassignable(ref):
                continue
            value = old(ref)
            if isinstance(value, generic.DictionaryObject) and value.get("/Type") == "/Page":
                pages.add(ref)
            elif isinstance(value, generic.ArrayObject):  # an /Annots array written in place
                for path in old._get_usages_of_ref(ref):
                    if path.path and path.path[-1] == "/Annots":
                        try:
                            pages.add(RawPdfPath(*path.path[:-1]).access_reference_on(
                                old.trailer_view))
                        except Exception:  # no page at that path: not an /Annots array of ours
                            continue
        for page_ref in pages:
            yield from self._page(old, new, page_ref)

    def _page(self, old: HistoricalResolver, new: HistoricalResolver,
              page_ref: generic.Reference) -> Iterator[tuple[ModificationLevel, ReferenceUpdate]]:
        old_page, new_page = old(page_ref), new(page_ref)
        if not isinstance(new_page, generic.DictionaryObject) or not compare_dicts(
                old_page, new_page, frozenset({"/Annots"}), raise_exc=False):
            return
        old_raw, new_raw = _raw(old_page, "/Annots"), _raw(new_page, "/Annots")
        old_annots, new_annots = _refs(old_raw), _refs(new_raw)
        if old_annots is None or new_annots is None or new_annots[:len(old_annots)] != old_annots:
            return  # removed, reordered or malformed: not an addition
        added = new_annots[len(old_annots):]
        if not added or len(set(added)) != len(added):
            return
        existing = [_rect(old(r)) for r in old_annots]
        cleared: set[generic.Reference] = set()
        for ref in added:
            deps = self._annotation(old, new, ref, page_ref, set(added), set(old_annots),
                                    existing)
            if deps is None:
                return
            cleared |= deps | {ref}
        if isinstance(new_raw, generic.IndirectObject):
            array_ref = new_raw.reference
            if old.is_ref_unassignable(array_ref) or old_raw == new_raw:
                cleared.add(array_ref)
            else:
                return
        if not unchanged_since(old, new, page_ref):
            cleared.add(page_ref)  # compared above except /Annots: clear all its uses
        yield from ((_ANNOT, ReferenceUpdate(r)) for r in cleared)

    @staticmethod
    def _annotation(old: HistoricalResolver, new: HistoricalResolver, ref: generic.Reference,
                    page_ref: generic.Reference, added: set, before: set, existing: list,
                    ) -> set[generic.Reference] | None:
        if not old.is_ref_unassignable(ref):
            return None  # an existing annotation moved or re-added
        annot = new(ref)
        if not isinstance(annot, generic.DictionaryObject) or isinstance(
                annot, generic.StreamObject):
            return None
        if annot.get("/Subtype") not in ALLOWED_SUBTYPES or not _clean(annot):
            return None
        for key, allowed in (("/P", {page_ref}), ("/Popup", added), ("/Parent", added),
                             ("/IRT", added | before)):
            value = _raw(annot, key)
            if value is not None and not (isinstance(value, generic.IndirectObject)
                                          and value.reference in allowed):
                return None
        rect = _rect(annot)
        if not _shown_as_comment(annot, rect):
            return None  # could write over the signed page content
        if any(_overlap(rect, other) for other in existing):
            return None  # would cover what the page showed when signed
        deps = new.collect_dependencies(annot, since_revision=old.revision + 1)
        if not all(_clean(new(dep)) for dep in deps):
            return None
        return deps


class NamesAppearanceRule(QualifiedWhitelistRule):
    """See the module docstring. Any other change of ``/Names`` raises
    :class:`SuspiciousModification` (the catalog rule no longer checks it)."""

    def apply_qualified(self, old: HistoricalResolver, new: HistoricalResolver,
                        ) -> Iterable[tuple[ModificationLevel, ReferenceUpdate]]:
        old_raw, new_raw = _raw(old.root, "/Names"), _raw(new.root, "/Names")
        if new_raw is None:
            if old_raw is not None:
                raise SuspiciousModification("/Names removed from the catalog")
            return
        if isinstance(new_raw, generic.IndirectObject) and old_raw == new_raw and (
                unchanged_since(old, new, new_raw.reference)):
            return
        old_names = old_raw.get_object() if old_raw is not None else generic.DictionaryObject()
        new_names = new_raw.get_object()
        if not isinstance(new_names, generic.DictionaryObject):
            raise SuspiciousModification("/Names is not a dictionary")
        compare_dicts(old_names, new_names, frozenset({"/AP"}))
        cleared = self._container(old, old_raw, new_raw)
        old_ap_raw, new_ap_raw = _raw(old_names, "/AP"), _raw(new_names, "/AP")
        if new_ap_raw is None:
            if old_ap_raw is not None:
                raise SuspiciousModification("/Names /AP removed")
        else:
            cleared |= self._ap_tree(old, new, old_ap_raw, new_ap_raw)
        yield from ((_ANNOT, ReferenceUpdate(r)) for r in cleared)

    @staticmethod
    def _container(old: HistoricalResolver, old_raw, new_raw) -> set[generic.Reference]:
        if not isinstance(new_raw, generic.IndirectObject):
            return set()
        ref = new_raw.reference
        if old.is_ref_unassignable(ref) or old_raw == new_raw:
            return {ref}
        raise SuspiciousModification(f"{ref} reused in /Names")

    def _ap_tree(self, old: HistoricalResolver, new: HistoricalResolver, old_raw, new_raw,
                 ) -> set[generic.Reference]:
        old_tree = old_raw.get_object() if old_raw is not None else generic.DictionaryObject()
        new_tree = new_raw.get_object()
        if not isinstance(new_tree, generic.DictionaryObject) or "/Kids" in new_tree or (
                "/Kids" in old_tree):
            raise SuspiciousModification("/Names /AP must be a flat name tree")
        compare_dicts(old_tree, new_tree, frozenset({"/Names"}))
        cleared = self._container(old, old_raw, new_raw)
        old_arr, new_arr = _raw(old_tree, "/Names"), _raw(new_tree, "/Names")
        cleared |= self._container(old, old_arr, new_arr)
        old_list = list(old_arr.get_object()) if old_arr is not None else []
        new_list = list(new_arr.get_object()) if new_arr is not None else []
        if len(new_list) % 2 or new_list[:len(old_list)] != old_list:
            raise SuspiciousModification("/Names /AP entries changed or removed")
        for value in new_list[len(old_list) + 1::2]:
            if not isinstance(value, generic.IndirectObject) or not old.is_ref_unassignable(
                    value.reference) or not isinstance(value.get_object(), generic.StreamObject):
                raise SuspiciousModification("/Names /AP entries must be new streams")
            deps = new.collect_dependencies(value, since_revision=old.revision + 1)
            if not all(_clean(new(dep)) for dep in deps):
                raise SuspiciousModification("/Names /AP stream uses an action or a file")
            cleared |= deps
        return cleared

"""Comments added after a signature: level ANNOTATIONS (ISO 32000-2 §12.8.2.2.2, DocMDP P=3).

Whether ANNOTATIONS keeps a signature valid is the verdict's business (:mod:`signing.verify`:
with no DocMDP, or P=3; the gateway's intake then flags the document, ``[intake] annotated``).
These rules only say which later changes *are* annotation changes:

* :class:`AnnotationAdditionRule` — what a page's ``/Annots`` may gain, as new objects, with
  the page otherwise unchanged and its existing annotations kept in their order:

  - markup annotations (§12.5.6.2: comments, highlights, stamps, ink, shapes, free text) and
    their pop-up windows (§12.5.6.14, drawn by the viewer: no appearance of their own), with
    no action (``/A``, ``/AA``), script, file or multimedia anywhere in what they use, and not
    covering an annotation the page already had (a signature's or a field's appearance).
    Each one is reported (``ANNOTATION_ADDED``: type, page, rectangle): a comment is shown on
    top of the signed page, which is why the verdict allows it only where the signer did (no
    DocMDP, or P=3) and reports it. Reference validators do the same: Acrobat lists "comment
    added" changes, EU DSS warns on annotation overlap and visual difference;
  - the widget annotations of signature fields created in the same revision (the form rule
    vets the fields themselves: :class:`~pyhanko.sign.diff_analysis.SigFieldCreationRule`
    runs with ``approve_widget_bindings=False`` and leaves the page binding to this rule),
    at LTA_UPDATES, as stock pyHanko does; a revision may add a signature and comments.

  Existing annotations never change here. File attachments, sounds, links, redaction marks,
  screens and other non-markup annotations are not comments.
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
from signing.verify.diff.structure import note

__all__ = ["ALLOWED_SUBTYPES", "AnnotationAdditionRule", "NamesAppearanceRule"]

_ANNOT = ModificationLevel.ANNOTATIONS
_LTA = ModificationLevel.LTA_UPDATES
#: markup annotations (§12.5.6.2 and the subclauses of §12.5.6 for each) that may be added,
#: and pop-ups; never file attachments, sounds or redaction marks (§12.5.6.15, .16, .23).
ALLOWED_SUBTYPES = frozenset({
    "/Text", "/FreeText", "/Line", "/Square", "/Circle", "/Polygon", "/PolyLine",
    "/Highlight", "/Underline", "/Squiggly", "/StrikeOut", "/Caret", "/Ink", "/Stamp",
    "/Popup"})
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


def _popup_drawn_by_viewer(annot: generic.DictionaryObject) -> bool:
    """A pop-up is a window the viewer draws (§12.5.6.14): one with an appearance stream of
    its own could paint anything over the page."""
    return annot.get("/Subtype") != "/Popup" or "/AP" not in annot


def _new_signature_widget(old: HistoricalResolver, new: HistoricalResolver,
                          ref: generic.Reference) -> bool:
    """A widget written in this revision for a signature field (its own ``/FT /Sig`` or its new
    parent's). Whether the field is a legitimate new signature field is the form rule's
    judgement; here only the page binding is approved."""
    if not old.is_ref_unassignable(ref):
        return False
    annot = new(ref)
    if not isinstance(annot, generic.DictionaryObject) or annot.get("/Subtype") != "/Widget":
        return False
    if annot.get("/FT") == "/Sig":
        return True
    parent = _raw(annot, "/Parent")
    return (isinstance(parent, generic.IndirectObject)
            and old.is_ref_unassignable(parent.reference)
            and isinstance(new(parent.reference), generic.DictionaryObject)
            and new(parent.reference).get("/FT") == "/Sig")


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
        if old_annots is None or new_annots is None or len(set(new_annots)) != len(new_annots):
            return
        before = set(old_annots)
        if [r for r in new_annots if r in before] != old_annots:
            return  # an annotation removed or the existing ones reordered: not an addition
        added = [r for r in new_annots if r not in before]
        if not added:
            return
        comments = [r for r in added if not _new_signature_widget(old, new, r)]
        existing = [_rect(old(r)) for r in old_annots]
        cleared: set[generic.Reference] = set()
        for ref in comments:
            deps = self._annotation(old, new, ref, page_ref, set(added), before, existing)
            if deps is None:
                return
            cleared |= deps | {ref}
        binding: set[generic.Reference] = set()
        if isinstance(new_raw, generic.IndirectObject):
            array_ref = new_raw.reference
            if old.is_ref_unassignable(array_ref) or old_raw == new_raw:
                binding.add(array_ref)
            else:
                return
        if not unchanged_since(old, new, page_ref):
            binding.add(page_ref)  # compared above except /Annots: clear all its uses
        for ref in comments:
            annot = new(ref)
            rect = " ".join(f"{v:g}" for v in _rect(annot) or ())
            note("ANNOTATION_ADDED", f"{annot.get('/Subtype')} annotation {ref.idnum} added "
                 f"after signing on page object {page_ref.idnum} at [{rect}]")
        yield from ((_ANNOT, ReferenceUpdate(r)) for r in cleared)
        yield from ((_LTA, ReferenceUpdate(r)) for r in binding)

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
        if not _popup_drawn_by_viewer(annot):
            return None
        rect = _rect(annot)
        if rect is None and annot.get("/Subtype") != "/Popup":
            return None
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

"""The form's default resources ``/DR`` after a signature (ISO 32000-2 §12.7.4.3).

Form fillers add the fonts they used for new appearances to ``/AcroForm /DR /Font``, and some
drop the obsolete ``/Name`` of a font dictionary (Tables 109/111: "/Name ... obsolete", PDF 1.0
only). Stock pyHanko accepts a new ``/DR`` dictionary but not those two in-place changes.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver
from pyhanko.sign.diff_analysis import (
    ModificationLevel,
    QualifiedWhitelistRule,
    ReferenceUpdate,
    SuspiciousModification,
)
from pyhanko.sign.diff_analysis.commons import compare_dicts
from pyhanko.sign.diff_analysis.rules_api import Context

from signing.verify.diff.equality import unchanged_since

__all__ = ["OBSOLETE_FONT_KEYS", "DefaultResourcesRule"]

_FORM = ModificationLevel.FORM_FILLING
_DR_PATH = ("/Root", "/AcroForm", "/DR")


def _raw(d: generic.DictionaryObject, key: str) -> generic.PdfObject | None:
    try:
        return d.raw_get(key)
    except KeyError:
        return None


#: obsolete font dictionary keys a producer may drop (ISO 32000-2 Tables 109, 111: /Name).
OBSOLETE_FONT_KEYS = frozenset({"/Name"})


class DefaultResourcesRule(QualifiedWhitelistRule):
    """``/AcroForm /DR /Font`` (§12.7.4.3): an existing font resource dictionary may gain
    fonts (existing entries unchanged), and an existing font dictionary may lose the obsolete
    ``/Name`` (nothing else changes). Level FORM_FILLING.

    Dropping ``/Name`` changes nothing drawn, so the font is cleared wherever it is used. A
    font *added* changes every content stream that names it while it was missing (§9.2.2: a
    content stream selects fonts by resource name), so the resource dictionary is cleared only
    on its paths through ``/Root /AcroForm /DR``: where it is also a page's or an appearance's
    ``/Resources /Font`` (the same object), that use stays unexplained."""

    def apply_qualified(self, old: HistoricalResolver, new: HistoricalResolver,
                        ) -> Iterable[tuple[ModificationLevel, ReferenceUpdate]]:
        old_dr = _dr(old)
        new_dr = _dr(new)
        if old_dr is None or new_dr is None:
            return
        old_fonts_raw, new_fonts_raw = _raw(old_dr, "/Font"), _raw(new_dr, "/Font")
        if old_fonts_raw is None or new_fonts_raw is None:
            return
        if (isinstance(old_fonts_raw, generic.IndirectObject)
                and old_fonts_raw == new_fonts_raw
                and not unchanged_since(old, new, old_fonts_raw.reference)):
            old_fonts, new_fonts = old_fonts_raw.get_object(), new_fonts_raw.get_object()
            if not isinstance(new_fonts, generic.DictionaryObject):
                raise SuspiciousModification("/DR /Font is not a dictionary")
            if any(_raw(new_fonts, k) != old_fonts.raw_get(k) for k in old_fonts):
                return  # not an addition: left unexplained
            ref = old_fonts_raw.reference
            for path in old._get_usages_of_ref(ref):
                if tuple(path.path[:3]) == _DR_PATH:
                    yield _FORM, ReferenceUpdate(ref, Context.from_absolute(old, path))
            added = generic.ArrayObject(new_fonts.raw_get(k) for k in new_fonts
                                        if k not in old_fonts)
            for ref in new.collect_dependencies(added, since_revision=old.revision + 1):
                yield _FORM, ReferenceUpdate(ref)
        old_fonts = old_fonts_raw.get_object()
        new_fonts = new_fonts_raw.get_object()
        if not isinstance(old_fonts, generic.DictionaryObject) or not isinstance(
                new_fonts, generic.DictionaryObject):
            return
        for key in old_fonts:
            font = old_fonts.raw_get(key)
            if not isinstance(font, generic.IndirectObject) or _raw(new_fonts, key) != font:
                continue
            ref = font.reference
            if unchanged_since(old, new, ref):
                continue
            old_font, new_font = old(ref), new(ref)
            if not isinstance(new_font, generic.DictionaryObject) or isinstance(
                    new_font, generic.StreamObject):
                continue
            if compare_dicts(old_font, new_font, OBSOLETE_FONT_KEYS, raise_exc=False) and all(
                    k not in new_font or new_font.raw_get(k) == old_font.raw_get(k)
                    for k in OBSOLETE_FONT_KEYS):
                yield _FORM, ReferenceUpdate(ref)


def _dr(rev: HistoricalResolver) -> generic.DictionaryObject | None:
    try:
        dr = rev.root["/AcroForm"]["/DR"]
    except (KeyError, TypeError):
        return None
    return dr if isinstance(dr, generic.DictionaryObject) else None

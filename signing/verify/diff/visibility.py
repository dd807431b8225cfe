"""What decides whether and how a field or annotation is shown, besides its appearance stream
(used by :mod:`signing.verify.diff.forms`; the rules are stated there).

ISO 32000-2 §12.5.3 Table 167 (annotation flags), §12.7.4.1 Table 227 (field flags), §12.7.3
Table 224 (``/NeedAppearances``), §12.5.5 (appearance streams).
"""

from __future__ import annotations

from pyhanko.pdf_utils import generic
from pyhanko.sign.diff_analysis import SuspiciousModification

__all__ = ["COMMON_FIELD_FLAGS", "SIG_FLAGS", "VISIBILITY_FLAGS", "check_sig_flags",
           "draws_something", "flags_changed", "need_appearances", "refuse_flags",
           "widget_kids_of"]


def _raw(d, key: str):
    try:
        return d.raw_get(key)
    except (KeyError, AttributeError):
        return None


#: annotation flags deciding whether a widget is shown or printed (§12.5.3 Table 167):
#: Invisible (1), Hidden (2), Print (3), NoView (6), ToggleNoView (9).
VISIBILITY_FLAGS = 1 | 2 | 4 | 32 | 256
#: field flags common to all field types (§12.7.4.1 Table 227): ReadOnly, Required, NoExport.
COMMON_FIELD_FLAGS = 1 | 2 | 4


def need_appearances(acroform: generic.DictionaryObject) -> bool:
    value = _raw(acroform, "/NeedAppearances")
    value = value.get_object() if isinstance(value, generic.IndirectObject) else value
    return isinstance(value, generic.BooleanObject) and bool(value)


def _flags(d, key: str) -> int | None:
    value = _raw(d, key)
    value = value.get_object() if isinstance(value, generic.IndirectObject) else value
    if value is None:
        return 0
    if isinstance(value, generic.NumberObject) and not isinstance(value, generic.FloatObject):
        return int(value)
    return None  # malformed: compared as is


def flags_changed(old_field, new_field, key: str, mask: int) -> bool:
    """Whether the bits ``mask`` of the flags ``key`` (``/F`` or ``/Ff``) differ."""
    old_flags, new_flags = _flags(old_field, key), _flags(new_field, key)
    if old_flags is None or new_flags is None:
        return _raw(old_field, key) != _raw(new_field, key)
    return bool((old_flags ^ new_flags) & mask)


#: ``/SigFlags`` of the interactive form (§12.7.3 Table 225): SignaturesExist (1), AppendOnly (2).
SIG_FLAGS = 1 | 2


def check_sig_flags(old_acroform, new_acroform) -> None:
    """§12.7.3 Table 225: ``/SigFlags`` only tells a viewer that signatures exist and that the
    file must be saved incrementally; neither changes what a page shows. A later revision may
    set these bits (signers do when they add a signature; one producer sets AppendOnly after a
    certification) but not clear a bit or set any other."""
    old_flags, new_flags = _flags(old_acroform, "/SigFlags"), _flags(new_acroform, "/SigFlags")
    if old_flags == new_flags and old_flags is not None:
        return
    if old_flags is None or new_flags is None:
        if _raw(old_acroform, "/SigFlags") == _raw(new_acroform, "/SigFlags"):
            return
        raise SuspiciousModification("/SigFlags of the form made malformed after signing")
    if old_flags & ~new_flags:
        raise SuspiciousModification("/SigFlags bits cleared after signing (ISO 32000-2 "
                                     "§12.7.3 Table 225)")
    if (new_flags ^ old_flags) & ~SIG_FLAGS:
        raise SuspiciousModification("/SigFlags bits other than SignaturesExist and "
                                     "AppendOnly set after signing")


def refuse_flags(fq_name: str, what: str) -> SuspiciousModification:
    return SuspiciousModification(
        f"{what} of field {fq_name} changed after signing: not form filling (shadow attack "
        "'hide' / 'hide-and-replace')")


def widget_kids_of(field: generic.DictionaryObject) -> list[generic.DictionaryObject]:
    kids = field.get("/Kids")
    if not isinstance(kids, generic.ArrayObject):
        return []
    out = []
    for kid in kids:
        kid = kid.get_object()
        if isinstance(kid, generic.DictionaryObject) and "/T" not in kid:
            out.append(kid)
    return out


def draws_something(annot: generic.DictionaryObject) -> bool:
    """Whether any appearance stream of ``annot`` (``/N``, ``/R``, ``/D``, each a stream or a
    dictionary of states) has content; anything malformed counts as drawing."""
    ap = annot.get("/AP")
    if ap is None:
        return False
    if not isinstance(ap, generic.DictionaryObject):
        return True
    for key in ap:
        entry = ap[key]
        streams = list(entry.values()) if (isinstance(entry, generic.DictionaryObject) and not
                                           isinstance(entry, generic.StreamObject)) else [entry]
        for stream in streams:
            stream = stream.get_object() if isinstance(stream, generic.IndirectObject) else stream
            if not isinstance(stream, generic.StreamObject):
                return True
            try:
                if stream.data.strip(b"\x00\t\n\f\r "):
                    return True
            except Exception:  # undecodable: counts as drawing
                return True
    return False

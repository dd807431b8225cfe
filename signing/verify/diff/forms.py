"""Form filling after a signature: what a field's later revision may change, and what not.

Rules (ISO 32000-2 §12.7 interactive forms; §12.8.2.2 DocMDP "fill in forms"):

* :class:`GatewayFormUpdatingRule` — field names (§12.7.4.2: a partial name *shall not*
  contain a period). Stock pyHanko refuses a whole update when any field of the *signed*
  revision has such a name; the gateway refuses it only in a field created after signing, and
  refuses two fields with one fully qualified name (they could hide one another).
* :class:`FieldValueRule` — a field's value (``/V``) and what follows from it:
  the appearance (``/AP``, ``/AS``, ``/DA`` of the field or of its widget kids, §12.7.4.3),
  the selected indices ``/I`` of a choice field together with ``/V`` (§12.7.5.4). An
  appearance that changes while the (inherited) value does not is *not* form filling: it is the
  shadow attack "replace via overlay" (a field planted before signing shows other content after).
* :class:`SignedFieldAppearanceRule` — the same for signature fields: an appearance changes
  only in the revision that puts the signature (``/V``) into the field.
* A signature field created after signing and not signed in that revision shows nothing: its
  appearance streams (and its widget kids') draw nothing (§12.7.5.5: the appearance of a
  signature field represents its signature; an empty field has none). Otherwise any page
  content could be covered by an unsigned "signature" (the Sneaky Signature Attack, Mainka et
  al., IEEE S&P 2021).
* What else decides how a field is shown follows the same rule (shadow attacks "hide" and
  "hide-and-replace", Mainka et al. NDSS 2021): the variable-text keys ``/DA`` and ``/Q``
  (§12.7.4.3) change only with the value; the annotation flags that decide whether a widget is
  shown or printed (§12.5.3 Table 167: Invisible, Hidden, Print, NoView, ToggleNoView) never
  change on an existing field (filling a form does not show or hide fields; a signature field
  only in the revision that signs it); of the field flags ``/Ff`` only those common to all
  fields (§12.7.4.1 Table 227: ReadOnly, Required, NoExport) may change on a non-signature
  field, the type-specific ones (password, comb, radio, push button, combo, …) change what the
  field is; and ``/NeedAppearances`` (§12.7.3 Table 224: viewers rebuild every widget's
  appearance from ``/V`` and ``/DA``, discarding the signed ones) may not be switched on.

The form's default resources ``/DR`` are judged by :mod:`signing.verify.diff.resources`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import HistoricalResolver, RawPdfPath
from pyhanko.sign.diff_analysis import (
    FieldComparisonContext,
    FieldComparisonSpec,
    FormUpdate,
    FormUpdatingRule,
    GenericFieldModificationRule,
    ModificationLevel,
    SigFieldModificationRule,
    SuspiciousModification,
)
from pyhanko.sign.diff_analysis.commons import compare_dicts, compare_key_refs, qualify_transforming
from pyhanko.sign.diff_analysis.rules.form_field_rules import (
    _allow_appearance_update,
    _allow_in_place_appearance_update,
)
from pyhanko.sign.diff_analysis.rules_api import Context

from signing.verify.diff.equality import same_value, unchanged_since
from signing.verify.diff.visibility import (
    COMMON_FIELD_FLAGS,
    VISIBILITY_FLAGS,
    check_sig_flags,
    draws_something,
    flags_changed,
    need_appearances,
    refuse_flags,
    widget_kids_of,
)

__all__ = ["FieldValueRule", "GatewayFormUpdatingRule", "SignedFieldAppearanceRule",
           "list_fields"]

_FORM = ModificationLevel.FORM_FILLING
_MAX_FIELD_DEPTH = 64
#: what filling a field may change on one of its widget annotations (§12.5.5, §12.7.4.3).
WIDGET_APPEARANCE_KEYS = frozenset({"/AP", "/AS", "/DA"})


def _raw(d: generic.DictionaryObject | None, key: str) -> generic.PdfObject | None:
    if d is None:
        return None
    try:
        return d.raw_get(key)
    except KeyError:
        return None


# -- field names (item 5) ---------------------------------------------------------------------

def _level(fields: generic.PdfObject | None, exc: type[Exception], inherited_ft,
           ) -> dict[str, tuple]:
    if fields is None:
        return {}
    if not isinstance(fields, generic.ArrayObject):
        raise exc("Field list is not an array.")
    out: dict[str, tuple] = {}
    for ix, field_ref in enumerate(fields):
        if not isinstance(field_ref, generic.IndirectObject):
            raise exc("Fields must be indirect objects")
        field = field_ref.get_object()
        if not isinstance(field, generic.DictionaryObject):
            raise exc("Fields must be dictionary objects")
        name = _raw(field, "/T")
        if name is None:
            continue  # a widget annotation, not a field
        if not isinstance(name, (generic.TextStringObject, generic.ByteStringObject)):
            raise exc("Names must be strings")
        if str(name) in out:
            raise exc("Duplicate field name")
        field_type = _raw(field, "/FT") or inherited_ft
        kids = field.get("/Kids", generic.ArrayObject())
        if not kids and field_type is None:
            raise exc(f"Field type of terminal field {name!r} could not be determined")
        out[str(name)] = (field_type, field_ref.reference, kids, ix)
    return out


def list_fields(old_fields, new_fields, old_path: RawPdfPath | None, parent: str = "",
                inherited_ft=None, seen: set[str] | None = None, depth: int = 0,
                ) -> Iterator[tuple[str, FieldComparisonSpec]]:
    """Like pyHanko's field listing, with ISO 32000-2 §12.7.4.2 applied to new fields only.

    A partial name with a period that the signed revision already had (same field object,
    same place) is tolerated; in a field that is new it is refused. Two fields that end up with
    one fully qualified name are refused (the analysis would see only one of them)."""
    if depth > _MAX_FIELD_DEPTH:
        raise SuspiciousModification("Field hierarchy too deep")
    seen = set() if seen is None else seen
    old_level = _level(old_fields, misc.PdfReadError, inherited_ft)
    new_level = _level(new_fields, SuspiciousModification, inherited_ft)
    for name, (_, ref, _, _) in new_level.items():
        if "." in name and (name not in old_level or old_level[name][1] != ref):
            raise SuspiciousModification(
                f"New field partial name {name!r} contains a period (ISO 32000-2 §12.7.4.2)")
    for name in sorted(old_level.keys() | new_level.keys()):
        fq_name = f"{parent}.{name}" if parent else name
        if fq_name in seen:
            raise SuspiciousModification(f"Two fields are named {fq_name!r}")
        seen.add(fq_name)
        old_ft, old_ref, old_kids, index = old_level.get(name, (None, None, None, None))
        new_ft, new_ref, new_kids, _ = new_level.get(name, (None, None, None, None))
        if old_ref and new_ref and old_ft != new_ft:
            raise SuspiciousModification(f"Update changed field type of {fq_name}")
        path = old_path + index if index is not None and old_path is not None else None
        yield fq_name, FieldComparisonSpec(field_type=old_ft or new_ft, old_field_ref=old_ref,
                                           new_field_ref=new_ref, old_canonical_path=path)
        if old_kids or new_kids:
            yield from list_fields(old_kids or None, new_kids or None,
                                   path + "/Kids" if path is not None else None, fq_name,
                                   old_ft or new_ft, seen, depth + 1)


class GatewayFormUpdatingRule(FormUpdatingRule):
    """pyHanko's form rule with :func:`list_fields` for the field listing (item 5)."""

    def apply(self, old: HistoricalResolver, new: HistoricalResolver,
              ) -> Iterable[tuple[ModificationLevel, FormUpdate]]:
        # Same steps as FormUpdatingRule.apply; only the field listing differs.
        lta = ModificationLevel.LTA_UPDATES
        acroform_ctx = Context.from_absolute(old, RawPdfPath("/Root", "/AcroForm"))
        old_af, new_af = yield from qualify_transforming(
            lta, compare_key_refs("/AcroForm", old, old.root, new.root),
            transform=FormUpdate.curry_ref(field_name=None, context_checked=acroform_ctx))
        compare_dicts(old_af, new_af, self.ignored_acroform_keys | {"/SigFlags"})
        assert isinstance(old_af, generic.DictionaryObject)
        assert isinstance(new_af, generic.DictionaryObject)
        check_sig_flags(old_af, new_af)
        fields_path = RawPdfPath("/Root", "/AcroForm", "/Fields")
        old_fields, new_fields = yield from qualify_transforming(
            lta, compare_key_refs("/Fields", old, old_af, new_af),
            transform=FormUpdate.curry_ref(
                field_name=None, context_checked=Context.from_absolute(old, fields_path)))
        dr_ctx = Context.from_absolute(old, RawPdfPath("/Root", "/AcroForm", "/DR"))
        _, new_dr = yield from qualify_transforming(
            _FORM, compare_key_refs("/DR", old, old_af, new_af),
            transform=FormUpdate.curry_ref(field_name=None, context_checked=dr_ctx))
        if need_appearances(new_af) and not need_appearances(old_af):
            raise SuspiciousModification(
                "/NeedAppearances switched on after signing: viewers would rebuild every "
                "field's appearance instead of showing the signed one (ISO 32000-2 §12.7.3)")
        if new_dr is not None:
            deps = new.collect_dependencies(new_dr, since_revision=old.revision + 1)
            yield from ((_FORM, FormUpdate(updated_ref=r, field_name=None)) for r in deps)
        context = FieldComparisonContext(
            field_specs=dict(list_fields(old_fields, new_fields, old_path=fields_path)),
            old=old, new=new)
        for rule in self.field_rules:
            yield from rule.apply(context)


# -- values and appearances (items 4a, 4b, 7c) -------------------------------------------------

def value_changed(old: HistoricalResolver, new: HistoricalResolver, old_field, new_field,
                  ) -> bool:
    """Whether a field's value ``/V`` changed from ``old`` to ``new``, its own or one inherited
    from an ancestor (§12.7.4.1: ``/V`` is inheritable). Ancestors are followed by ``/Parent``
    in the new revision; an ancestor that did not exist in ``old`` does not count."""
    node_old, node_new = old_field, new_field
    for _ in range(_MAX_FIELD_DEPTH):
        if not isinstance(node_old, generic.DictionaryObject) or not isinstance(
                node_new, generic.DictionaryObject):
            return False
        if not same_value(old, _raw(node_old, "/V"), new, _raw(node_new, "/V")):
            return True
        if _raw(node_new, "/V") is not None:
            return False  # an own value hides any inherited one
        parent = _raw(node_new, "/Parent")
        if not isinstance(parent, generic.IndirectObject) or old.is_ref_unassignable(
                parent.reference):
            return False
        node_old, node_new = old(parent.reference), new(parent.reference)
    return False


def previous_revision(context: FieldComparisonContext) -> HistoricalResolver | None:
    """The revision just before the one under review, when it is not the signed one.

    pyHanko compares every later revision with the *signed* one: a field filled in revision
    n+1 and given another appearance in n+2 looks, from n, like one filling. The appearance
    rules therefore also compare n+2 with n+1."""
    new = context.new
    if new.revision - 1 <= context.old.revision:
        return None
    return new.reader.get_historical_resolver(new.revision - 1)


def overlay_since_previous(context: FieldComparisonContext, ref: generic.Reference,
                           new_obj, signs: bool = False) -> bool:
    """Whether the field or widget ``ref`` changed its appearance since the previous revision
    without its value changing (or, for a signature field, ``signs``: without being signed)."""
    prev = previous_revision(context)
    if prev is None or prev.is_ref_unassignable(ref):
        return False
    prev_obj = prev(ref)
    if not appearance_changed(prev, prev_obj, context.new, new_obj):
        return False
    if signs:
        return not ("/V" not in prev_obj and "/V" in new_obj)
    return not value_changed(prev, context.new, prev_obj, new_obj)


def appearance_changed(old: HistoricalResolver, old_annot, new: HistoricalResolver,
                       new_annot) -> bool:
    """Whether what an annotation shows changed: its ``/AP`` (any stream rewritten, in place or
    under a new number, unless equal by :func:`same_value`), its state ``/AS``, or what a
    viewer builds a variable-text appearance from (``/DA``, ``/Q``; §12.7.4.3)."""
    return not all(same_value(old, _raw(old_annot, key), new, _raw(new_annot, key))
                   for key in ("/AP", "/AS", "/DA", "/Q"))


def _refuse_overlay(fq_name: str) -> SuspiciousModification:
    return SuspiciousModification(
        f"Appearance of field {fq_name} changed but its value did not: not form filling "
        "(shadow attack 'replace via overlay')")


class FieldValueRule(GenericFieldModificationRule):
    """Stock :class:`GenericFieldModificationRule` plus the rules in the module docstring.

    * appearance changes of an existing field (own ``/AP``/``/AS`` or its widget kids') are
      accepted only when its value changed; otherwise :class:`SuspiciousModification`;
    * a choice field's ``/I`` may change only with its ``/V`` (§12.7.5.4);
    * widget kids (dictionaries without ``/T``, §12.7.1) of a field whose value changed may
      change ``/AP``, ``/AS`` and ``/DA`` and nothing else; new appearance streams must be new
      objects (or rewritten in place only where that stream has no other user).
    """

    def compare_fields(self, spec: FieldComparisonSpec) -> bool:
        old_field, new_field = spec.old_field, spec.new_field
        assert old_field is not None and new_field is not None
        if spec.field_type == "/Ch" and _raw(old_field, "/I") != _raw(new_field, "/I"):
            old_v, new_v = _raw(old_field, "/V"), _raw(new_field, "/V")
            if old_v == new_v:
                raise SuspiciousModification("Choice field /I changed without its /V")
            _check_indices(_raw(new_field, "/I"))
            # the stock comparison with /I as a value key; /V changed, so never "valid when
            # locked"
            compare_dicts(old_field, new_field, self.value_update_keys | {"/I"})
            if _raw(old_field, "/Type") != _raw(new_field, "/Type") and not (
                    _raw(old_field, "/Type") is None and _raw(new_field, "/Type") == "/Annot"):
                raise SuspiciousModification("/Type of form field altered")
            return False
        return super().compare_fields(spec)

    def check_form_field(self, fq_name: str, spec: FieldComparisonSpec,
                         context: FieldComparisonContext,
                         ) -> Iterable[tuple[ModificationLevel, FormUpdate]]:
        if spec.field_type == "/Sig" or not spec.new_field_ref or not spec.old_field_ref:
            return
        old, new = context.old, context.new
        old_field, new_field = spec.old_field, spec.new_field
        changed = value_changed(old, new, old_field, new_field)
        if (not changed and appearance_changed(old, old_field, new, new_field)) or (
                overlay_since_previous(context, spec.new_field_ref, new_field)):
            raise _refuse_overlay(fq_name)
        if flags_changed(old_field, new_field, "/F", VISIBILITY_FLAGS):
            raise refuse_flags(fq_name, "Visibility (/F)")
        if flags_changed(old_field, new_field, "/Ff", ~COMMON_FIELD_FLAGS):
            raise refuse_flags(fq_name, "Field type flags (/Ff)")
        yield from super().check_form_field(fq_name, spec, context)
        new_i = _raw(new_field, "/I")
        if isinstance(new_i, generic.IndirectObject) and old.is_ref_unassignable(new_i.reference):
            yield _FORM, FormUpdate(updated_ref=new_i.reference, field_name=fq_name)
        yield from self._widget_kids(fq_name, spec, context, changed)

    def _widget_kids(self, fq_name: str, spec: FieldComparisonSpec,
                     context: FieldComparisonContext, changed: bool,
                     ) -> Iterator[tuple[ModificationLevel, FormUpdate]]:
        old, new = context.old, context.new
        kids = _raw(spec.new_field, "/Kids")
        if not isinstance(kids, generic.ArrayObject) and not isinstance(
                kids, generic.IndirectObject):
            return
        if _raw(spec.old_field, "/Kids") != kids:
            return  # the field dictionary comparison refuses this
        old_kids = spec.old_field["/Kids"]  # read in the old revision: refs bound to it
        if not isinstance(old_kids, generic.ArrayObject):
            return
        for ix, kid in enumerate(old_kids):
            if not isinstance(kid, generic.IndirectObject):
                continue
            ref = kid.reference
            if unchanged_since(old, new, ref):
                continue
            old_w, new_w = old(ref), new(ref)
            if not isinstance(new_w, generic.DictionaryObject) or "/T" in new_w:
                continue  # a kid field: listed and judged on its own
            if not changed or overlay_since_previous(context, ref, new_w):
                raise _refuse_overlay(fq_name)
            compare_dicts(old_w, new_w, WIDGET_APPEARANCE_KEYS)
            path = (spec.old_canonical_path + "/Kids" + ix
                    if spec.old_canonical_path is not None else None)
            widget = FieldComparisonSpec(spec.field_type, ref, ref, path)
            for ctx in widget.expected_contexts():
                yield _FORM, FormUpdate(updated_ref=ref, field_name=fq_name, context_checked=ctx)
            yield from qualify_transforming(
                _FORM, _allow_appearance_update(old_w, new_w, old, new),
                transform=FormUpdate.curry_ref(field_name=fq_name))
            yield from ((_FORM, u) for u in _allow_in_place_appearance_update(
                old_w, new_w, old, new, fq_name=fq_name))


def _check_indices(value: generic.PdfObject | None) -> None:
    """§12.7.5.4 Table 231: ``/I`` is an array of integers (sorted ascending)."""
    if value is None:
        return
    value = value.get_object()
    if not isinstance(value, generic.ArrayObject) or not all(
            isinstance(v, generic.NumberObject) and not isinstance(v, generic.FloatObject)
            for v in value):
        raise SuspiciousModification("Choice field /I must be an array of integers")
    if list(value) != sorted(value):
        raise SuspiciousModification("Choice field /I must be sorted in ascending order")


class SignedFieldAppearanceRule(SigFieldModificationRule):
    """Stock :class:`SigFieldModificationRule`, and: a signature field's appearance changes
    only in the revision that signs it (its ``/V`` goes from absent to a signature). Swapping the
    appearance of a field already signed, or of one still empty, is refused explicitly."""

    def check_form_field(self, fq_name: str, spec: FieldComparisonSpec,
                         context: FieldComparisonContext,
                         ) -> Iterable[tuple[ModificationLevel, FormUpdate]]:
        if spec.field_type == "/Sig" and spec.new_field_ref:
            old_field, new_field = spec.old_field, spec.new_field
            if old_field is not None and "/V" not in new_field:
                signs_now = False
            else:
                signs_now = old_field is None or "/V" not in old_field
            if (old_field is not None and not signs_now and appearance_changed(
                    context.old, old_field, context.new, new_field)) or overlay_since_previous(
                    context, spec.new_field_ref, new_field, signs=True):
                raise _refuse_overlay(fq_name)
            if old_field is None and "/V" not in new_field:
                for annot in [new_field, *widget_kids_of(new_field)]:
                    if draws_something(annot):
                        raise SuspiciousModification(
                            f"New unsigned signature field {fq_name} has an appearance that "
                            "draws on the page (sneaky signature attack)")
            if old_field is not None and not signs_now and flags_changed(
                    old_field, new_field, "/F", VISIBILITY_FLAGS):
                raise refuse_flags(fq_name, "Visibility (/F)")
        yield from super().check_form_field(fq_name, spec, context)

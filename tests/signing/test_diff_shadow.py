"""Shadow attack "replace via overlay" (Mainka, Mladenov, Rohlmann: Shadow Attacks, NDSS 2021):
a field planted before signing shows other content after signing because only its appearance
(``/AP``) is swapped. ISO 32000-2 §12.7.4.3: a field's appearance represents its value; changing
it without the value (``/V``) or state (``/AS``) is no form filling but a modification
(:class:`signing.verify.diff.forms.FieldValueRule`,
:class:`signing.verify.diff.forms.SignedFieldAppearanceRule`)."""

from __future__ import annotations

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject as N
from pyhanko.sign import fields as sig_fields

from signing.report import Verdict
from signing.testpki.samples import sign_sample
from signing.verify import VerificationPolicy, verify_pdf
from tests.signing.diffkit import (
    add_form,
    appearance,
    field_named,
    fields_pdf,
    incremental,
    page,
    shows,
    text,
    text_field,
    verify_first,
    widget_dict,
)


def _amount_form(w) -> None:
    add_form(w, [text_field(w, "amount", "100")])


@pytest.fixture(scope="module")
async def signed_amount(test_pki) -> bytes:
    return await sign_sample(fields_pdf(_amount_form), test_pki, "officer")


def _swap_ap(w) -> None:
    field = field_named(w, "amount")
    field[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("1,000,000"))})
    w.update_container(field)


def _rewrite_ap_in_place(w) -> None:
    field = field_named(w, "amount")
    ref = field["/AP"].raw_get("/N").reference
    stream = ref.get_object()
    stream._data, stream._encoded_data = shows("1,000,000"), None
    w.mark_update(ref)


@pytest.mark.parametrize("mutate", [_swap_ap, _rewrite_ap_in_place], ids=["new-stream", "in-place"])
def test_appearance_swap_without_value_change_is_modified_iso32000_2_12_7_4_3(
        signed_amount, test_pki, mutate):
    """The attack: the amount field still says /V (100), its appearance shows 1,000,000.
    Stock pyHanko 0.38 calls this FORM_FILLING (valid)."""
    sig = verify_first(incremental(signed_amount, mutate), test_pki)
    assert sig.verdict is Verdict.INVALID
    assert sig.reason == "MODIFIED_AFTER_SIGNING"
    assert not sig.integrity_ok


def test_filling_value_with_new_appearance_stays_form_filling(signed_amount, test_pki):
    """Legitimate: new /V together with its new appearance."""
    def fill(w):
        _swap_ap(w)
        field = field_named(w, "amount")
        field[N("/V")] = text("1,000,000")
        w.update_container(field)

    sig = verify_first(incremental(signed_amount, fill), test_pki)
    assert sig.verdict is Verdict.VALID, sig.errors
    assert sig.modification_level == "FORM_FILLING"


def _checkbox_form(w) -> None:
    on = appearance(w, b"0 g 2 2 16 16 re f")
    off = appearance(w, b"")
    box = widget_dict((100, 650, 120, 670))
    box.update({N("/FT"): N("/Btn"), N("/T"): text("agree"), N("/V"): N("/Off"),
                N("/AS"): N("/Off"), N("/AP"): generic.DictionaryObject({N("/N"): (
                    generic.DictionaryObject({N("/Yes"): on, N("/Off"): off}))})})
    add_form(w, [box])


@pytest.fixture(scope="module")
async def signed_checkbox(test_pki) -> bytes:
    return await sign_sample(fields_pdf(_checkbox_form), test_pki, "officer")


def test_checkbox_state_with_value_is_form_filling(signed_checkbox, test_pki):
    """Legitimate: /AS follows /V (§12.7.5.2.3)."""
    def tick(w):
        box = field_named(w, "agree")
        box[N("/V")] = N("/Yes")
        box[N("/AS")] = N("/Yes")
        w.update_container(box)

    sig = verify_first(incremental(signed_checkbox, tick), test_pki)
    assert sig.verdict is Verdict.VALID, sig.errors


def test_checkbox_state_without_value_is_modified(signed_checkbox, test_pki):
    """Near miss: the box shows ticked while its value stays /Off."""
    def tick_look(w):
        box = field_named(w, "agree")
        box[N("/AS")] = N("/Yes")
        w.update_container(box)

    sig = verify_first(incremental(signed_checkbox, tick_look), test_pki)
    assert sig.verdict is Verdict.INVALID and sig.reason == "MODIFIED_AFTER_SIGNING"


def _visible_sig_form(w) -> None:
    sig_fields.append_signature_field(
        w, sig_fields.SigFieldSpec("Sig_agency", box=(300, 80, 500, 140)))


@pytest.fixture(scope="module")
async def with_empty_sig_field(test_pki) -> bytes:
    base = fields_pdf(lambda w: (_amount_form(w), _visible_sig_form(w)))
    return await sign_sample(base, test_pki, "officer")


@pytest.fixture(scope="module")
async def both_signed(with_empty_sig_field, test_pki) -> bytes:
    return await sign_sample(with_empty_sig_field, test_pki, "seal", field_name="Sig_agency")


def test_signing_existing_empty_sig_field_stays_form_filling(both_signed, test_pki):
    """Legitimate: the agency signs the field planted before the first signature."""
    sig = verify_first(both_signed, test_pki)
    assert sig.verdict is Verdict.VALID, sig.errors
    assert sig.modification_level == "FORM_FILLING"


def test_signed_sig_field_appearance_swap_is_modified(both_signed, test_pki):
    """The same trick on a signature: after the agency signed, a later revision swaps its
    stamp's appearance. Both signatures must fail."""

    def swap(w):
        field = field_named(w, "Sig_agency")
        field[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("FORGED"))})
        w.update_container(field)

    pdf = incremental(both_signed, swap)
    report = verify_pdf(pdf, VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True))
    assert [s.verdict for s in report.signatures] == [Verdict.INVALID, Verdict.INVALID]
    assert {s.reason for s in report.signatures} == {"MODIFIED_AFTER_SIGNING"}


@pytest.fixture(scope="module")
async def agency_new_field(signed_amount, test_pki) -> bytes:
    """The agency signs in a visible field it creates after the officer's signature."""
    return await sign_sample(signed_amount, test_pki, "seal", field_name="Sig_new",
                             visible_box=(300, 80, 500, 140))


def test_new_signature_field_appearance_swapped_later_is_modified(agency_new_field, test_pki):
    """Compared with the officer's revision alone, field Sig_new is "created and signed"; the
    swap is seen against the agency's revision (the one before it)."""
    def swap(w):
        field = field_named(w, "Sig_new")
        field[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("FORGED"))})
        w.update_container(field)

    assert verify_first(agency_new_field, test_pki).verdict is Verdict.VALID
    report = verify_pdf(incremental(agency_new_field, swap),
                        VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True))
    assert [s.verdict for s in report.signatures] == [Verdict.INVALID, Verdict.INVALID]


def test_filled_field_appearance_swapped_in_a_later_revision_is_modified(both_signed,
                                                                         test_pki):
    """Revision n+1 fills the amount (value and appearance, legitimate); revision n+2 swaps
    only its appearance. Against the signed revision n both look like filling."""
    def fill(w):
        field = field_named(w, "amount")
        field[N("/V")] = text("200")
        field[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("200"))})
        w.update_container(field)

    filled = incremental(both_signed, fill)
    first = verify_first(filled, test_pki)
    assert first.verdict is Verdict.VALID, first.errors
    sig = verify_first(incremental(filled, _swap_ap), test_pki)
    assert sig.verdict is Verdict.INVALID and sig.reason == "MODIFIED_AFTER_SIGNING"


def test_empty_sig_field_appearance_swap_is_modified(with_empty_sig_field, test_pki):
    """An unsigned signature field's appearance swapped without signing it (a fake stamp)."""
    def fake_stamp(w):
        field = field_named(w, "Sig_agency")
        field[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("SEAL"))})
        w.update_container(field)

    sig = verify_first(incremental(with_empty_sig_field, fake_stamp), test_pki)
    assert sig.verdict is Verdict.INVALID and sig.reason == "MODIFIED_AFTER_SIGNING"


def test_page_untouched_by_overlay_helpers(signed_amount):
    """Guard for the helpers above: the attack revisions do not touch the page."""
    def nothing(w):
        page(w)

    assert incremental(signed_amount, nothing).startswith(signed_amount)

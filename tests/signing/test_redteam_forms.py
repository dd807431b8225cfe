"""Red team of the verifier's form, annotation and CMS relaxations: each test builds a PDF whose
shown content or meaning changes after a signature (or whose signature is not all the
signer's) and asserts that the signature is not valid; each legitimate control stays valid.
Helpers: :mod:`tests.signing.redteam_forms_kit`. Rules: :mod:`signing.verify.diff.forms`,
:mod:`signing.verify.diff.visibility`, :mod:`signing.verify.diff.annotations`."""

from __future__ import annotations

import hashlib
import io

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject as N
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers

from signing.report import Verdict
from signing.testpki.samples import load_signer, sign_sample
from signing.verify import VerificationPolicy, verify_pdf
from tests.signing import cms_tools as t
from tests.signing.diffkit import (
    add_form,
    appearance,
    field_named,
    fields_pdf,
    incremental,
    page,
    text,
    text_field,
    verify_first,
)
from tests.signing.redteam_forms_kit import (
    HIDDEN,
    PRINT,
    assert_refused,
    free_text,
    planted_form,
    set_keys,
    shows,
)

_OPAQUE = b"1 g 0 0 340 50 re f 0 g BT /Helv 11 Tf 12 30 Td (01. Forged line) Tj ET"


@pytest.fixture(scope="module")
async def signed_planted(test_pki) -> bytes:
    return await sign_sample(fields_pdf(planted_form), test_pki, "officer")


def _policy(pki) -> VerificationPolicy:
    return VerificationPolicy(trust_roots=pki.trust_roots, offline=True)


@pytest.mark.parametrize("mutate", [
    set_keys("shadow", F=generic.NumberObject(PRINT)),
    set_keys("amount", F=generic.NumberObject(PRINT | HIDDEN)),
], ids=["hidden-field-shown", "signed-field-hidden"])
def test_shadow_hide_and_replace_by_annotation_flags_iso32000_2_table_167(
        signed_planted, test_pki, mutate):
    """Shadow "hide-and-replace" (Mainka et al. NDSS 2021): a hidden field planted before
    signing is shown afterwards (or a signed one hidden) by its /F flags alone, value and
    appearance untouched. Stock pyHanko calls it FORM_FILLING."""
    assert verify_first(signed_planted, test_pki).verdict is Verdict.VALID
    sig = verify_first(incremental(signed_planted, mutate), test_pki)
    assert_refused(sig)
    assert sig.reason == "MODIFIED_AFTER_SIGNING"


def _need_appearances(w) -> None:
    form = w.root["/AcroForm"]
    form[N("/NeedAppearances")] = generic.BooleanObject(True)
    w.update_container(form)


def test_shadow_need_appearances_switched_on_iso32000_2_12_7_3(signed_planted, test_pki):
    """Field "note" shows APPROVED (its signed /AP) while its /V says REJECTED: switching
    /NeedAppearances on makes viewers rebuild it from /V (ISO 32000-2 §12.7.3 Table 224)."""
    assert_refused(verify_first(incremental(signed_planted, _need_appearances), test_pki))


@pytest.mark.parametrize("mutate", [
    set_keys("amount", DA=text("/Helv 10 Tf 1 g")),
    set_keys("amount", Q=generic.NumberObject(2)),
    set_keys("amount", Ff=generic.NumberObject(1 << 13)),
    set_keys("amount", MK=generic.DictionaryObject({N("/BG"): generic.ArrayObject(
        [generic.FloatObject(1)])})),
    set_keys("amount", MaxLen=generic.NumberObject(1)),
], ids=["da-white-text", "quadding", "ff-password", "mk-background", "maxlen"])
def test_shadow_variable_text_keys_without_value_iso32000_2_12_7_4_3(
        signed_planted, test_pki, mutate):
    """What a viewer draws a text field from (/DA, /Q, §12.7.4.3; type flags /Ff, Table 227;
    /MK, /MaxLen) changed while the value did not."""
    assert_refused(verify_first(incremental(signed_planted, mutate), test_pki))


def test_control_filling_with_new_da_and_read_only_flag_stays_form_filling(
        signed_planted, test_pki):
    """Legitimate: a new value with its appearance, a new /DA and the ReadOnly field flag
    (Table 227 bit 1, common to all fields)."""
    def fill(w):
        field = field_named(w, "amount")
        field[N("/V")] = text("200")
        field[N("/DA")] = text("/Helv 12 Tf 0 g")
        field[N("/Ff")] = generic.NumberObject(1)
        field[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("200"))})
        w.update_container(field)

    sig = verify_first(incremental(signed_planted, fill), test_pki)
    assert sig.verdict is Verdict.VALID, sig.errors
    assert sig.modification_level == "FORM_FILLING"


def _popup_with_ap(w) -> None:
    free_text(w, (60, 740, 80, 760), b"", "/Text")
    pg, _ = page(w)
    note = pg["/Annots"][-1]
    popup = w.add_object(generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Popup"), N("/Parent"): pg["/Annots"].raw_get(
            len(pg["/Annots"]) - 1), N("/Open"): generic.BooleanObject(True),
        N("/Rect"): generic.ArrayObject(generic.NumberObject(v) for v in (310, 730, 560, 800)),
        N("/AP"): generic.DictionaryObject({N("/N"): appearance(w, _OPAQUE)})}))
    note[N("/Popup")] = popup
    w.update_container(note)
    pg[N("/Annots")] = generic.ArrayObject([*pg["/Annots"], popup])
    w.update_container(pg)


@pytest.mark.parametrize("mutate", [
    lambda w: free_text(w, (60, 740, 400, 790), _OPAQUE),
    lambda w: free_text(w, (60, 740, 400, 790), _OPAQUE, "/Text"),
], ids=["free-text", "large-note"])
def test_evil_annotation_over_page_content_is_reported_iso32000_2_12_8_2_2(
        signed_planted, test_pki, mutate):
    """Evil Annotation Attack (Mainka et al., IEEE S&P 2021) on an approval signature: a
    comment whose appearance writes over the signed page text (line 01 at y 756). ISO 32000-2
    §12.8.2.2.2 lets comments be added where no DocMDP forbids it, and reference validators
    accept them with a warning; the verifier does too, and names the comment
    (ANNOTATION_ADDED with its type and rectangle) so intake can flag the document
    ([intake] annotated). Under a certification P=1/P=2 the same change is invalid
    (tests/signing/test_diff_forms.py::test_comment_after_certification_p2_is_refused)."""
    sig = verify_first(incremental(signed_planted, mutate), test_pki)
    assert sig.verdict is Verdict.VALID and sig.modification_level == "ANNOTATIONS"
    added = [w["message"] for w in sig.warnings if w["code"] == "ANNOTATION_ADDED"]
    assert len(added) == 1 and "[60 740 400 790]" in added[0], sig.warnings


def test_popup_with_its_own_appearance_is_refused_iso32000_2_12_5_6_14(signed_planted,
                                                                      test_pki):
    """A pop-up is a window the viewer draws (§12.5.6.14): one with its own appearance
    stream is no comment, whatever it paints."""
    assert_refused(verify_first(incremental(signed_planted, _popup_with_ap), test_pki))


def _empty_sig_field(content: bytes | None):
    def add(w):
        fields.append_signature_field(w, fields.SigFieldSpec("Fake", box=(60, 740, 400, 790)))
        if content is not None:
            field = field_named(w, "Fake")
            field[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, content)})
            w.update_container(field)
    return add


def test_sneaky_signature_unsigned_field_with_appearance_is_refused(signed_planted, test_pki):
    """Sneaky Signature Attack (Mainka et al., IEEE S&P 2021): an unsigned signature field
    added after signing whose appearance covers page text. Control: the same field as pyHanko
    creates it (empty appearance) stays valid."""
    sig = verify_first(incremental(signed_planted, _empty_sig_field(None)), test_pki)
    assert sig.verdict is Verdict.VALID, sig.errors
    assert_refused(verify_first(incremental(signed_planted, _empty_sig_field(_OPAQUE)),
                                test_pki))


@pytest.fixture(scope="module")
async def two_visible(test_pki, plain_pdf) -> bytes:
    first = await sign_sample(plain_pdf, test_pki, "officer", visible_box=(50, 50, 250, 120))
    return await sign_sample(first, test_pki, "seal", visible_box=(300, 50, 500, 120))


def test_signature_widget_hidden_after_signing_is_refused(two_visible, test_pki):
    """The officer's visible signature hidden (/F Hidden) after the agency signed."""
    report = verify_pdf(two_visible, _policy(test_pki))
    assert report.verdict is Verdict.VALID, report.to_json()
    hidden = incremental(two_visible, set_keys("Sig_officer", F=generic.NumberObject(
        PRINT | HIDDEN)))
    for sig in verify_pdf(hidden, _policy(test_pki)).signatures:
        assert_refused(sig)


@pytest.fixture(scope="module")
async def locked(test_pki) -> bytes:
    """A form signed with a FieldMDP lock of every field (ISO 32000-2 §12.8.2.4)."""
    pdf = fields_pdf(lambda w: add_form(w, [text_field(w, "amount", "100")]))
    meta = signers.PdfSignatureMetadata(field_name="Sig", subfilter=fields.SigSeedSubFilter.PADES)
    spec = fields.SigFieldSpec("Sig", field_mdp_spec=fields.FieldMDPSpec(
        fields.FieldMDPAction.ALL))
    out = await signers.PdfSigner(meta, signer=load_signer(test_pki, "officer"),
                                  new_field_spec=spec).async_sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf)))
    return out.getvalue()


def test_field_lock_bypass_by_filling_iso32000_2_12_8_2_4(locked, test_pki):
    """Regression: filling a field that the signature's /Lock locks is refused."""
    assert verify_first(locked, test_pki).verdict is Verdict.VALID
    fill = set_keys("amount", V=text("999"))
    assert_refused(verify_first(incremental(locked, fill), test_pki))


# -- CMS ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
async def rsa_signed(test_pki, plain_pdf) -> bytes:
    return await sign_sample(plain_pdf, test_pki, "officer")


def _with_signed_data(pdf: bytes, sd: cms.SignedData) -> bytes:
    return t.with_cms(pdf, cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump())


def test_message_digest_attribute_twice_rfc5652_11_2(rsa_signed, test_pki, test_pki_folder):
    """Regression: RFC 5652 §11.2 (messageDigest: exactly one value, once). A second
    messageDigest attribute (or value) over other bytes, properly signed, is refused."""
    key = t.load_key(test_pki_folder / "keys-rsa" / "officer.key.pem")
    sd = t.content_info(rsa_signed)["content"].copy()
    si = sd["signer_infos"][0]
    attrs = list(si["signed_attrs"])
    md = next(a for a in attrs if a["type"].native == "message_digest")
    rest = [a for a in attrs if a is not md]
    variants = [
        [*attrs, cms.CMSAttribute({"type": "message_digest", "values": [b"\0" * 32]})],
        [*rest, cms.CMSAttribute({"type": "message_digest", "values": [
            md["values"][0].native, b"\0" * 32]})],
    ]
    for new_attrs in variants:
        new_si = si.copy()
        new_si["signed_attrs"] = cms.CMSAttributes(new_attrs)
        new_si["signature"] = key.sign(new_si["signed_attrs"].untag().dump(),
                                       padding.PKCS1v15(), hashes.SHA256())
        sd["signer_infos"] = cms.SignerInfos([new_si])
        sig = verify_pdf(_with_signed_data(rsa_signed, sd), _policy(test_pki)).signatures[0]
        assert_refused(sig)


@pytest.fixture(scope="module")
async def two_signer_infos(rsa_signed, ec_pki) -> bytes:
    digest = hashlib.sha256(t.signed_range(rsa_signed)).digest()
    ec_signer = load_signer(ec_pki, "officer")
    other = (await ec_signer.async_sign(digest, "sha256"))["content"]
    sd = t.content_info(rsa_signed)["content"].copy()
    sd["signer_infos"] = cms.SignerInfos([sd["signer_infos"][0].copy(),
                                          other["signer_infos"][0].copy()])
    sd["certificates"] = cms.CertificateSet([*sd["certificates"], cms.CertificateChoices(
        name="certificate", value=ec_signer.signing_cert)])
    return _with_signed_data(rsa_signed, sd)


def test_second_signer_info_untrusted_etsi_en_319_142_1_6_3(two_signer_infos, test_pki):
    """Regression: a valid trusted SignerInfo beside one from a signer outside the trust
    anchors (over the same bytes): the signature is as good as its worst SignerInfo."""
    report = verify_pdf(two_signer_infos, _policy(test_pki))
    sig = report.signatures[0]
    assert sig.verdict is not Verdict.VALID, sig.to_json()
    assert report.verdict is not Verdict.VALID

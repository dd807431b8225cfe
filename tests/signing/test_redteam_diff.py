"""Red-team tests of the gateway's difference policy (signing/verify/diff/).

Each test is an attack: a PDF whose *visible* content changes after the signature, built so
that one of the policy's relaxations (LTV increments, undefined references read as null,
vendor trailer keys, orphans, linearized files, equal re-writes, form resources) might clear
it. Every one of them must leave the signature not valid.
"""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.verify import VerificationPolicy, verify_pdf
from signing.verify.diff.linearized import merge_linearized
from tests.signing.redteam_kit import (
    EVIL,
    append_raw,
    append_update,
    base_objects,
    build_pdf,
    hybrid_override,
    linearized_future_prev,
    page_annots,
    page_dict,
    sign,
    stream,
)


@pytest.fixture(scope="module")
def offline(test_pki):
    return VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)


def _not_valid(pdf: bytes, offline, reason: str = "MODIFIED_AFTER_SIGNING") -> None:
    """The one signature is invalid, for ``reason`` (not for a fault of the test's bytes)."""
    sig, = verify_pdf(pdf, offline).signatures
    assert sig.verdict.value == "invalid" and sig.reason == reason, sig.to_json()
    assert not sig.integrity_ok


# -- forward references (ISO 32000-2 §7.3.10) cleared by blanket approvals --------------------

def test_equal_copy_under_forward_referenced_number_iso32000_7_3_10(test_pki, offline):
    """The signed page refers ahead to 99 (null when signed). Afterwards an unrelated object
    (6) is re-written to refer to a *copy* of its stream 7 under number 99: an equal value
    (equality rule), but 99 is now drawn by the page."""
    objs = base_objects(contents=b"[4 0 R 99 0 R]")
    objs[6] = b"<< /Holder 7 0 R >>"
    objs[7] = stream(EVIL)
    signed = sign(build_pdf(objs), test_pki)
    later = append_update(signed, {6: b"<< /Holder 99 0 R >>", 99: stream(EVIL)})
    _not_valid(later, offline)


def test_annotation_appearance_forward_referenced_by_page_iso32000_7_3_10(test_pki, offline):
    """A comment added after signing (ANNOTATIONS) whose appearance stream is object 99, which
    the signed page's /Contents already named: the page itself now draws it."""
    signed = sign(build_pdf(base_objects(contents=b"[4 0 R 99 0 R]")), test_pki)
    ap = stream(EVIL, b" /Type /XObject /Subtype /Form /BBox [0 0 10 10]")
    later = append_update(signed, {
        3: page_dict(contents=b"[4 0 R 99 0 R]", extra=b" /Annots [%s 20 0 R]"
                     % page_annots(signed)),
        20: b"<< /Type /Annot /Subtype /Text /Rect [500 800 510 810] /P 3 0 R"
            b" /AP << /N 99 0 R >> >>",
        99: ap,
    })
    _not_valid(later, offline)


# -- form default resources (ISO 32000-2 §12.7.4.3) shared with a page ------------------------

def test_dr_font_added_to_dictionary_shared_with_page_resources_iso32000_12_7_4_3(
        test_pki, offline):
    """/AcroForm /DR /Font is the same object as the page's /Resources /Font; the page shows
    text in font /F9, missing when signed. Adding /F9 "to the form's resources" (a Type 3 font
    drawing a black box for the space) changes the page."""
    content = (b"BT /F1 12 Tf 72 720 Td (Signed text) Tj ET "
               b"BT /F9 200 Tf 72 300 Td (  ) Tj ET")
    objs = base_objects(resources=b"<< /Font 6 0 R >>")
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [] /DR << /Font 6 0 R >> >> >>"
    objs[4] = stream(content)
    objs[6] = b"<< /F1 5 0 R >>"
    signed = sign(build_pdf(objs), test_pki)
    later = append_update(signed, {
        6: b"<< /F1 5 0 R /F9 30 0 R >>",
        30: b"<< /Type /Font /Subtype /Type3 /FontBBox [0 0 1000 1000]"
            b" /FontMatrix [0.001 0 0 0.001 0 0] /CharProcs << /space 31 0 R >>"
            b" /Encoding << /Type /Encoding /Differences [32 /space] >>"
            b" /FirstChar 32 /LastChar 32 /Widths [1000] /Resources << >> >>",
        31: stream(b"1000 0 0 0 1000 1000 d1 0 0 1000 1000 re f"),
    })
    _not_valid(later, offline)


# -- linearized files (ISO 32000-2 Annex F) ---------------------------------------------------

def test_linearized_first_page_prev_into_bytes_after_signature_annex_f(test_pki, offline):
    """Annex F: the first-page section's /Prev names the main section of the *same* file
    written at the same time. Here it points past the signed bytes, where the attacker later
    writes a "main section" defining what the page draws; it must not be merged into the
    signed revision (pyHanko's coverage check refuses the merged revision too, as ending past
    the signed bytes; the merge itself must not happen)."""
    pdf = linearized_future_prev(test_pki)
    assert not merge_linearized(PdfFileReader(io.BytesIO(pdf)))
    _not_valid(pdf, offline, "COVERAGE")


# -- already refused: kept as regressions ------------------------------------------------------

def _catalog_with_dss(signed: bytes, dss: bytes) -> bytes:
    """The signed catalog (pyHanko added /AcroForm) with ``/DSS`` added."""
    import re

    body = re.findall(rb"(?<!\d)1 0 obj\s*(<<.*?>>)\s*endobj", signed, re.S)[-1]
    return body[:-2] + b" /DSS " + dss + b" >>"


def test_dss_certs_array_shared_with_page_contents_iso32000_12_8_4_3(test_pki, offline):
    """ISO 32000-2 §12.8.4.3: the DSS holds validation data only. The signed page's /Contents
    is array 8; a later revision lists that same array as the DSS /Certs and appends a new
    DER-certificate stream to it, which the page then draws as content."""
    objs = base_objects(contents=b"8 0 R")
    objs[8] = b"[4 0 R]"
    signed = sign(build_pdf(objs), test_pki)
    der = test_pki.root_cert.dump()
    later = append_update(signed, {
        1: _catalog_with_dss(signed, b"<< /Type /DSS /Certs 8 0 R >>"),
        8: b"[4 0 R 50 0 R]",
        50: stream(der),
    })
    _not_valid(later, offline)


def test_vri_entry_is_the_page_object_iso32000_12_8_4_4(test_pki, offline):
    """§12.8.4.4: a VRI entry is a /Type /VRI dictionary of validation data; the page object
    re-written "as a VRI entry" (its /Contents now drawing EVIL) is no LTV update."""
    signed = sign(build_pdf(base_objects()), test_pki)
    key = b"/" + b"A" * 40
    later = append_update(signed, {
        1: _catalog_with_dss(signed, b"<< /Type /DSS /VRI << %s 3 0 R >> >>" % key),
        3: page_dict(contents=b"[4 0 R 50 0 R]",
                     extra=b" /Annots [%s]" % page_annots(signed)),
        50: stream(EVIL),
    })
    _not_valid(later, offline)


def test_vendor_trailer_object_then_drawn_by_rewritten_page_iso32000_7_5_5(test_pki, offline):
    """§7.5.5: an object only a vendor trailer key reaches is no content (an orphan) in the
    revision that adds it; the next revision re-writing the page to draw it is a change."""
    signed = sign(build_pdf(base_objects()), test_pki)
    smuggled = append_update(signed, {60: stream(EVIL)}, b" /Foo 60 0 R")
    later = append_update(smuggled, {
        3: page_dict(contents=b"[4 0 R 60 0 R]", extra=b" /Annots [%s]" % page_annots(signed)),
    }, b" /Foo 60 0 R")
    _not_valid(later, offline)


def test_equal_copy_referring_to_other_existing_object_iso32000_7_3_10(test_pki, offline):
    """Equality rule: a re-written resource dictionary whose font reference now names another
    *existing* object (7, a different font) is not "equal" even if the dictionaries match
    key for key."""
    objs = base_objects(resources=b"6 0 R")
    objs[6] = b"<< /Font << /F1 5 0 R >> >>"
    objs[7] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>"
    signed = sign(build_pdf(objs), test_pki)
    later = append_update(signed, {6: b"<< /Font << /F1 7 0 R >> >>"})
    _not_valid(later, offline)


def test_stream_rewritten_equal_decoded_other_filter_iso32000_7_4(test_pki, offline):
    """Equality rule (§7.4 filters): a content stream re-written Flate-compressed decodes to the
    same bytes yet is compared raw (bytes and /Filter): the new page content (here: other
    text) is a change, and so even the same text under another filter stays one."""
    import zlib

    signed = sign(build_pdf(base_objects()), test_pki)
    later = append_update(signed, {4: stream(zlib.compress(EVIL), b" /Filter /FlateDecode")})
    _not_valid(later, offline)


def test_generation_bump_of_object_the_page_named_iso32000_7_5_4(test_pki, offline):
    """§7.5.4 (generation numbers): before signing, object 9 is freed with next generation 1
    and the page names ``9 1 R`` (null when signed); afterwards ``9 1`` is defined (EVIL)."""
    objs = base_objects(contents=b"[4 0 R 9 1 R]")
    objs[9] = stream(b"% placeholder")
    freed = append_raw(build_pdf(objs), {}, b"9 1\n0000000000 00001 f \n")
    signed = sign(freed, test_pki)
    later = append_raw(signed, {(9, 1): stream(EVIL)}, b"9 1\n@9 00001 n \n")
    _not_valid(later, offline)


def test_hybrid_update_redefines_page_content_in_xref_stream_iso32000_7_5_8_4(test_pki,
                                                                             offline):
    """§7.5.8.4 hybrid-reference update: the classic table lists only the stream, the
    ``/XRefStm`` stream re-defines the page content (only stream-aware readers see it)."""
    signed = sign(build_pdf(base_objects()), test_pki)
    _not_valid(hybrid_override(signed, 4, stream(EVIL)), offline)

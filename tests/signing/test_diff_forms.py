"""Legitimate form filling and comments after a signature that stock pyHanko 0.38 refuses, and
the near misses that must stay refused (rules in :mod:`signing.verify.diff`)."""

from __future__ import annotations

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject as N
from pyhanko.sign import fields as sig_fields
from pyhanko.sign.fields import MDPPerm

from signing.report import Verdict
from signing.testpki.samples import sign_sample
from signing.verify import VerificationPolicy, verify_pdf
from tests.signing.diffkit import (
    add_form,
    appearance,
    field_named,
    fields_pdf,
    incremental,
    num,
    page,
    shows,
    text,
    text_field,
    verify_first,
    widget_dict,
)


def _valid(sig, level: str = "FORM_FILLING") -> None:
    assert sig.verdict is Verdict.VALID, (sig.reason, sig.errors)
    assert sig.modification_level == level
    assert sig.integrity_ok


def _refused(sig) -> None:
    assert sig.verdict is Verdict.INVALID
    assert sig.reason in ("MODIFIED_AFTER_SIGNING", "DOCMDP"), sig.reason
    assert not sig.integrity_ok


# -- 4a: choice field /I with /V ---------------------------------------------------------------

def _choice_form(w) -> None:
    ch = widget_dict()
    ch.update({N("/FT"): N("/Ch"), N("/T"): text("city"), N("/DA"): text("/Helv 10 Tf 0 g"),
               N("/Opt"): generic.ArrayObject([text("Hanoi"), text("Hue"), text("Saigon")]),
               N("/V"): text("Hanoi"), N("/I"): num(0),
               N("/AP"): generic.DictionaryObject({N("/N"): appearance(w, shows("Hanoi"))})})
    add_form(w, [ch])


@pytest.fixture(scope="module")
async def signed_choice(test_pki) -> bytes:
    return await sign_sample(fields_pdf(_choice_form), test_pki, "officer")


def test_choice_indices_follow_value_iso32000_2_12_7_5_4(signed_choice, test_pki):
    def choose(w):
        ch = field_named(w, "city")
        ch[N("/V")], ch[N("/I")] = text("Hue"), num(1)
        ch[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("Hue"))})
        w.update_container(ch)

    _valid(verify_first(incremental(signed_choice, choose), test_pki))


def test_choice_indices_without_value_are_refused(signed_choice, test_pki):
    def reselect(w):
        ch = field_named(w, "city")
        ch[N("/I")] = num(2)
        w.update_container(ch)

    _refused(verify_first(incremental(signed_choice, reselect), test_pki))


# -- 4b: value on the parent field, appearance on its widget kid, fonts added to /DR ------------

def _kids_form(w) -> None:
    widget = w.add_object(widget_dict())
    widget.get_object()[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, b"")})
    parent = generic.DictionaryObject({N("/FT"): N("/Tx"), N("/T"): text("number"),
                                       N("/Kids"): generic.ArrayObject([widget])})
    (parent_ref,) = add_form(w, [parent], widgets=[widget])
    widget.get_object()[N("/Parent")] = parent_ref


@pytest.fixture(scope="module")
async def signed_kids(test_pki) -> bytes:
    return await sign_sample(fields_pdf(_kids_form), test_pki, "officer")


def _fill_kid(w, *, value: bool = True, extra=None) -> None:
    parent = field_named(w, "number")
    if value:
        parent[N("/V")] = text("12/UBND")
        w.update_container(parent)
    widget = parent["/Kids"][0]
    font = w.add_object(generic.DictionaryObject({
        N("/Type"): N("/Font"), N("/Subtype"): N("/Type1"), N("/BaseFont"): N("/Times-Roman")}))
    fonts = w.root["/AcroForm"]["/DR"]["/Font"]
    fonts[N("/TiRo")] = font
    w.update_container(fonts)
    widget[N("/DA")] = text("/TiRo 10 Tf 0 g")
    widget[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("12/UBND"))})
    if extra:
        extra(widget, w)
    w.update_container(widget)


def test_parent_value_with_kid_appearance_and_dr_font_iso32000_2_12_7_4_3(signed_kids, test_pki):
    _valid(verify_first(incremental(signed_kids, _fill_kid), test_pki))


def test_kid_widget_moved_while_filling_is_refused(signed_kids, test_pki):
    def move(widget, w):
        widget[N("/Rect")] = num(0, 0, 600, 800)

    _refused(verify_first(incremental(signed_kids, lambda w: _fill_kid(w, extra=move)),
                          test_pki))


def test_kid_appearance_without_parent_value_is_refused(signed_kids, test_pki):
    _refused(verify_first(incremental(signed_kids, lambda w: _fill_kid(w, value=False)),
                          test_pki))


def test_dr_font_replaced_is_refused(signed_kids, test_pki):
    """Only additions to /DR /Font: an existing font name must keep its font."""
    def swap_font(widget, w):
        fonts = w.root["/AcroForm"]["/DR"]["/Font"]
        fonts[N("/Helv")] = fonts.raw_get("/TiRo")
        w.update_container(fonts)

    _refused(verify_first(incremental(signed_kids, lambda w: _fill_kid(w, extra=swap_font)),
                          test_pki))


# -- 4c: obsolete /Name dropped from a /DR font --------------------------------------------------

def _helv(w) -> generic.DictionaryObject:
    return w.root["/AcroForm"]["/DR"]["/Font"]["/Helv"]


def test_obsolete_font_name_removed_iso32000_2_table_109(signed_kids, test_pki):
    def drop_name(w):
        font = _helv(w)
        del font[N("/Name")]
        w.update_container(font)

    _valid(verify_first(incremental(signed_kids, drop_name), test_pki))


def test_font_changed_beyond_name_is_refused(signed_kids, test_pki):
    def change_font(w):
        font = _helv(w)
        del font[N("/Name")]
        font[N("/BaseFont")] = N("/Courier")
        w.update_container(font)

    _refused(verify_first(incremental(signed_kids, change_font), test_pki))


# -- 4d: structure tree additions for a new signature widget -------------------------------------

def _tagged(w) -> None:
    _, pg_ref = page(w)
    root_ref = w.add_object(generic.DictionaryObject({N("/Type"): N("/StructTreeRoot")}))
    doc = w.add_object(generic.DictionaryObject({
        N("/Type"): N("/StructElem"), N("/S"): N("/Document"), N("/P"): root_ref,
        N("/Pg"): pg_ref, N("/K"): generic.NumberObject(0)}))
    tree = w.add_object(generic.DictionaryObject({N("/Nums"): generic.ArrayObject()}))
    root_ref.get_object().update({N("/K"): generic.ArrayObject([doc]), N("/ParentTree"): tree,
                                  N("/ParentTreeNextKey"): generic.NumberObject(0)})
    w.root[N("/StructTreeRoot")] = root_ref
    w.root[N("/MarkInfo")] = generic.DictionaryObject({N("/Marked"): generic.BooleanObject(True)})
    w.update_root()


@pytest.fixture(scope="module")
async def signed_tagged(test_pki) -> bytes:
    return await sign_sample(fields_pdf(_tagged), test_pki, "officer")


def _tag_new_widget(w, content=None) -> None:
    _, pg_ref = page(w)
    sig_fields.append_signature_field(
        w, sig_fields.SigFieldSpec("Sig_agency", box=(300, 80, 500, 140)))
    widget = next(r for r in w.root["/AcroForm"]["/Fields"]
                  if str(r.get_object().get("/T")) == "Sig_agency")
    root = w.root["/StructTreeRoot"]
    root_ref = w.root.raw_get("/StructTreeRoot")
    objr = generic.DictionaryObject({N("/Type"): N("/OBJR"), N("/Obj"): widget,
                                     N("/Pg"): pg_ref})
    if content is not None:
        objr = content(pg_ref)
    elem = w.add_object(generic.DictionaryObject({
        N("/Type"): N("/StructElem"), N("/S"): N("/Form"), N("/P"): root_ref, N("/K"): objr}))
    root["/K"].append(elem)
    root[N("/ParentTreeNextKey")] = generic.NumberObject(1)
    w.update_container(root)
    tree = root["/ParentTree"]
    tree["/Nums"].extend([generic.NumberObject(0), elem])
    w.update_container(tree)
    wd = widget.get_object()
    wd[N("/StructParent")] = generic.NumberObject(0)
    w.update_container(wd)


def test_struct_tree_entry_for_new_widget_iso32000_2_14_7_5_4(signed_tagged, test_pki):
    _valid(verify_first(incremental(signed_tagged, _tag_new_widget), test_pki))


@pytest.mark.parametrize("content", [
    lambda pg_ref: generic.NumberObject(0),  # an MCID: existing page content
    lambda pg_ref: generic.DictionaryObject({N("/Type"): N("/OBJR"), N("/Obj"): pg_ref}),
], ids=["mcid", "page"])
def test_struct_tree_entry_for_existing_content_is_refused(signed_tagged, test_pki, content):
    pdf = incremental(signed_tagged, lambda w: _tag_new_widget(w, content))
    _refused(verify_first(pdf, test_pki))


# -- 4e: an object replaced by an equal one under another number ---------------------------------

def _contents_copy(w, data: bytes | None = None) -> None:
    pg, _ = page(w)
    old = pg["/Contents"]
    copy = generic.StreamObject({k: v for k, v in old.items() if k != "/Length"},
                                encoded_data=data if data is not None else old.encoded_data)
    pg[N("/Contents")] = w.add_object(copy)
    w.update_container(pg)


@pytest.fixture(scope="module")
async def signed_plain(test_pki, plain_pdf) -> bytes:
    return await sign_sample(plain_pdf, test_pki, "officer")


def test_equal_object_under_new_number_is_no_change_iso32000_2_7_3_10(signed_plain, test_pki):
    _valid(verify_first(incremental(signed_plain, _contents_copy), test_pki), "LTA_UPDATES")


def test_nearly_equal_object_under_new_number_is_refused(signed_plain, test_pki):
    def tweak(w):
        pg, _ = page(w)
        _contents_copy(w, pg["/Contents"].encoded_data.replace(b"1", b"7", 1))

    _refused(verify_first(incremental(signed_plain, tweak), test_pki))


def test_reserialised_field_appearance_is_not_an_overlay(test_pki, signed_amount_pdf):
    """/AP /N replaced by a new stream with identical bytes and dictionary, value unchanged."""
    def reserialise(w):
        field = field_named(w, "amount")
        old = field["/AP"]["/N"]
        copy = generic.StreamObject({k: v for k, v in old.items() if k != "/Length"},
                                    encoded_data=old.encoded_data)
        field[N("/AP")] = generic.DictionaryObject({N("/N"): w.add_object(copy)})
        w.update_container(field)

    sig = verify_first(incremental(signed_amount_pdf, reserialise), test_pki)
    assert sig.verdict is Verdict.VALID, sig.errors


@pytest.fixture(scope="module")
async def signed_amount_pdf(test_pki) -> bytes:
    pdf = fields_pdf(lambda w: add_form(w, [text_field(w, "amount", "100")]))
    return await sign_sample(pdf, test_pki, "officer")


# -- 4f: comments after an approval signature ----------------------------------------------------

def _comment(w, *, rect=(400, 400, 420, 420), extra: dict | None = None,
             names: dict | None = None) -> None:
    pg, pg_ref = page(w)
    note = generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Text"), N("/Rect"): num(*rect),
        N("/Contents"): text("Đã xem"), N("/P"): pg_ref,
        N("/AP"): generic.DictionaryObject({N("/N"): appearance(w, b"1 1 0 rg 0 0 20 20 re f")})})
    note.update(extra or {})
    note_ref = w.add_object(note)
    popup = w.add_object(generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Popup"), N("/Parent"): note_ref,
        N("/Rect"): num(420, 300, 560, 400)}))
    note[N("/Popup")] = popup
    pg[N("/Annots")] = generic.ArrayObject([*pg.get("/Annots", []), note_ref, popup])
    w.update_container(pg)
    tree = {N("/AP"): generic.DictionaryObject({N("/Names"): generic.ArrayObject(
        [text("note1"), appearance(w, b"0 0 1 rg 0 0 20 20 re f")])})}
    tree.update(names or {})
    w.root[N("/Names")] = w.add_object(generic.DictionaryObject(tree))
    w.update_root()


def test_comment_after_approval_signature_is_annotations_iso32000_2_12_8_2_2(signed_plain,
                                                                            test_pki):
    pdf = incremental(signed_plain, _comment)
    report = verify_pdf(pdf, VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True))
    sig = report.signatures[0]
    _valid(sig, "ANNOTATIONS")
    assert "ANNOTATIONS_ADDED" in {w["code"] for w in sig.warnings}
    assert sig.docmdp is None and report.integrity_ok


@pytest.fixture(scope="module")
async def certified(test_pki, plain_pdf) -> dict[int, bytes]:
    return {p.value: await sign_sample(plain_pdf, test_pki, "officer", certify=True, docmdp=p)
            for p in (MDPPerm.FILL_FORMS, MDPPerm.ANNOTATE)}


def test_comment_after_certification_p2_is_refused(certified, test_pki):
    sig = verify_first(incremental(certified[2], _comment), test_pki)
    _refused(sig)
    assert sig.docmdp == 2


def test_comment_after_certification_p3_is_valid(certified, test_pki):
    sig = verify_first(incremental(certified[3], _comment), test_pki)
    _valid(sig, "ANNOTATIONS")
    assert sig.docmdp == 3


_JS = generic.DictionaryObject({N("/S"): N("/JavaScript"), N("/JS"): text("app.alert(1)")})


@pytest.mark.parametrize("variant", [
    {"extra": {N("/A"): _JS}},
    {"extra": {N("/AA"): generic.DictionaryObject({N("/E"): _JS})}},
    {"names": {N("/JavaScript"): generic.DictionaryObject({N("/Names"): generic.ArrayObject(
        [text("x"), _JS])})}},
    {"names": {N("/EmbeddedFiles"): generic.DictionaryObject({
        N("/Names"): generic.ArrayObject()})}},
    {"rect": (0, 0, 612, 792)},  # covers the signature's and every other annotation
], ids=["action", "additional-action", "javascript-names", "embedded-files", "covers-widget"])
def test_comment_with_action_file_or_cover_is_refused(variant, test_pki, signed_visible):
    _refused(verify_first(incremental(signed_visible, lambda w: _comment(w, **variant)),
                          test_pki))


@pytest.fixture(scope="module")
async def signed_visible(test_pki, plain_pdf) -> bytes:
    return await sign_sample(plain_pdf, test_pki, "officer", visible_box=(50, 50, 250, 120))


def test_comment_beside_signature_widget_is_valid(signed_visible, test_pki):
    """The control for the near misses above: the same comment, not covering the widget."""
    _valid(verify_first(incremental(signed_visible, _comment), test_pki), "ANNOTATIONS")


def test_existing_annotation_changed_is_refused(signed_visible, test_pki):
    """Comments are added, never existing annotations changed (here: the signature's widget
    gets a new /Contents tooltip)."""
    def edit(w):
        pg, _ = page(w)
        widget = pg["/Annots"][0]
        widget[N("/Contents")] = text("approved by someone else")
        w.update_container(widget)

    _refused(verify_first(incremental(signed_visible, edit), test_pki))


# -- item 5: a period in a partial name --------------------------------------------------------

def _dotted_form(w) -> None:
    add_form(w, [text_field(w, "so.ky_hieu", None), text_field(w, "date", None,
                                                              rect=(100, 650, 300, 670))])


@pytest.fixture(scope="module")
async def signed_dotted(test_pki) -> bytes:
    return await sign_sample(fields_pdf(_dotted_form), test_pki, "officer")


def test_dotted_name_in_signed_revision_is_tolerated_iso32000_2_12_7_4_2(signed_dotted,
                                                                        test_pki):
    def fill_date(w):
        field = field_named(w, "date")
        field[N("/V")] = text("2024-05-20")
        field[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("20/5/2024"))})
        w.update_container(field)

    _valid(verify_first(incremental(signed_dotted, fill_date), test_pki))


def test_new_field_with_dotted_name_is_refused(signed_dotted, test_pki):
    def add_dotted_sig(w):
        pg, pg_ref = page(w)
        sig = widget_dict((0, 0, 0, 0))
        sig.update({N("/FT"): N("/Sig"), N("/T"): text("date.x"), N("/P"): pg_ref})
        ref = w.add_object(sig)
        fields = w.root["/AcroForm"]["/Fields"]
        fields.append(ref)
        w.update_container(fields)
        pg["/Annots"].append(ref)
        w.update_container(pg)

    _refused(verify_first(incremental(signed_dotted, add_dotted_sig), test_pki))


def _colliding_form(w) -> None:
    """Root field ``a.b`` and field ``a`` with kid ``b``: one fully qualified name, two fields."""
    kid = text_field(w, "b", None, rect=(100, 650, 300, 670))
    kid_ref = w.add_object(kid)
    parent = generic.DictionaryObject({N("/FT"): N("/Tx"), N("/T"): text("a"),
                                       N("/Kids"): generic.ArrayObject([kid_ref])})
    dotted = text_field(w, "a.b", None)
    refs = add_form(w, [dotted, parent], widgets=[])
    kid[N("/Parent")] = refs[1]
    pg, pg_ref = page(w)
    for annot in (refs[0], kid_ref):
        annot.get_object()[N("/P")] = pg_ref
    pg[N("/Annots")] = generic.ArrayObject([refs[0], kid_ref])
    w.update_container(pg)


@pytest.fixture(scope="module")
async def signed_colliding(test_pki) -> bytes:
    return await sign_sample(fields_pdf(_colliding_form), test_pki, "officer")


def test_two_fields_with_one_qualified_name_are_refused(signed_colliding, test_pki):
    """A filled "a.b" could be either field: the analysis would see only one of them."""
    def fill(w):
        field = field_named(w, "a.b")
        field[N("/V")] = text("x")
        w.update_container(field)

    _refused(verify_first(incremental(signed_colliding, fill), test_pki))


# -- /SigFlags (ISO 32000-2 §12.7.3 Table 225) ---------------------------------------------------

def _sig_flags(value):
    def set_flags(w) -> None:
        form = w.root["/AcroForm"]
        form[N("/SigFlags")] = generic.NumberObject(value)
        if isinstance(w.root.raw_get("/AcroForm"), generic.IndirectObject):
            w.update_container(form)
        else:
            w.update_root()
    return set_flags


@pytest.mark.parametrize("value", [1, 7], ids=["append-only-cleared", "unknown-bit-set"])
def test_sig_flags_cleared_or_unknown_bit_is_refused_iso32000_2_table_225(
        value, signed_plain, test_pki):
    """/SigFlags may gain SignaturesExist (1) or AppendOnly (2) after signing (endesive sets
    them when it co-signs a certified file: tests/signing/test_interop.py), never lose one nor
    gain another bit (pyHanko signs with 3)."""
    _refused(verify_first(incremental(signed_plain, _sig_flags(value)), test_pki))


async def test_comment_and_new_signature_in_one_revision_iso32000_2_12_8_2_2(signed_plain,
                                                                           test_pki):
    """A clerk writes the number as a comment and applies the agency seal in one revision
    (Decree 30 practice with tools that have no form field for it): the competent person's
    approval signature sees a comment (ANNOTATIONS, reported) and a new visible signature
    field; the seal covers everything. pyHanko's signature-field rule refuses any other new
    annotation beside a new widget; the comment rule now binds both to the page."""
    import io

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    from signing.testpki.samples import load_signer

    writer = IncrementalPdfFileWriter(io.BytesIO(signed_plain))
    _comment(writer, rect=(300, 700, 500, 720))
    meta = signers.PdfSignatureMetadata(field_name="Seal", md_algorithm="sha256",
                                        subfilter=sig_fields.SigSeedSubFilter.PADES)
    out = await signers.PdfSigner(
        meta, signer=load_signer(test_pki, "seal"),
        new_field_spec=sig_fields.SigFieldSpec("Seal", box=(300, 600, 500, 680)),
    ).async_sign_pdf(writer)
    from signing.verify import async_verify_pdf

    report = await async_verify_pdf(out.getvalue(), VerificationPolicy(
        trust_roots=test_pki.trust_roots, offline=True))
    first, seal = report.signatures
    _valid(first, "ANNOTATIONS")
    assert any(w["code"] == "ANNOTATION_ADDED" and "/Text" in w["message"]
               for w in first.warnings), first.warnings
    assert seal.verdict is Verdict.VALID and seal.modification_level == "NONE"

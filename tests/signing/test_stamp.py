"""Decree 30 appearances checked as images (pdftoppm -> PNG -> pillow) and the two-signature
original: competent person, then agency filling number/date fields (FORM_FILLING)."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from signing.appearance import DEFAULT_LAYOUT, seal_box
from signing.errors import SigningError
from signing.fonts import default_font_path
from signing.sign import (
    DATE_FIELD,
    NUMBER_FIELD,
    FormFieldsMissing,
    SignRequest,
    prepare_form_fields,
    sign_pdf,
)
from signing.testpki.pdfs import make_pdf
from tests.signing.test_sign_levels import p12_keys  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(not shutil.which("pdftoppm"), reason="poppler not installed")
DPI = 72  # 1 px = 1 pt
SIG_BOX = (330.0, 200.0, 480.0, 260.0)


def render(pdf: bytes, tmp_path) -> Image.Image:
    src = tmp_path / "in.pdf"
    src.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", str(DPI), "-png", "-f", "1", "-l", "1", "-singlefile", str(src),
         str(tmp_path / "page")],
        check=True,
    )  # fmt: skip
    return Image.open(tmp_path / "page.png").convert("RGB")


def times_width(text: str, size: float) -> float:
    """Width of ``text`` from the original (2048-upem) Times-metric font, independently of the
    rescaled copy the signer embeds."""
    from fontTools.ttLib import TTFont

    font = TTFont(str(default_font_path()))
    cmap, hmtx, upem = font.getBestCmap(), font["hmtx"], font["head"].unitsPerEm
    assert upem == 2048
    return sum(hmtx[cmap[ord(c)]][0] for c in text) * size / upem


def blank_pdf() -> bytes:
    return make_pdf(1, "x", lines_per_page=1)


def pixels(img, box_pdf, pred):
    """Count pixels satisfying pred inside a PDF-coordinate box (y up) of a 72-dpi render."""
    x0, y0, x1, y1 = box_pdf
    h = img.height
    crop = img.crop((int(x0), int(h - y1), int(x1), int(h - y0)))
    return sum(1 for p in crop.getdata() if pred(p))


def is_blue(p):
    r, g, b = p
    return b > 150 and r < 120 and g < 140


def is_red(p):
    r, g, b = p
    return r > 170 and g < 110 and b < 110


def is_dark(p):
    return sum(p) < 300


@pytest.fixture(scope="module")
def original(p12_keys):  # noqa: F811
    """Competent person then agency on one PDF."""
    first = sign_pdf(
        blank_pdf(), SignRequest(role="competent_person", box=SIG_BOX, page=0), p12_keys["officer"]
    )
    second = sign_pdf(
        first.data,
        SignRequest(role="agency", document_number="123/QĐ-UBND", document_date="ngày 20/5/2024"),
        p12_keys["seal"],
    )
    return first, second


def test_both_signatures_valid_first_is_form_filling(original, test_pki):
    _, second = original
    reader = PdfFileReader(io.BytesIO(second.data))
    sigs = reader.embedded_regular_signatures
    assert [s.field_name for s in sigs] == ["CompetentPerson", "AgencySeal"]
    vc = ValidationContext(trust_roots=test_pki.trust_roots, allow_fetching=False,
                           revocation_mode="soft-fail")  # fmt: skip
    first_status = validate_pdf_signature(sigs[0], vc)
    assert first_status.bottom_line and first_status.docmdp_ok
    assert first_status.modification_level == ModificationLevel.FORM_FILLING
    assert validate_pdf_signature(sigs[1], vc).bottom_line
    values = {}
    for ref in reader.root["/AcroForm"]["/Fields"]:
        obj = ref.get_object()
        values[obj["/T"]] = obj.get("/V")
    assert values[NUMBER_FIELD] == "123/QĐ-UBND"
    assert values[DATE_FIELD] == "ngày 20/5/2024"


def test_pdfsig_accepts_both(original, tmp_path):
    path = tmp_path / "two.pdf"
    path.write_bytes(original[1].data)
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    assert out.count("Signature is Valid.") == 2


def test_blue_signature_and_red_seal_over_its_left_third(original, tmp_path):
    first, second = original
    img1 = render(first.data, tmp_path)
    assert pixels(img1, SIG_BOX, is_blue) > 300
    assert pixels(img1, SIG_BOX, is_red) == 0
    img2 = render(second.data, tmp_path)
    seal = seal_box(SIG_BOX)
    assert seal[2] == pytest.approx(SIG_BOX[0] + (SIG_BOX[2] - SIG_BOX[0]) / 3)
    assert seal[2] - seal[0] == pytest.approx(DEFAULT_LAYOUT.seal_diameter)
    assert pixels(img2, seal, is_red) > 1500
    left_third = (SIG_BOX[0], SIG_BOX[1], seal[2], SIG_BOX[3])
    right_part = (seal[2] + 2, SIG_BOX[1], SIG_BOX[2], SIG_BOX[3])
    assert pixels(img2, left_third, is_red) > 100  # the seal covers the left third
    assert pixels(img2, right_part, is_red) == 0  # ... and only that
    assert pixels(img2, right_part, is_blue) > 100  # the signature stays visible on the right


def test_attachment_text_top_right_in_times_10pt(p12_keys, tmp_path):  # noqa: F811
    number = "123/QĐ-UBND"
    result = sign_pdf(blank_pdf(), SignRequest(role="attachment", document_number=number),
                      p12_keys["seal"])  # fmt: skip
    img = render(result.data, tmp_path)
    w, h = img.size
    top_right = (w / 2, h - 60, w, h)  # PDF coordinates
    assert pixels(render(blank_pdf(), tmp_path), top_right, is_dark) == 0  # empty before
    dark = [(x, y) for y in range(0, 60) for x in range(w // 2, w) if is_dark(img.getpixel((x, y)))]
    assert dark, "no text at the top right of page 1"
    xs = [x for x, _ in dark]
    ys = [y for _, y in dark]
    width = max(xs) - min(xs)
    time_line = "Thời gian ký: " + result.signing_time.isoformat()
    expected = times_width(time_line, 10)
    assert expected == pytest.approx(width, rel=0.08), (width, expected)
    assert max(xs) > w - 40 and min(ys) < 40  # against the top-right margins
    assert max(ys) - min(ys) < 30  # two 10 pt lines


def test_agency_cannot_add_fields_after_first_signature(p12_keys):  # noqa: F811
    first = sign_pdf(blank_pdf(), SignRequest(role="competent_person", prepare_fields=False),
                     p12_keys["officer"])  # fmt: skip
    with pytest.raises(FormFieldsMissing) as err:
        sign_pdf(first.data, SignRequest(role="agency", document_number="1/UBND"),
                 p12_keys["seal"])  # fmt: skip
    assert err.value.code == "SIGN_FORM_FIELDS_MISSING"


def test_prepare_form_fields_then_sign_and_fill(p12_keys, test_pki):  # noqa: F811
    prepared = prepare_form_fields(blank_pdf())
    first = sign_pdf(prepared, SignRequest(role="competent_person", prepare_fields=False),
                     p12_keys["officer"])  # fmt: skip
    second = sign_pdf(first.data, SignRequest(role="agency", document_number="9/QĐ"),
                      p12_keys["seal"])  # fmt: skip
    reader = PdfFileReader(io.BytesIO(second.data))
    vc = ValidationContext(trust_roots=test_pki.trust_roots, allow_fetching=False,
                           revocation_mode="soft-fail")  # fmt: skip
    assert all(validate_pdf_signature(s, vc).bottom_line
               for s in reader.embedded_regular_signatures)  # fmt: skip


def _sig_rects(pdf: bytes) -> dict[str, tuple[float, ...]]:
    """/Rect of each signature field's widget, by field name, read back from the PDF."""
    reader = PdfFileReader(io.BytesIO(pdf))
    out = {}
    for ref in reader.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if field.get("/FT") == "/Sig":
            x0, y0, x1, y1 = (float(v) for v in field["/Rect"])
            out[str(field["/T"])] = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    return out


def test_attachment_and_copy_stamps_on_page_one_do_not_overlap(p12_keys, tmp_path):  # noqa: F811
    """Decree 30/2020 Appendix I: the attachment stamp (top right of page 1) and the copy stamp
    (SAO Y, top right of page 1) are both legible: with automatic placement the later one goes
    under the earlier, inside the page; the rendered ink of each is inside its own /Rect."""
    attached = sign_pdf(blank_pdf(), SignRequest(role="attachment", document_number="45/QĐ-UBND"),
                        p12_keys["seal"])  # fmt: skip
    copied = sign_pdf(attached.data, SignRequest(role="copy", copy_form="SAO Y",
                                                 agency_name="Văn phòng UBND tỉnh"),
                      p12_keys["seal"])  # fmt: skip
    rects = _sig_rects(copied.data)
    assert len(rects) == 2, rects
    (name_a, a), (name_c, c) = sorted(rects.items(), key=lambda kv: -kv[1][3])  # top first
    assert (name_a, name_c) == ("AgencyAttachment", "AgencyCopy")
    assert a[2] <= c[0] or c[2] <= a[0] or a[1] >= c[3] or c[1] >= a[3], (a, c)  # disjoint
    assert c[3] <= a[1] and c[2] == pytest.approx(a[2])  # the copy stamp right under
    img = render(copied.data, tmp_path)
    w, h = img.size
    for box in (a, c):
        assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h  # within the page
        assert pixels(img, box, is_dark) > 50, (box, "no ink where the /Rect says")
    # all ink at the top right of the page is inside one of the two rectangles (2 pt slack)
    top_right = (w / 2, h - 200, w, h)
    ink = pixels(img, top_right, is_dark)
    inside = sum(pixels(img, (b[0] - 2, b[1] - 2, b[2] + 2, b[3] + 2), is_dark) for b in (a, c))
    assert ink == inside and ink > 100, (ink, inside)


def _widget_rects(pdf: bytes, kind: str) -> dict[str, tuple[float, ...]]:
    """/Rect of each field of type ``kind`` (``/Sig``, ``/Tx``) on page 1, by field name."""
    reader = PdfFileReader(io.BytesIO(pdf))
    out = {}
    for ref in reader.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if field.get("/FT") == kind:
            x0, y0, x1, y1 = (float(v) for v in field["/Rect"])
            out[str(field["/T"])] = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    return out


def _disjoint(a, b) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_stamps_never_cover_the_number_and_date_fields(p12_keys):  # noqa: F811
    """Decree 30/2020 Appendix I: the number/notation and place/date fields that
    prepare_form_fields puts near the top of page 1 stay legible: stamps placed automatically
    at the top right (attachment, copies) go under them, never over them (ISO 32000-2
    §12.5.2: every widget annotation's /Rect is a region of the page it owns)."""
    pdf = prepare_form_fields(blank_pdf())
    stamps = [SignRequest(role="attachment", document_number="45/QĐ-UBND"),
              SignRequest(role="copy", copy_form="SAO Y", agency_name="Văn phòng UBND tỉnh"),
              SignRequest(role="copy", copy_form="SAO LỤC", agency_name="Sở Nội vụ"),
              SignRequest(role="copy", copy_form="TRÍCH SAO", agency_name="Sở Tư pháp")]
    for req in stamps:
        pdf = sign_pdf(pdf, req, p12_keys["seal"]).data
    text = _widget_rects(pdf, "/Tx")
    sigs = _widget_rects(pdf, "/Sig")
    assert set(text) == {"SoKyHieu", "NgayBanHanh"} and len(sigs) == 4, (text, sigs)
    for name, box in sigs.items():
        for field, rect in text.items():
            assert _disjoint(box, rect), (name, box, field, rect)
        assert box[1] >= 0, (name, box)


def test_a_stamp_wider_than_the_page_is_refused_not_drawn_off_it(p12_keys):  # noqa: F811
    """A text block placed automatically must lie inside page 1 (ISO 32000-2 §14.11.2: what is
    outside the crop box is not shown): a number too long for the page's width is refused
    with SIGN_NO_ROOM (the caller may give a box), never drawn off the left edge."""
    with pytest.raises(SigningError) as err:
        sign_pdf(blank_pdf(), SignRequest(role="attachment", document_number="1/" + "Q" * 200),
                 p12_keys["seal"])
    assert err.value.code == "SIGN_NO_ROOM"

"""Stamp fonts: cached per process, Vietnamese glyphs embedded with outlines and a correct
ToUnicode map, one embedded font per revision, and the cache never leaks between texts."""

from __future__ import annotations

import io
import re

from fontTools.ttLib import TTFont
from pyhanko.pdf_utils.reader import PdfFileReader

from signing import fonts
from signing.sign import SignRequest, sign_pdf
from signing.testpki.pdfs import make_pdf
from tests.signing.test_sign_levels import p12_keys  # noqa: F401  (fixture)


def _revision_fonts(pdf: bytes) -> list:
    """Type0 fonts added by the last revision."""
    reader = PdfFileReader(io.BytesIO(pdf))
    last = reader.xrefs.total_revisions - 1
    found = []
    for ref in reader.xrefs.explicit_refs_in_revision(last):
        obj = reader.get_object(ref)
        if isinstance(obj, dict) and obj.get("/Subtype") == "/Type0":
            found.append(obj)
    return found


def _to_unicode(font) -> dict[int, str]:
    """CID -> text from the font's ToUnicode CMap (bfchar; bfrange with a start or an array)."""
    cmap = font["/ToUnicode"].data.decode("ascii")
    out = {}

    def text(hex_: str) -> str:
        return bytes.fromhex(hex_).decode("utf-16be")

    for section in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for src, dst in re.findall(r"<(\w+)>\s*<(\w+)>", section):
            out[int(src, 16)] = text(dst)
    for section in re.findall(r"beginbfrange(.*?)endbfrange", cmap, re.S):
        for lo, hi, dst in re.findall(r"<(\w+)>\s*<(\w+)>\s*(<\w+>|\[[^]]*\])", section):
            cids = range(int(lo, 16), int(hi, 16) + 1)
            if dst.startswith("["):
                out.update(zip(cids, map(text, re.findall(r"<(\w+)>", dst)), strict=True))
            else:
                first = text(dst[1:-1])
                for i, cid in enumerate(cids):
                    out[cid] = first[:-1] + chr(ord(first[-1]) + i)
    return out


def test_vietnamese_text_embedded_with_outlines_and_tounicode(p12_keys):  # noqa: F811
    number = "123/QĐ-UBND ỹỵữ"
    signed = sign_pdf(make_pdf(1, "x"), SignRequest(role="attachment", document_number=number),
                      p12_keys["seal"])  # fmt: skip
    (font,) = _revision_fonts(signed.data)
    cid_font = font["/DescendantFonts"][0]
    program = TTFont(io.BytesIO(cid_font["/FontDescriptor"]["/FontFile2"].data))
    assert "fpgm" not in program and "GSUB" not in program  # unhinted, no layout tables
    to_unicode = _to_unicode(font)
    text = number + "Thời gian ký" + signed.signing_time.isoformat()
    glyf = program["glyf"]
    for ch in {c for c in text if not c.isspace()}:
        cids = [cid for cid, u in to_unicode.items() if u == ch]
        assert cids, f"{ch!r} missing from ToUnicode"
        glyph = glyf[program.getGlyphName(cids[0])]
        assert glyph.numberOfContours != 0, f"{ch!r} has no outline in the embedded subset"
    widths = cid_font["/W"]
    assert len(widths) >= 2  # widths of the glyphs used, from the 1000-upem font


def test_second_stamp_reuses_the_subset(p12_keys):  # noqa: F811
    fonts.subset_font_file.cache_clear()
    for number in ("1/UBND", "98765/QĐ-BTC"):  # other digits, other letters, other times
        sign_pdf(make_pdf(1, "x"), SignRequest(role="attachment", document_number=number),
                 p12_keys["seal"])  # fmt: skip
    info = fonts.subset_font_file.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_text_outside_the_repertoire_gets_its_own_subset(p12_keys):  # noqa: F811
    fonts.subset_font_file.cache_clear()
    req = SignRequest(role="attachment", document_number="1/UBND")
    sign_pdf(make_pdf(1, "x"), req, p12_keys["seal"])
    odd = SignRequest(role="attachment", document_number="№ 1 ± Ω")  # not Vietnamese/ASCII
    signed = sign_pdf(make_pdf(1, "x"), odd, p12_keys["seal"])
    assert fonts.subset_font_file.cache_info().misses == 2
    (font,) = _revision_fonts(signed.data)
    assert {"№", "±", "Ω"} <= set(_to_unicode(font).values())


def test_number_and_date_fields_share_one_font(p12_keys):  # noqa: F811
    first = sign_pdf(make_pdf(1, "x"), SignRequest(role="competent_person"), p12_keys["officer"])
    second = sign_pdf(
        first.data,
        SignRequest(role="agency", document_number="5/QĐ", document_date="ngày 20/5/2024"),
        p12_keys["seal"],
    )
    assert len(_revision_fonts(second.data)) == 1

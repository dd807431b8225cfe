"""File-structure rules of the difference analysis:

* undefined references are null (ISO 32000-2 §7.3.10) and objects only non-document trailer keys
  reach are no document content (§7.5.5, Table 15);
* a linearized file's first-page and main cross-reference sections are one revision (Annex F).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm, enumerate_sig_fields

from signing.testpki.samples import load_signer, sign_sample
from signing.verify import VerificationPolicy, verify_pdf


@pytest.fixture(scope="module")
def offline(test_pki):
    return VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)


def _codes(sig) -> set[str]:
    return {w["code"] for w in sig.warnings}


# -- raw PDF bytes ------------------------------------------------------------------------------

_CONTENT = b"BT /F1 12 Tf 72 720 Td (Signed text) Tj ET"


def raw_pdf(contents: bytes = b"4 0 R", trailer_extra: bytes = b"") -> bytes:
    """One page; ``contents`` is the page's /Contents value; ``trailer_extra`` adds keys."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R"
        b" >> >> /Contents " + contents + b" >>",
        b"<< /Length %d >>\nstream\n" % len(_CONTENT) + _CONTENT + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, trailer_extra, xref_at)
    return bytes(out)


def append_update(pdf: bytes, objects: dict[int, bytes], trailer_extra: bytes = b"") -> bytes:
    """Append an incremental update written by hand (classic xref table)."""
    prev = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    size = max([int(s) for s in re.findall(rb"/Size (\d+)", pdf)] + [n + 1 for n in objects])
    root = re.findall(rb"/Root (\d+ \d+ R)", pdf)[-1]
    out = bytearray(pdf if pdf.endswith(b"\n") else pdf + b"\n")
    offsets = {}
    for num, body in sorted(objects.items()):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n" + b"".join(b"%d 1\n%010d 00000 n \n" % (n, offsets[n])
                                for n in sorted(offsets))
    out += b"trailer\n<< /Size %d /Root %s /Prev %d%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        size, root, prev, trailer_extra, xref_at)
    return bytes(out)


def _sign(pdf: bytes, pki, label: str = "officer", **kw) -> bytes:
    return asyncio.run(sign_sample(pdf, pki, label, level="B-B", **kw))


_FOO = b" /Foo 99 0 R"


def test_trailer_key_to_object_defined_later_is_null_iso32000_7_3_10(test_pki, offline):
    """ISO 32000-2 §7.3.10 (undefined reference = null) and §7.5.5 (only /Root /Info /ID
    /Encrypt carry document meaning): a vendor trailer key pointing at an object a later
    revision defines neither breaks the strict read of the signed revision nor is a change."""
    signed = _sign(raw_pdf(trailer_extra=_FOO), test_pki)
    later = append_update(signed, {99: b"<< /Checksum (0123456789abcdef) >>"}, _FOO)
    sig, = verify_pdf(later, offline).signatures
    assert sig.reason != "MODIFIED_AFTER_SIGNING" and not sig.errors, sig.errors
    assert sig.modification_level == "LTA_UPDATES" and sig.coverage == "ENTIRE_REVISION"
    assert {"UNDEFINED_REFERENCE_NULL", "TRAILER_ONLY_OBJECTS"} <= _codes(sig)


def test_object_defined_later_and_reached_from_old_page_is_a_modification(test_pki, offline):
    """Negative (§7.3.10): the signed page already refers ahead to object 99 (null when
    signed); a later revision that defines it changes what the page shows."""
    pdf = raw_pdf(contents=b"[4 0 R 99 0 R]", trailer_extra=_FOO)
    signed = _sign(pdf, test_pki)
    drawn = b"0 0 m 500 500 l S"
    later = append_update(signed, {99: b"<< /Length %d >>\nstream\n%s\nendstream"
                                   % (len(drawn), drawn)}, _FOO)
    sig, = verify_pdf(later, offline).signatures
    assert sig.reason == "MODIFIED_AFTER_SIGNING"


def test_object_defined_later_and_referenced_by_rewritten_page_is_a_modification(
        test_pki, offline):
    """Negative: the later revision defines 99 and rewrites the page to draw it."""
    signed = _sign(raw_pdf(trailer_extra=_FOO), test_pki)
    drawn = b"0 0 m 500 500 l S"
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0"
            b" R >> >> /Contents [4 0 R 99 0 R] >>")
    later = append_update(signed, {3: page, 99: b"<< /Length %d >>\nstream\n%s\nendstream"
                                   % (len(drawn), drawn)}, _FOO)
    sig, = verify_pdf(later, offline).signatures
    assert sig.reason == "MODIFIED_AFTER_SIGNING"


# -- linearized files (ISO 32000-2 Annex F) ----------------------------------------------------

def _linearize(pdf: bytes, tmp_path: Path) -> bytes:
    if shutil.which("qpdf") is None:
        pytest.skip("qpdf is not installed (scripts/setup.sh installs it)")
    src, dst = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(pdf)
    subprocess.run(["qpdf", "--linearize", str(src), str(dst)], check=True)
    return dst.read_bytes()


def _resign_in_place(pdf: bytes, signer) -> bytes:
    """Fill /ByteRange and /Contents of the one signature for the bytes as they now are: a
    producer that signs and linearizes in one pass (the whole file is one revision)."""
    br = re.search(rb"/ByteRange\s*\[([^\]]*)\]", pdf)
    contents = re.search(rb"/Contents\s*<([0-9a-fA-F]*)>", pdf)
    start, end = contents.start(1) - 1, contents.end(1) + 1
    value = b"0 %d %d %d" % (start, end, len(pdf) - end)
    assert len(value) <= br.end(1) - br.start(1)
    pdf = pdf[:br.start(1)] + value.ljust(br.end(1) - br.start(1)) + pdf[br.end(1):]
    digest = hashlib.sha256(pdf[:start] + pdf[end:]).digest()
    cms = asyncio.run(signer.async_sign(digest, "sha256", use_pades=True)).dump()
    hexed = cms.hex().encode().ljust(end - start - 2, b"0")
    assert len(hexed) == end - start - 2
    return pdf[:start + 1] + hexed + pdf[end - 1:]


def _xref_entries(text: bytes) -> dict[int, bytes]:
    lines, out, i = text.split(b"\n")[1:], {}, 0
    while i < len(lines) and lines[i].strip():
        first, count = map(int, lines[i].split())
        for k in range(count):
            out[first + k] = lines[i + 1 + k][:18]
        i += 1 + count
    return out


def _xref_table(entries: dict[int, bytes]) -> bytes:
    nums, runs = sorted(entries), []
    for n in nums:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    out = [b"xref"]
    for run in runs:
        out.append(b"%d %d" % (run[0], len(run)))
        out.extend(entries[n] + b" " for n in run)
    return b"\n".join(out) + b"\n"


def _move_to_main_section(lin: bytes, objnum: int) -> bytes:
    """List object ``objnum`` in the main cross-reference section instead of the first-page
    one (both are legal places for a non-first-page object; qpdf puts form objects first)."""
    fp_at = lin.index(b"xref", int(re.findall(rb"startxref\s+(\d+)", lin)[-1]))
    fp_end = lin.index(b"trailer", fp_at)
    first = _xref_entries(lin[fp_at:fp_end])
    entry = first.pop(objnum)
    table = _xref_table(first)
    pad = fp_end - fp_at - len(table)
    head = lin[:fp_at] + b" " * pad + table + lin[fp_end:]
    main_at = head.rindex(b"\nxref\n") + 1
    main_end = head.index(b"trailer", main_at)
    main = _xref_entries(head[main_at:main_end])
    main[objnum] = entry
    tail = re.sub(rb"/Size (\d+)", lambda m: b"/Size %d" % max(int(m.group(1)), objnum + 1),
                  head[main_end:], count=1)
    tail = re.sub(rb"startxref\s+\d+", b"startxref\n%d" % (fp_at + pad), tail)
    out = head[:main_at] + _xref_table(main) + tail
    length = re.search(rb"/L (\d+)", out)
    assert len(str(len(out))) == len(length.group(1))
    return out[:length.start(1)] + str(len(out)).encode() + out[length.end(1):]


@pytest.fixture(scope="module")
def linearized_signed(test_pki, tmp_path_factory, multipage_pdf) -> bytes:
    """A linearized file whose signature is part of the linearized body (signed as one
    revision), the signature dictionary listed in the main cross-reference section."""
    signed = _sign(multipage_pdf, test_pki, visible_box=(10, 10, 100, 60), page=1)
    lin = _linearize(signed, tmp_path_factory.mktemp("lin"))
    (_, sig_ref, _), = enumerate_sig_fields(PdfFileReader(io.BytesIO(lin)), filled_status=True)
    moved = _move_to_main_section(lin, sig_ref.idnum)
    return _resign_in_place(moved, load_signer(test_pki, "officer"))


def test_linearized_signed_file_is_valid(linearized_signed, offline):
    """Annex F: signed as one revision, nothing after it."""
    sig, = verify_pdf(linearized_signed, offline).signatures
    assert sig.verdict.value == "valid" and sig.coverage == "ENTIRE_FILE"


def test_linearized_sections_are_one_revision_annex_f(linearized_signed, test_pki, offline):
    """Annex F: the first-page and main sections are one revision, so a later signature leaves
    the first one covering its entire revision (stock pyHanko: CONTIGUOUS_BLOCK_FROM_START)."""
    two = _sign(linearized_signed, test_pki, "seal")
    first, second = verify_pdf(two, offline).signatures
    assert first.coverage == "ENTIRE_REVISION", first.to_json()
    assert first.verdict.value == "valid" and first.modification_level == "FORM_FILLING"
    assert "LINEARIZED" in _codes(first)
    assert second.verdict.value == "valid"


def test_linearized_then_page_changed_is_a_modification(linearized_signed, offline):
    """Negative: merging the linearized sections hides no later change."""
    reader = PdfFileReader(io.BytesIO(linearized_signed))
    page = reader.root["/Pages"]["/Kids"][0]
    contents = page.get_object().raw_get("/Contents")
    drawn = b"0 0 m 500 500 l S"
    later = append_update(linearized_signed, {contents.idnum: b"<< /Length %d >>\nstream\n%s"
                                              b"\nendstream" % (len(drawn), drawn)})
    sig, = verify_pdf(later, offline).signatures
    assert sig.reason == "MODIFIED_AFTER_SIGNING"


def test_linearized_signed_incrementally(test_pki, offline, multipage_pdf, tmp_path):
    lin = _linearize(multipage_pdf, tmp_path)
    sig, = verify_pdf(_sign(lin, test_pki), offline).signatures
    assert sig.verdict.value == "valid"


def test_linearized_certified_then_visible_field_is_refused(test_pki, offline, multipage_pdf,
                                                           tmp_path):
    """ISO 32000-2 §12.8.2.2 (DocMDP): after a certification signature, a new visible signature
    field in a later revision is still a modification (linearized input)."""
    lin = _linearize(multipage_pdf, tmp_path)
    cert = _sign(lin, test_pki, certify=True, docmdp=MDPPerm.FILL_FORMS)
    two = _sign(cert, test_pki, "seal", visible_box=(10, 10, 100, 60))
    first = verify_pdf(two, offline).signatures[0]
    assert first.verdict.value == "invalid" and first.reason == "MODIFIED_AFTER_SIGNING"


@pytest.mark.parametrize("contents,modified", [(b"4 0 R", False), (b"[4 0 R 99 0 R]", True)])
def test_dss_stream_defined_later_drawn_by_old_page_is_a_modification(test_pki, offline,
                                                                      contents, modified):
    """§7.3.10 with §12.8.4.3: object 99 (the vendor trailer key's target) is defined later as
    a DER certificate listed in a new DSS: LTA_UPDATES; but when the signed page refers ahead to
    99 (negative), the page use is not explained by the DSS: a modification."""
    from pyhanko.pdf_utils import generic

    signed = _sign(raw_pdf(contents=contents, trailer_extra=_FOO), test_pki)
    reader = PdfFileReader(io.BytesIO(signed))
    catalog = generic.DictionaryObject(reader.root)
    catalog[generic.pdf_name("/DSS")] = generic.IndirectObject(100, 0, reader)
    buf = io.BytesIO()
    catalog.write_to_stream(buf)
    der = test_pki.root_cert.dump()
    later = append_update(signed, {
        reader.root_ref.idnum: buf.getvalue(),
        99: b"<< /Length %d >>\nstream\n" % len(der) + der + b"\nendstream",
        100: b"<< /Type /DSS /Certs [99 0 R] >>",
    }, _FOO)
    sig, = verify_pdf(later, offline).signatures
    if modified:
        assert sig.reason == "MODIFIED_AFTER_SIGNING"
    else:
        assert sig.modification_level == "LTA_UPDATES" and not sig.errors, sig.errors

"""Hand-built PDFs for the red-team tests of the difference policy (test_redteam_diff.py).

Everything is raw bytes: classic cross-reference tables, objects written by number, so that a
test states exactly which object a later revision writes and what the signed one referred to.
"""

from __future__ import annotations

import asyncio
import re
import struct

from signing.testpki.samples import load_signer, sign_sample
from tests.signing.test_diff_structure import _resign_in_place, append_update

__all__ = ["EVIL", "append_raw", "append_update", "base_objects", "build_pdf",
           "hybrid_override", "linearized_future_prev", "page_annots", "page_dict", "sign",
           "stream"]

EVIL = b"BT /F1 48 Tf 72 400 Td (PAY 1,000,000 EUR) Tj ET"
"""What the attacker wants the page to show after the signature."""

TEXT = b"BT /F1 12 Tf 72 720 Td (Signed text) Tj ET"


def stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d%s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def page_dict(contents: bytes = b"4 0 R", resources: bytes = b"<< /Font << /F1 5 0 R >> >>",
              extra: bytes = b"") -> bytes:
    return (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources " + resources
            + b" /Contents " + contents + extra + b" >>")


def base_objects(**page_kw: bytes) -> dict[int, bytes]:
    """Catalog 1, pages 2, page 3, content 4, font 5 (the layout of test_diff_structure)."""
    return {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: page_dict(**page_kw),
        4: stream(TEXT),
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }


def page_annots(pdf: bytes) -> bytes:
    """The /Annots entries of the last revision's page 3 (the signature widget), as bytes."""
    found = re.findall(rb"(?<!\d)3 0 obj\s*<<.*?/Annots\s*\[([^\]]*)\]", pdf, re.S)
    return found[-1].strip() if found else b""


def build_pdf(objects: dict[int, bytes], trailer_extra: bytes = b"") -> bytes:
    """One classic revision holding ``objects`` (number -> body); /Root is object 1."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num, body in sorted(objects.items()):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    size = max(objects) + 1
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 00001 f \n"
                    for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        size, trailer_extra, xref_at)
    return bytes(out)


def append_raw(pdf: bytes, objects: dict[tuple[int, int], bytes], xref: bytes) -> bytes:
    """Append ``objects`` ((number, generation) -> body) and a classic section whose entries
    are ``xref`` (``%(n g)d`` placeholders replaced by the objects' offsets)."""
    prev = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    size = max(int(s) for s in re.findall(rb"/Size (\d+)", pdf))
    out = bytearray(pdf)
    for (num, gen), body in objects.items():
        xref = xref.replace(b"@%d" % num, b"%010d" % len(out))
        out += b"%d %d obj\n" % (num, gen) + body + b"\nendobj\n"
    at = len(out)
    out += b"xref\n" + xref + (b"trailer\n<< /Size %d /Root 1 0 R /Prev %d >>\nstartxref\n%d\n"
                               b"%%%%EOF\n" % (size, prev, at))
    return bytes(out)


def hybrid_override(signed: bytes, num: int, body: bytes) -> bytes:
    """An update whose classic table lists only its cross-reference stream, the stream
    (``/XRefStm``, ISO 32000-2 §7.5.8.4) re-defining object ``num`` as ``body``."""
    prev = int(re.findall(rb"startxref\s+(\d+)", signed)[-1])
    size = int(re.findall(rb"/Size (\d+)", signed)[-1])
    out = bytearray(signed)
    obj_at = len(out)
    out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xs_at = len(out)
    data = bytes([1]) + struct.pack(">I", obj_at) + b"\x00\x00"
    out += (b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Index [%d 1] /Length %d >>\nstream\n"
            % (size, size + 1, num, len(data)) + data + b"\nendstream\nendobj\n")
    at = len(out)
    out += (b"xref\n%d 1\n%010d 00000 n \ntrailer\n<< /Size %d /Root 1 0 R /Prev %d /XRefStm %d >>"
            b"\nstartxref\n%d\n%%%%EOF\n" % (size, xs_at, size + 1, prev, xs_at, at))
    return bytes(out)


def sign(pdf: bytes, pki, label: str = "officer", **kw) -> bytes:
    return asyncio.run(sign_sample(pdf, pki, label, level="B-B", **kw))


# -- ISO 32000-2 Annex F shape with a /Prev into the future ---------------------------------

def _xref(entries: dict[int, int], free0: bool) -> bytes:
    out = b"xref\n"
    if free0:
        out += b"0 1\n0000000000 65535 f \n"
    for n in sorted(entries):
        out += b"%d 1\n%010d 00000 n \n" % (n, entries[n])
    return out


def _prefix(prev: int, length: int) -> tuple[bytes, int]:
    """The attacker's pre-signature file: linearization dictionary (object 10), first-page
    section (trailer /Prev ``prev``), then catalog and page; the page draws 4 and 9, and 9 is
    defined nowhere in it (null, ISO 32000-2 §7.3.10). Returns (bytes, first-page xref offset).
    A dummy main section (defining nothing the document uses) ends the file, so that the copy
    signed by pyHanko (``prev`` = its offset) reads strictly."""
    objs = base_objects(contents=b"[4 0 R 9 0 R]")
    head = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    lin_at = len(head)
    head += (b"10 0 obj\n<< /Linearized 1 /L %010d /H [0 0] /O 3 /E 0 /N 1 /T 0 >>\nendobj\n"
             % length)
    # offsets of the body depend on the first-page section's length: fixed-width entries
    entries_len = len(_xref({n: 0 for n in (*objs, 10)}, True))
    trailer = b"trailer\n<< /Size 11 /Root 1 0 R /Prev %010d >>\nstartxref\n0\n%%%%EOF\n"
    fp_at = len(head)
    body_at = fp_at + entries_len + len(trailer % 0)
    offsets, body = {10: lin_at}, bytearray()
    for n, b in sorted(objs.items()):
        offsets[n] = body_at + len(body)
        body += b"%d 0 obj\n" % n + b + b"\nendobj\n"
    head += _xref(offsets, True) + trailer % prev + body
    return bytes(head), fp_at


def linearized_future_prev(pki) -> bytes:
    """Annex F look-alike whose first-page ``/Prev`` points past the signed bytes.

    The attacker's file (object 9 undefined) is signed incrementally; afterwards the attacker
    writes a "main section" defining object 9 exactly where ``/Prev`` pointed, a
    ``startxref``/``%%EOF`` naming the first-page section (so ``/L`` matches), and an empty
    update chained to the signature's revision. Read naively, the first-page and "main"
    sections are one revision and the signature covers what 9 draws."""
    dummy_at = len(_prefix(0, 0)[0])
    probe, fp_at = _prefix(dummy_at, 0)
    dummy = b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 11 >>\n"
    signed0 = sign(probe + dummy + b"startxref\n%d\n%%%%EOF\n" % fp_at, pki)
    # learn the signed length, then place the attacker's section after it
    evil = b"9 0 obj\n" + stream(EVIL) + b"\nendobj\n"
    sig_len = len(signed0)
    pad = b"\n" * 7
    obj9_at = sig_len + len(pad)
    main_at = obj9_at + len(evil)
    main = (_xref({9: obj9_at}, False) + b"trailer\n<< /Size 11 >>\n"
            + b"startxref\n%d\n%%%%EOF\n" % fp_at)
    length = main_at + len(main)
    real, _ = _prefix(main_at, length)
    assert len(real) == len(probe)
    signed = real + signed0[len(real):]
    signed = _resign_in_place(signed, load_signer(pki, "officer"))
    sig_xref = int(re.findall(rb"startxref\s+(\d+)", signed)[-1])
    size = int(re.findall(rb"/Size (\d+)", signed)[-1])
    out = signed + pad + evil + main
    empty_at = len(out)
    out += (b"xref\n0 0\ntrailer\n<< /Size %d /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
            % (size, sig_xref, empty_at))
    return out

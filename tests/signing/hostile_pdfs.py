"""Small hostile PDFs, built byte by byte (each reproduces a finding of issue 11)."""

from __future__ import annotations

import zlib


def _assemble(objects: list[bytes], *, header: bytes = b"%PDF-1.4\n", trailer: bytes) -> bytes:
    out = header
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n" + trailer + b"\nstartxref\n%d\n%%%%EOF\n" % xref


def xref_stream_bomb(declared: int = 2_000_000_000, padding: int = 0) -> bytes:
    """A cross-reference stream declaring ``declared`` entries, with rows for three of them:
    a lenient reader allocates one entry per declared object (the 591-byte finding)."""
    head = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n" + (b"%" + b"x" * 78 + b"\n") * (padding // 80)
    catalog = b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    pages = b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    off1, off2 = len(head), len(head) + len(catalog)
    off3 = off2 + len(pages)
    rows = zlib.compress(bytes([0, 0, 0, 0, 0, 255, 1]) + off1.to_bytes(4, "big") + b"\0"
                         + bytes([1]) + off2.to_bytes(4, "big") + b"\0")
    stream = (b"3 0 obj\n<< /Type /XRef /Size %d /Index [0 %d] /W [1 4 1] /Root 1 0 R"
              b" /Filter /FlateDecode /Length %d >>\nstream\n" % (declared, declared, len(rows))
              + rows + b"\nendstream\nendobj\n")
    return head + catalog + pages + stream + b"startxref\n%d\n%%%%EOF\n" % off3


def parent_loop() -> bytes:
    """One page whose /Parent chain loops (2 -> 4 -> 2) and which has no /MediaBox anywhere:
    following /Parent until a /MediaBox turns up never ends (the 538-byte finding)."""
    return _assemble([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Parent 4 0 R >>",
        b"<< /Type /Page /Parent 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R] /Count 1 /Parent 2 0 R >>",
    ], trailer=b"<< /Size 5 /Root 1 0 R >>")


def kids_loop() -> bytes:
    """A page tree whose /Kids lead back to the root, with a /Count that lies."""
    return _assemble([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2000000000"
        b" /MediaBox [0 0 595 842] >>",
        b"<< /Type /Page /Parent 2 0 R >>",
    ], trailer=b"<< /Size 4 /Root 1 0 R >>")


def nested_arrays(depth: int = 100_000) -> bytes:
    """A page whose /MediaBox is an array nested ``depth`` deep."""
    box = b"[" * depth + b"]" * depth
    return _assemble([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox " + box + b" >>",
    ], trailer=b"<< /Size 4 /Root 1 0 R >>")


def infinite_box() -> bytes:
    """A page whose /MediaBox is 1e300 wide."""
    return _assemble([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 1e300 842] >>",
    ], trailer=b"<< /Size 4 /Root 1 0 R >>")


def _page_catalog(catalog_extra: bytes, pages: bytes = b"<< /Type /Pages /Kids [3 0 R]"
                  b" /Count 1 >>") -> bytes:
    return _assemble([
        b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b" >>",
        pages,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ], trailer=b"<< /Size 4 /Root 1 0 R >>")


def acroform_not_a_dictionary() -> bytes:
    """``/AcroForm 5``: pyHanko's field enumeration raises TypeError on it."""
    return _page_catalog(b"/AcroForm 5")


def field_not_a_dictionary() -> bytes:
    """``/AcroForm << /Fields [1] >>``: a field that is a number."""
    return _page_catalog(b"/AcroForm << /Fields [1] >>")


def kids_not_an_array() -> bytes:
    """A page tree node whose ``/Kids`` is a number."""
    return _page_catalog(b"", pages=b"<< /Type /Pages /Kids 5 /Count 1 >>")

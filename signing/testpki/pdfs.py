"""Small, valid PDFs with real page content, for tests, benchmarks and the demo.

``make_pdf`` writes a classic (non-incremental) PDF 1.7 by hand: catalog, page tree, one content
stream per page drawing text in Helvetica, and a correct cross-reference table, so that strict
parsers (pyHanko with decode limits, poppler) accept it.
"""

from __future__ import annotations

__all__ = ["make_pdf", "to_hybrid_xref"]


def _escape(text: str) -> bytes:
    raw = text.encode("latin-1", "replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def make_pdf(
    pages: int = 1,
    text: str = "Test document",
    *,
    filler_bytes: int = 0,
    lines_per_page: int = 20,
) -> bytes:
    """Return a PDF of ``pages`` A4 pages, each with ``lines_per_page`` lines of ``text``.

    ``filler_bytes`` adds an unreferenced-by-pages binary stream object of that size (e.g. to
    build a ~100 MB document for memory measurements) that is still part of the object graph
    (referenced from the catalog's ``/PieceInfo``-like private key ``/EdocFiller``).
    """
    if pages < 1:
        raise ValueError("pages must be >= 1")
    objects: list[bytes] = []  # index i -> object number i + 1

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog_num = add(b"")  # placeholder
    pages_num = add(b"")
    font_num = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                   b"/Encoding /WinAnsiEncoding >>")
    page_nums = []
    for p in range(pages):
        ops = [b"BT /F1 11 Tf 14 TL 72 770 Td"]
        ops.append(b"(" + _escape(f"{text} - page {p + 1} of {pages}") + b") Tj T*")
        for i in range(lines_per_page):
            ops.append(b"(" + _escape(f"{i + 1:02d}. {text}") + b") Tj T*")
        ops.append(b"ET")
        content = b"\n".join(ops)
        content_num = add(b"<< /Length %d >>\nstream\n" % len(content) + content
                          + b"\nendstream")
        page_nums.append(add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
            % (pages_num, font_num, content_num)
        ))
    kids = b" ".join(b"%d 0 R" % n for n in page_nums)
    objects[pages_num - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages)
    extra = b""
    if filler_bytes > 0:
        chunk = bytes(range(256)) * (filler_bytes // 256 + 1)
        filler = chunk[:filler_bytes]
        filler_num = add(b"<< /Length %d >>\nstream\n" % len(filler) + filler + b"\nendstream")
        extra = b" /EdocFiller %d 0 R" % filler_num
    objects[catalog_num - 1] = b"<< /Type /Catalog /Pages %d 0 R%s >>" % (pages_num, extra)

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, catalog_num, xref_at)
    return bytes(out)


def to_hybrid_xref(pdf: bytes) -> bytes:
    """``pdf`` (one revision, classic xref table) as a hybrid-reference file (PDF 32000-1
    §7.5.8.4), the shape Microsoft Office writes: the trailer gains ``/XRefStm`` pointing to a
    cross-reference stream placed before the table. Object offsets do not move."""
    import re

    table = pdf.rindex(b"\nxref") + 1
    size = int(re.search(rb"/Size (\d+)", pdf[pdf.rindex(b"trailer"):]).group(1))
    entries = bytes([0, 0, 0, 255])  # /W [1 2 1]: object 0, free
    stream = (f"{size} 0 obj\n<< /Type /XRef /Size {size} /W [1 2 1] /Index [0 1] "
              f"/Length {len(entries)} >>\nstream\n").encode() + entries + b"\nendstream\nendobj\n"
    head = pdf[:table] + stream
    tail = pdf[table:].replace(b"trailer\n<<", b"trailer\n<< /XRefStm %d" % table, 1)
    tail = re.sub(rb"startxref\s+\d+", b"startxref\n%d" % len(head), tail)
    return head + tail

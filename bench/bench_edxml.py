"""Benchmark of the edXML codec.

Prints, for a 1 MB message (one incompressible PDF-like attachment, as real PDFs are mostly
compressed streams) and for a compressible one:
- full ``parse`` (attachment decoded and unzipped) vs plain ``lxml.etree.fromstring`` of the
  same bytes (ratio, target <= 1.5), and what a naive decoding parser pays: lxml plus reading
  the payload text plus ``binascii.a2b_base64``;
- the same ``parse`` with the optional accelerators (pybase64, zlib-ng) switched off;
- ``build`` time vs the same lxml parse;
- ``append_trace_header`` vs the same lxml parse;
and the peak memory growth (tracemalloc, Python heap; libxml2 only sees the payload-free
skeleton) of parsing a message with a 50 MB attachment, as a multiple of the attachment size
(target <= 3).
Run: ``.venv/bin/python bench/bench_edxml.py`` (about a minute).
"""

from __future__ import annotations

import binascii
import gc
import os
import statistics
import sys
import time
import tracemalloc
import zlib
from datetime import date, datetime
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.edxml import (
    Attachment,
    Code,
    DocumentType,
    EdocMessage,
    Organ,
    PromulgationInfo,
    SignerInfo,
    TraceHeader,
    append_trace_header,
    build,
    parse,
)
from gateway.edxml import payload as _payload

MB = 1024 * 1024


def message(data: bytes) -> EdocMessage:
    return EdocMessage(
        from_organ=Organ("000.00.00.G22", "Văn phòng Chính phủ"),
        to_organs=tuple(Organ(f"000.00.{i:02d}.H29", f"Sở {i}") for i in range(5)),
        document_id="000.00.00.G22,2024/03/01,123/VPCP-TTĐT",
        code=Code("123", "VPCP-TTĐT"),
        promulgation_info=PromulgationInfo("Hà Nội", date(2024, 3, 1)),
        document_type=DocumentType(1, "Công văn", 1),
        subject="Về việc thử nghiệm hiệu năng bộ mã edXML",
        signer_info=SignerInfo("Nguyễn Văn A", "KT. BỘ TRƯỞNG", "Thứ trưởng"),
        trace_headers=(TraceHeader("000.00.00.G22", datetime(2024, 3, 1, 9, 0, 0)),),
        attachments=(Attachment("a1", "vanban.pdf", "application/pdf", data),),
    )


def pdf_like(size: int) -> bytes:
    """Incompressible bytes with a PDF header (real PDFs are mostly deflated streams)."""
    return b"%PDF-1.7\n" + os.urandom(size - 9)


def text_like(size: int) -> bytes:
    words = [b"van", b"ban", b"quyet", b"dinh", b"cong", b"so", b"ngay", b"thang", b"nam"]
    rnd = os.urandom(size // 4)
    out = bytearray()
    for i, b in enumerate(rnd):
        out += words[b % len(words)] + (b"\n" if i % 13 == 0 else b" ")
        if len(out) >= size:
            break
    return bytes(out[:size])


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def _row(label: str, seconds: float, base: float, size: int) -> str:
    return (f"  {label:<34} {seconds * 1e3:8.2f} ms  {seconds / base:6.2f}x"
            f"  {size / MB / seconds:7.0f} MB/s")


def throughput(label: str, data: bytes, repeat: int = 30) -> None:
    raw = build(message(data))
    assert parse(raw).attachments[0].data == data
    lxml_t, _ = best(lambda: etree.fromstring(raw), repeat)

    def lxml_and_b64() -> None:
        root = etree.fromstring(raw)
        for el in root.iter("{*}ContentTransferEncoded"):
            binascii.a2b_base64(el.text)

    floor_t, _ = best(lxml_and_b64, repeat)
    parse_t, _ = best(lambda: parse(raw), repeat)
    saved = _payload._pybase64, _payload._zlib
    _payload._pybase64, _payload._zlib = None, zlib
    try:
        stdlib_t, _ = best(lambda: parse(raw), repeat)
    finally:
        _payload._pybase64, _payload._zlib = saved
    build_t, _ = best(lambda: build(message(data)), max(5, repeat // 3))
    trace_t, _ = best(lambda: append_trace_header(raw, "000.00.01.H29", datetime.now()), repeat)
    print(f"[{label}] message {len(raw) / MB:.2f} MB (best of {repeat}; ratio vs lxml)")
    print(_row("lxml.etree.fromstring (baseline)", lxml_t, lxml_t, len(raw)))
    print(_row("lxml + .text + a2b_base64 only", floor_t, lxml_t, len(raw)))
    print(_row("parse (unzip + checks)", parse_t, lxml_t, len(raw)))
    print(_row("parse, stdlib only (no accel.)", stdlib_t, lxml_t, len(raw)))
    print(_row("build", build_t, lxml_t, len(raw)))
    print(_row("append_trace_header", trace_t, lxml_t, len(raw)))
    verdict = "met" if parse_t <= 1.5 * lxml_t else "NOT met"
    print(f"  target parse <= 1.5x lxml: {verdict} ({parse_t / lxml_t:.2f}x)")


def peak_memory(size: int) -> None:
    data = pdf_like(size)
    raw = build(message(data))
    del data
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    msg = parse(raw)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert msg.attachments[0].size == size
    verdict = "met" if peak <= 3 * size else "NOT met"
    print(f"[{size // MB} MB attachment] message {len(raw) / MB:.1f} MB: peak heap growth during "
          f"parse {peak / MB:.1f} MB = {peak / size:.2f}x the attachment (target <= 3x: {verdict})")


def main() -> None:
    acc = _payload.accelerators()
    print(f"accelerators: base64={acc['base64']} zlib={acc['zlib']}")
    throughput("1 MB PDF-like (incompressible)", pdf_like(1 * MB))
    throughput("1 MB text (compressible)", text_like(1 * MB))
    peak_memory(50 * MB)


if __name__ == "__main__":
    main()

"""ISO 32000-2 §7.5.4: objects are created at generation 0; poppler's signer creates new objects
at generation 1. Tolerated only for object numbers never used before
(:mod:`signing.verify.xrefgen`)."""

from __future__ import annotations

import re

import pytest

from signing.report import Verdict
from signing.testpki.samples import sign_sample
from signing.verify import VerificationPolicy, verify_pdf


@pytest.fixture(scope="module")
def offline(test_pki):
    return VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)


@pytest.fixture(scope="module")
async def signed(test_pki, plain_pdf) -> bytes:
    return await sign_sample(plain_pdf, test_pki, "officer", level="B-B")


def _size_and_root(pdf: bytes) -> tuple[int, bytes, int]:
    size = int(re.findall(rb"/Size (\d+)", pdf)[-1])
    root = re.findall(rb"/Root (\d+ \d+ R)", pdf)[-1]
    startxref = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    return size, root, startxref


def _append(pdf: bytes, idnum: int, generation: int, body: bytes) -> bytes:
    """Append an incremental update (classic xref table) that writes ``idnum generation obj``."""
    size, root, prev = _size_and_root(pdf)
    out = bytearray(pdf if pdf.endswith(b"\n") else pdf + b"\n")
    offset = len(out)
    out += b"%d %d obj\n%s\nendobj\n" % (idnum, generation, body)
    xref = len(out)
    out += b"xref\n%d 1\n%010d %05d n \n" % (idnum, offset, generation)
    out += b"trailer\n<< /Size %d /Root %s /Prev %d >>\n" % (max(size, idnum + 1), root, prev)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _codes(items) -> set[str]:
    return {i["code"] for i in items}


def test_new_object_at_generation_1_is_tolerated(signed, offline):
    """ISO 32000-2 §7.5.4 (poppler quirk): a new object number first written at generation 1
    (no earlier entry at all) is read strictly and the signature stays valid."""
    size, _, _ = _size_and_root(signed)
    pdf = _append(signed, size, 1, b"<< /Producer (quirk) >>")
    report = verify_pdf(pdf, offline)
    assert report.verdict is Verdict.VALID, report.to_json()
    assert "NEW_OBJECT_GENERATION" in _codes(report.warnings)
    assert "NONSTRICT_PARSE" not in _codes(report.warnings)


def test_rewriting_the_new_object_at_its_generation_reads_strictly(signed, offline):
    """The new object may be rewritten at the generation it was created at (a plain update);
    whether that change is allowed after signing is the difference policy's to judge."""
    size, _, _ = _size_and_root(signed)
    pdf = _append(signed, size, 1, b"<< /Producer (quirk) >>")
    pdf = _append(pdf, size, 1, b"<< /Producer (quirk again) >>")
    report = verify_pdf(pdf, offline)
    assert "NEW_OBJECT_GENERATION" in _codes(report.warnings)
    assert "NONSTRICT_PARSE" not in _codes(report.warnings)


def test_higher_generation_of_an_object_in_use_is_still_refused(signed, offline):
    """ISO 32000-2 §7.5.4: a generation step needs a free entry; object 1 (in use, never freed)
    redefined at generation 1 stays a non-strict (repaired) file, never valid."""
    pdf = _append(signed, 1, 1, b"<< /Type /Catalog >>")
    report = verify_pdf(pdf, offline)
    assert report.verdict is not Verdict.VALID
    assert "NONSTRICT_PARSE" in _codes(report.warnings)
    assert "NEW_OBJECT_GENERATION" not in _codes(report.warnings)


def test_new_object_then_another_generation_is_refused(signed, offline):
    """The exception covers one generation per new object: a jump from 1 to 2 without a free
    entry is still an orphaned generation."""
    size, _, _ = _size_and_root(signed)
    pdf = _append(signed, size, 1, b"<< /Producer (quirk) >>")
    pdf = _append(pdf, size, 2, b"<< /Producer (jump) >>")
    report = verify_pdf(pdf, offline)
    assert report.verdict is not Verdict.VALID
    assert "NONSTRICT_PARSE" in _codes(report.warnings)

"""Judging the PDFs of an inbound document: which attachments are PDFs, what counts as signed."""

from __future__ import annotations

import pytest

from gateway.config import SigningSettings
from gateway.inbound.verification import PdfJudge, combine, is_pdf
from signing.testpki import build_test_pki
from signing.testpki.pdfs import make_pdf
from signing.testpki.samples import doc_timestamp, sign_sample


@pytest.mark.parametrize("name, content_type, data", [
    ("qd.pdf", None, b"x"),
    ("QD.PDF", None, b"x"),
    ("qd.pdf. ", None, b"x"),                         # Windows drops trailing dots/spaces
    ("qd.bin", "application/pdf; name=qd.pdf", b"x"),  # media type with parameters
    ("qd.bin", " Application/PDF ", b"x"),
    ("qd.bin", "application/octet-stream", b"\xef\xbb\xbf  junk\n%PDF-1.7\n"),  # junk first
])
def test_what_is_a_pdf(name, content_type, data):
    assert is_pdf(name, content_type, data)


@pytest.mark.parametrize("name, content_type, data", [
    ("qd.docx", "application/vnd.openxmlformats", b"PK\x03\x04"),
    ("pdf", None, b"plain text"),
    ("qd.bin", "application/pdfx", b"x" * 2000 + b"%PDF-1.7"),  # header too late
])
def test_what_is_not_a_pdf(name, content_type, data):
    assert not is_pdf(name, content_type, data)


def test_combine():
    from gateway.inbound.verification import FileVerdict

    def f(v):
        return FileVerdict(v, "", {})

    assert combine([]) == "unsigned"
    assert combine([f("unsigned"), f("unsigned")]) == "unsigned"
    assert combine([f("valid"), f("unsigned")]) == "indeterminate"
    assert combine([f("valid"), f("invalid")]) == "invalid"
    assert combine([f("valid"), f("valid")]) == "valid"


@pytest.fixture(scope="module")
def judge_pki(tmp_path_factory):
    return build_test_pki(tmp_path_factory.mktemp("judge-pki"))


@pytest.fixture
async def judge(judge_pki):
    j = PdfJudge(SigningSettings(trust_bundles=[str(judge_pki.trust_bundle_path)],
                                 offline=True, workers=1))
    yield j
    j.close()


async def test_timestamp_only_pdf_is_unsigned(judge, judge_pki):
    plain = make_pdf(1, "Công văn")
    async with judge_pki.serve_session() as session:
        stamped = await doc_timestamp(plain, judge_pki, session)
    verdict = await judge.judge({1: stamped, 2: await sign_sample(plain, judge_pki, "officer")})
    assert verdict.files[1].verdict == "unsigned" and verdict.files[1].signatures == 0
    assert verdict.files[1].report["timestamp_count"] == 1
    assert verdict.files[2].signatures == 1
    # one signed PDF and one only timestamped: not a wholly signed document
    assert verdict.verdict == "indeterminate"


async def test_broken_timestamp_only_pdf_is_invalid(judge, judge_pki):
    plain = make_pdf(1, "Công văn")
    async with judge_pki.serve_session() as session:
        stamped = bytearray(await doc_timestamp(plain, judge_pki, session))
    stamped[stamped.index(b"/MediaBox") + 1] ^= 0x20  # "/mediaBox": a covered byte changed
    file = await judge.judge_file(bytes(stamped))
    assert file.verdict == "invalid"


async def test_a_pdf_stopped_by_a_limit_ends_the_documents_judgement(judge, judge_pki):
    """Once one PDF is stopped by a job limit the decision is made: the PDFs still waiting are
    not judged, so a package of many hostile PDFs costs one round of limits."""
    from tests.signing.hostile_pdfs import xref_stream_bomb

    plain = make_pdf(1, "Công văn")
    pdfs = {0: xref_stream_bomb(), **{i: plain for i in range(1, 6)}}
    verdict = await judge.judge(pdfs)
    assert verdict.files[0].report["error"]["code"] == "PDF_TOO_COMPLEX"
    skipped = [o for o, f in verdict.files.items()
               if f.report.get("error", {}).get("code") == "PDF_NOT_VERIFIED"]
    assert len(skipped) >= 3  # one worker: the bomb ran first, at most one other started
    assert verdict.verdict == "invalid"
    assert judge.pool.pending == 0 or await _settles(judge.pool)


async def _settles(pool) -> bool:
    import asyncio

    for _ in range(100):
        if pool.pending == 0:
            return True
        await asyncio.sleep(0.05)
    return False

"""Signing big documents: memory bounded by the PDF's size (in memory) or constant (file to
file), output identical in validity to the in-memory path, failures leave no output."""

from __future__ import annotations

import gc
import hashlib
import io
import tracemalloc

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from signing import fonts
from signing.sign import (
    PadesLevel,
    SignedPdfFile,
    SignRequest,
    SignRequestError,
    _sign_file_in_place,
    sign_pdf,
    sign_pdf_file,
)
from signing.testpki.pdfs import make_pdf
from tests.signing.test_sign_levels import assert_valid, p12_keys  # noqa: F401  (fixture)

BIG = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def big_pdf() -> bytes:
    return make_pdf(1, "Big", filler_bytes=BIG)


def _peak_growth(fn) -> tuple[int, object]:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return tracemalloc.get_traced_memory()[1] - base, result
    finally:
        tracemalloc.stop()


def _valid(pdf: bytes, pki) -> bool:
    vc = ValidationContext(trust_roots=pki.trust_roots, allow_fetching=False,
                           revocation_mode="soft-fail")  # fmt: skip
    sigs = PdfFileReader(io.BytesIO(pdf)).embedded_regular_signatures
    return bool(sigs) and all(validate_pdf_signature(s, vc).bottom_line for s in sigs)


def test_sign_pdf_memory_at_most_twice_the_pdf(big_pdf, p12_keys, test_pki):  # noqa: F811
    # the signed copy must exist once; before the asyncio.run fix the result's repr cost ~12x
    peak, signed = _peak_growth(
        lambda: sign_pdf(big_pdf, SignRequest(role="agency", visible=False), p12_keys["seal"])
    )
    assert peak <= 2 * len(big_pdf), peak / len(big_pdf)
    assert signed.data.startswith(big_pdf) and _valid(signed.data, test_pki)
    assert "data=" not in repr(signed)  # a 100 MB repr must never be built by accident


def test_sign_pdf_file_memory_does_not_grow_with_the_pdf(big_pdf, p12_keys, test_pki, tmp_path):  # noqa: F811
    src, dst = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(big_pdf)
    req = SignRequest(role="attachment", document_number="7/UBND")
    fonts.warm_up()  # the per-process font cache is not what is measured here
    peak, result = _peak_growth(lambda: sign_pdf_file(src, dst, req, p12_keys["seal"]))
    assert peak <= len(big_pdf) // 10, peak / len(big_pdf)
    assert isinstance(result, SignedPdfFile) and result.path == dst
    data = dst.read_bytes()
    assert src.read_bytes() == big_pdf  # the input is not touched
    assert data.startswith(big_pdf) and result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.field_name == "AgencyAttachment" and _valid(data, test_pki)


def test_sign_pdf_file_failure_leaves_no_output(p12_keys, tmp_path):  # noqa: F811
    src, dst = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(make_pdf(1, "x"))
    with pytest.raises(SignRequestError) as err:
        sign_pdf_file(src, dst, SignRequest(role="agency", level="B-T"), p12_keys["seal"])
    assert err.value.code == "SIGN_NO_TSA" and not dst.exists()
    with pytest.raises(SignRequestError) as err:
        sign_pdf_file(src, src, SignRequest(role="agency"), p12_keys["seal"])
    assert err.value.code == "SIGN_SAME_FILE"
    assert src.read_bytes() == make_pdf(1, "x")


async def test_in_place_b_lta_with_tsa_and_dss(p12_keys, test_pki, pki_session, tmp_path):  # noqa: F811
    from pyhanko.sign.timestamps.aiohttp_client import AIOHttpTimeStamper
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    original = make_pdf(2, "Công văn")
    path = tmp_path / "lta.pdf"
    path.write_bytes(original)
    tsa = AIOHttpTimeStamper(test_pki.tsa_url, session=pki_session)
    vc = ValidationContext(trust_roots=test_pki.trust_roots, allow_fetching=True,
                           fetcher_backend=AIOHttpFetcherBackend(pki_session))  # fmt: skip
    req = SignRequest(role="agency", level=PadesLevel.B_LTA, document_number="3/UBND")
    with open(path, "r+b") as fh:  # noqa: ASYNC230 (the test owns the loop)
        name, _, _ = await _sign_file_in_place(fh, len(original), req, p12_keys["seal"], tsa, vc)
    data = path.read_bytes()
    assert name == "AgencySeal" and data.startswith(original)
    await assert_valid(data, test_pki, pki_session, signatures=1, level=PadesLevel.B_LTA)

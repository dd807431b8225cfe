"""sign_pdf for every Decree 30 role at every PAdES level with PKCS#12 keys, checked by stock
pyHanko validation (with the in-process CRL/OCSP/TSA of the test PKI) and poppler's pdfsig."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps.aiohttp_client import AIOHttpTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

from signing.keys import KeyAlias, Pkcs12KeySource, SignerRole
from signing.sign import PadesLevel, SignRequest, async_sign_pdf

ROLES = list(SignerRole)
LEVELS = list(PadesLevel)


def p12_source(pki, label: str, folder) -> Pkcs12KeySource:
    pw = folder / f"{label}.pass"
    pw.write_bytes(pki.p12_passphrase + b"\n")
    role = SignerRole.COMPETENT_PERSON if label == "officer" else SignerRole.AGENCY
    return Pkcs12KeySource(KeyAlias(label, role, "test", path=pki.p12(label), passphrase_file=pw))


@pytest.fixture(scope="session")
def p12_keys(test_pki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("p12keys")
    return {label: p12_source(test_pki, label, folder) for label in ("officer", "seal")}


def request_for(role: SignerRole, level: PadesLevel) -> SignRequest:
    return SignRequest(
        role=role,
        level=level,
        reason="Ban hành văn bản",
        signer_name="Nguyễn Văn A" if role is SignerRole.COMPETENT_PERSON else None,
        document_number="12/QĐ-UBND" if role is not SignerRole.COPY else None,
        copy_form="SAO Y" if role is SignerRole.COPY else None,
        agency_name="UBND tỉnh Thử Nghiệm",
        prepare_fields=True,
    )


async def sign_async(pdf, request, key, pki, session):
    tsa = AIOHttpTimeStamper(pki.tsa_url, session=session)
    vc = ValidationContext(
        trust_roots=pki.trust_roots,
        allow_fetching=True,
        fetcher_backend=AIOHttpFetcherBackend(session),
    )
    return await async_sign_pdf(pdf, request, key, timestamper=tsa, validation_context=vc)


async def assert_valid(pdf: bytes, pki, session, *, signatures: int, level: PadesLevel):
    """Every signature valid, trusted and intact for stock pyHanko; level features present."""
    reader = PdfFileReader(io.BytesIO(pdf))
    sigs = reader.embedded_regular_signatures
    assert len(sigs) == signatures
    statuses = []
    for sig in sigs:
        vc = ValidationContext(
            trust_roots=pki.trust_roots,
            allow_fetching=True,
            fetcher_backend=AIOHttpFetcherBackend(session),
        )
        status = await async_validate_pdf_signature(sig, vc)
        assert status.bottom_line, status.pretty_print_details()
        assert status.intact and status.valid and status.trusted
        assert status.docmdp_ok is not False
        assert (status.timestamp_validity is not None) == (level is not PadesLevel.B_B)
        statuses.append(status)
    has_dss = "/DSS" in reader.root
    assert has_dss == (level in (PadesLevel.B_LT, PadesLevel.B_LTA))
    assert bool(reader.embedded_timestamp_signatures) == (level is PadesLevel.B_LTA)
    return statuses


def pdfsig_ok(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    return out


@pytest.mark.parametrize("level", LEVELS, ids=[lv.value for lv in LEVELS])
@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_role_and_level_with_pkcs12(
    role, level, p12_keys, test_pki, pki_session, plain_pdf, tmp_path
):
    key = p12_keys["officer" if role is SignerRole.COMPETENT_PERSON else "seal"]
    result = await sign_async(plain_pdf, request_for(role, level), key, test_pki, pki_session)
    assert result.data.startswith(plain_pdf)  # incremental: the original bytes are untouched
    assert result.role is role and result.level is level
    assert result.signing_time.utcoffset().total_seconds() == 7 * 3600
    await assert_valid(result.data, test_pki, pki_session, signatures=1, level=level)
    if shutil.which("pdfsig"):
        out = pdfsig_ok(result.data, tmp_path)
        assert "Signature is Valid." in out
        assert f"Signature Field Name: {result.field_name}" in out


async def test_b_b_needs_no_services_and_others_refuse_without_tsa(p12_keys, plain_pdf):
    from signing.sign import SignRequestError

    key = p12_keys["seal"]
    ok = await async_sign_pdf(plain_pdf, SignRequest(role="attachment"), key)
    assert ok.data.count(b"/ByteRange") == 1
    with pytest.raises(SignRequestError) as err:
        await async_sign_pdf(plain_pdf, SignRequest(role="attachment", level="B-T"), key)
    assert err.value.code == "SIGN_NO_TSA"


async def test_hybrid_reference_pdf_signs_and_verifies(p12_keys, plain_pdf, test_pki):
    """Microsoft Office writes hybrid-reference PDFs: officers must be able to sign them."""
    from signing.report import Verdict
    from signing.testpki.pdfs import to_hybrid_xref
    from signing.verify import VerificationPolicy, async_verify_pdf

    signed = await async_sign_pdf(to_hybrid_xref(plain_pdf),
                                  SignRequest(role="competent_person"), p12_keys["officer"])
    report = await async_verify_pdf(signed.data, VerificationPolicy(
        trust_roots=test_pki.trust_roots, offline=True))
    assert report.verdict is Verdict.VALID, report.summary_vi
    assert [w["code"] for w in report.warnings] == ["HYBRID_XREF"]
    # stock pyHanko agrees once told to read hybrid files (non-strict)
    reader = PdfFileReader(io.BytesIO(signed.data), strict=False)
    status = await async_validate_pdf_signature(
        reader.embedded_regular_signatures[0],
        ValidationContext(trust_roots=test_pki.trust_roots))
    assert status.intact and status.valid and status.trusted

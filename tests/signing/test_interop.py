"""Interoperability: PDFs signed by other software (endesive, poppler's pdfsig, Apache PDFBox)
with the test PKI are judged as their content deserves.

Genuine files (one signature; officer then agency seal as Decree 30/2020 orders; a certification
signature with DocMDP P=2, alone and followed by the seal's signature, where the producer can
certify) are ``valid`` offline with the test
PKI's root as anchor (soft-fail revocation, as in ``test_verify.py``); a byte changed inside the
signed ranges (ISO 32000-2 §12.8.1: the digest covers the ByteRange) and an incremental update
that replaces the page content (not an allowed change, ISO 32000-2 §12.8.2.2 / EN 319 142-1
§5.4) are ``invalid``.

poppler's ``pdfsig`` is a second opinion on the cryptographic part only: it checks the digest
and the CMS signature of each ByteRange, not what later revisions changed.

The corpus is built in ``tests/signing/interop_corpus.py``; a producer whose tool is missing is
skipped with the reason.
"""

from __future__ import annotations

import pytest

from signing.report import Role, Verdict
from signing.testpki.pdfs import make_pdf
from signing.verify import VerificationPolicy, verify_pdf
from tests.signing import interop_corpus as corpus

PRODUCERS = tuple(corpus.PRODUCERS)

#: Files the verifier judges wrongly today, with the reason (none now: endesive's certified
#: then co-signed file sets /SigFlags bits, see signing.verify.diff.visibility.check_sig_flags).
KNOWN_WRONG: dict[tuple[str, str], str] = {}


def _cases(names):
    return [pytest.param(p, n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[p, n]))
            if (p, n) in KNOWN_WRONG else (p, n) for p in PRODUCERS for n in names]


@pytest.fixture(scope="session")
def interop(test_pki, tmp_path_factory) -> dict[str, dict[str, bytes | str]]:
    """producer -> (name -> PDF bytes, or the reason that file could not be made); a producer
    whose tool is missing maps to its reason (a ``str``)."""
    plain = make_pdf(1, "Interop test")
    work = tmp_path_factory.mktemp("interop")
    out: dict = {}
    for producer in PRODUCERS:
        try:
            out[producer] = corpus.build(producer, test_pki, plain, work / producer)
        except corpus.ProducerMissing as exc:
            out[producer] = str(exc)
    return out


@pytest.fixture(scope="module")
def offline(test_pki):
    return VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)


def _doc(interop, producer: str, name: str) -> bytes:
    docs = interop[producer]
    if isinstance(docs, str):
        pytest.skip(f"{producer}: {docs}")
    pdf = docs[name]
    if isinstance(pdf, str):
        pytest.skip(f"{producer} {name}: {pdf}")
    return pdf


def _codes(items) -> set[str]:
    return {i["code"] for i in items}


@pytest.mark.parametrize(("producer", "name"), _cases(corpus.GENUINE))
def test_genuine_is_valid(interop, offline, producer, name):
    report = verify_pdf(_doc(interop, producer, name), offline)
    assert report.verdict is Verdict.VALID, report.to_json()
    assert report.signature_count == (2 if name in ("two", "cert_two") else 1)
    for sig in report.signatures:
        assert sig.intact and sig.valid and sig.trusted
        assert sig.chain[-1] == sig.trust_anchor  # anchored at the test root
        assert "Test Root CA" in sig.trust_anchor
        assert sig.coverage in ("ENTIRE_FILE", "ENTIRE_REVISION")
    if name in ("two", "cert_two"):
        assert [s.role for s in report.signatures] == [Role.COMPETENT_PERSON, Role.AGENCY]
        assert report.signatures[0].modification_level == "FORM_FILLING"
        assert "DECREE30_SIGNING_ORDER" not in _codes(report.warnings)
    if name in ("cert", "cert_two"):
        assert report.signatures[0].docmdp == 2


@pytest.mark.parametrize("producer", PRODUCERS)
def test_byte_in_signed_range_changed_is_invalid(interop, offline, producer):
    """ISO 32000-2 §12.8.1: every signature's digest covers its ByteRange."""
    report = verify_pdf(_doc(interop, producer, "tampered_byte"), offline)
    assert report.verdict is Verdict.INVALID
    for sig in report.signatures:
        assert sig.verdict is Verdict.INVALID
        assert sig.sub_indication == "HASH_FAILURE" and not sig.intact


@pytest.mark.parametrize("producer", PRODUCERS)
def test_update_changing_the_page_is_invalid(interop, offline, producer):
    """ISO 32000-2 §12.8.2.2 / ETSI EN 319 142-1 §5.4: replacing page content after signing is
    no allowed change: each signature stays intact but the document is invalid."""
    report = verify_pdf(_doc(interop, producer, "tampered_update"), offline)
    assert report.verdict is Verdict.INVALID
    for sig in report.signatures:
        assert sig.intact and sig.valid
        assert sig.verdict is Verdict.INVALID
        assert sig.reason == "MODIFIED_AFTER_SIGNING"


@pytest.mark.parametrize("producer", PRODUCERS)
def test_pdfsig_second_opinion(interop, test_pki, tmp_path, producer):
    """poppler agrees on the cryptography: every genuine signature verifies, a byte changed in
    the signed ranges breaks them all (pdfsig does no diff analysis: the page-replacing update
    is not its to catch)."""
    _doc(interop, producer, "one")
    try:
        db = corpus.nss_db(test_pki, tmp_path)
    except corpus.ProducerMissing as exc:
        pytest.skip(str(exc))
    docs = interop[producer]
    for name in corpus.GENUINE:
        if isinstance(docs[name], bytes):
            lines = corpus.pdfsig_report(docs[name], db, tmp_path)
            assert lines and all(v == "Signature is Valid." for v in lines), (name, lines)
    lines = corpus.pdfsig_report(docs["tampered_byte"], db, tmp_path)
    assert len(lines) == 2 and not any(v == "Signature is Valid." for v in lines), lines

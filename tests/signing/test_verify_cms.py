"""CMS rules of the verifier (signing/verify/cms.py, pdfsig.py, der.py): every PDF and CMS is
built here from pyHanko signatures of the test PKI, then taken apart and re-signed."""

from __future__ import annotations

import hashlib
import io

import pytest
import pytest_asyncio
from asn1crypto import algos, cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.integrity import existing_signatures
from signing.report import Verdict
from signing.testpki.samples import doc_timestamp, sign_sample
from signing.verify import VerificationPolicy, verify_pdf
from tests.signing import cms_tools as t


def _codes(items) -> set[str]:
    return {i["code"] for i in items}


def _integrity(pdf: bytes) -> str:
    return existing_signatures(PdfFileReader(io.BytesIO(pdf)))


@pytest.fixture(scope="module")
def offline(test_pki, ec_pki):
    return VerificationPolicy(trust_roots=[*test_pki.trust_roots, *ec_pki.trust_roots],
                              offline=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rsa_signed(test_pki, plain_pdf):
    return await sign_sample(plain_pdf, test_pki, "officer", level="B-B")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ec_signed(ec_pki, plain_pdf):
    return await sign_sample(plain_pdf, ec_pki, "officer", level="B-B")


def _rsa_key(test_pki_folder):
    return t.load_key(test_pki_folder / "keys-rsa" / "officer.key.pem")


def _resigned_reordered(pdf: bytes, key, sign_der: bool) -> bytes:
    """The pyHanko signature with its signed attributes stored in reverse (non-DER) order,
    re-signed over the stored bytes (``sign_der=False``, the attack) or over their DER."""
    ci = t.content_info(pdf)
    si = ci["content"]["signer_infos"][0]
    attrs = [a.dump() for a in si["signed_attrs"]]
    der_set = t.attrs_set(sorted(attrs))
    stored = t.attrs_set(attrs[::-1])
    assert stored != der_set
    signed = der_set if sign_der else stored
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    old = ci.dump()
    new = old.replace(b"\xa0" + si["signed_attrs"].untag().dump()[1:], b"\xa0" + stored[1:])
    new = new.replace(si["signature"].native, signature)
    assert new != old and len(new) == len(old)
    return t.with_cms(pdf, new)


def test_rfc5652_5_4_signature_over_non_der_signed_attrs_is_invalid(
        rsa_signed, offline, test_pki_folder):
    """RFC 5652 §5.4 / X.690 §11.6: the signature is over the DER encoding of SignedAttrs; a
    value that verifies only over stored unsorted attributes is SIG_CRYPTO_FAILURE."""
    pdf = _resigned_reordered(rsa_signed, _rsa_key(test_pki_folder), sign_der=False)
    sig = verify_pdf(pdf, offline).signatures[0]
    assert sig.verdict is Verdict.INVALID and sig.sub_indication == "SIG_CRYPTO_FAILURE"
    assert _integrity(pdf) == "invalid"


def test_rfc5652_5_4_signature_over_der_of_unsorted_attrs_is_valid(
        rsa_signed, offline, test_pki_folder):
    """RFC 5652 §5.4: a signature over the DER form stays valid when the attributes are stored
    unsorted (warned SIGNED_ATTRS_NOT_DER); a stock pyHanko signature is unaffected."""
    pdf = _resigned_reordered(rsa_signed, _rsa_key(test_pki_folder), sign_der=True)
    report = verify_pdf(pdf, offline)
    sig = report.signatures[0]
    assert report.verdict is Verdict.VALID, report.to_json()
    assert "SIGNED_ATTRS_NOT_DER" in _codes(sig.warnings)
    assert _integrity(pdf) == "intact"
    stock = verify_pdf(rsa_signed, offline)
    assert stock.verdict is Verdict.VALID
    assert "SIGNED_ATTRS_NOT_DER" not in _codes(stock.signatures[0].warnings)


def _plain_ecdsa(pdf: bytes, key, oid: str = "0.4.0.127.0.7.1.1.4.1.3",
                 tamper: bool = False, hash_=hashes.SHA256) -> bytes:
    """The pyHanko ECDSA signature re-signed as BSI TR-03111 plain ECDSA (r || s)."""
    ci = t.content_info(pdf)
    sd = ci["content"]
    si = sd["signer_infos"][0]
    r, s = decode_dss_signature(key.sign(si["signed_attrs"].untag().dump(),
                                         ec.ECDSA(hash_())))
    value = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if tamper:
        value = value[:-1] + bytes((value[-1] ^ 1,))
    new_si = si.copy()
    new_si["signature_algorithm"] = algos.SignedDigestAlgorithm({"algorithm": oid})
    new_si["signature"] = value
    new_sd = sd.copy()
    new_sd["signer_infos"] = cms.SignerInfos([new_si])
    return t.with_cms(pdf, cms.ContentInfo({"content_type": "signed_data",
                                            "content": new_sd}).dump())


def test_bsi_tr03111_plain_ecdsa_is_verified(ec_signed, offline, test_pki_folder):
    """BSI TR-03111 §5.2.1 ecdsa-plain-SHA256: r || s verified (as X9.62 DER) in the
    verifier and in the integrity check; a flipped bit is SIG_CRYPTO_FAILURE."""
    key = t.load_key(test_pki_folder / "keys-ec" / "officer.key.pem")
    pdf = _plain_ecdsa(ec_signed, key)
    report = verify_pdf(pdf, offline)
    assert report.verdict is Verdict.VALID, report.to_json()
    assert _integrity(pdf) == "intact"
    bad = _plain_ecdsa(ec_signed, key, tamper=True)
    sig = verify_pdf(bad, offline).signatures[0]
    assert sig.verdict is Verdict.INVALID and sig.sub_indication == "SIG_CRYPTO_FAILURE"
    assert _integrity(bad) == "invalid"


def test_rfc8933_hash_named_by_the_algorithm_other_than_digest_algorithm(
        ec_signed, offline, test_pki_folder):
    """RFC 8933 §3 (one digest for content and signed attributes): ecdsa-plain-SHA384 over a
    SHA-256 digestAlgorithm. Signed with SHA-384 it verifies (each value checked with its own
    hash) and is warned ALGORITHM_MISMATCH; signed with SHA-256 under the SHA-384 OID it is
    SIG_CRYPTO_FAILURE."""
    key = t.load_key(test_pki_folder / "keys-ec" / "officer.key.pem")
    oid = "0.4.0.127.0.7.1.1.4.1.4"
    pdf = _plain_ecdsa(ec_signed, key, oid=oid, hash_=hashes.SHA384)
    sig = verify_pdf(pdf, offline).signatures[0]
    assert sig.verdict is Verdict.VALID, sig.to_json()
    assert "ALGORITHM_MISMATCH" in _codes(sig.warnings)
    assert _integrity(pdf) == "intact"
    bad = _plain_ecdsa(ec_signed, key, oid=oid)
    sig = verify_pdf(bad, offline).signatures[0]
    assert sig.verdict is Verdict.INVALID and sig.sub_indication == "SIG_CRYPTO_FAILURE"
    assert _integrity(bad) == "invalid"


def _with_signer_infos(pdf: bytes, infos: list) -> bytes:
    sd = t.content_info(pdf)["content"].copy()
    sd["signer_infos"] = cms.SignerInfos(infos)
    return t.with_cms(pdf, cms.ContentInfo({"content_type": "signed_data",
                                            "content": sd}).dump())


def test_etsi_en_319_142_1_6_3_several_signer_infos_each_validated(rsa_signed, offline):
    """ETSI EN 319 142-1 §6.3 (one SignerInfo): two valid SignerInfos are validated and
    warned NOT_PADES_BASELINE; one broken SignerInfo makes the signature invalid."""
    si = t.content_info(rsa_signed)["content"]["signer_infos"][0]
    pdf = _with_signer_infos(rsa_signed, [si.copy(), si.copy()])
    report = verify_pdf(pdf, offline)
    sig = report.signatures[0]
    assert report.verdict is Verdict.VALID, report.to_json()
    assert "NOT_PADES_BASELINE" in _codes(sig.warnings)
    assert _integrity(pdf) == "intact"
    broken = si.copy()
    value = si["signature"].native
    broken["signature"] = value[:-1] + bytes((value[-1] ^ 1,))
    bad = _with_signer_infos(rsa_signed, [si.copy(), broken])
    sig = verify_pdf(bad, offline).signatures[0]
    assert sig.verdict is Verdict.INVALID and sig.sub_indication == "SIG_CRYPTO_FAILURE"
    assert _integrity(bad) == "invalid"


def _ed448_pki():
    """A root (EC) and an Ed448 leaf issued with cryptography's x509 builder."""
    import datetime

    from asn1crypto import keys, x509
    from cryptography import x509 as cx
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed448
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ed448.Ed448PrivateKey.generate()

    def cert(subject, issuer, public, signer, ca):
        usage = cx.KeyUsage(digital_signature=not ca, content_commitment=not ca,
                            key_encipherment=False, data_encipherment=False,
                            key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                            encipher_only=False, decipher_only=False)
        return (cx.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(public).serial_number(cx.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(cx.BasicConstraints(ca=ca, path_length=None), critical=True)
                .add_extension(usage, critical=True)
                .sign(signer, hashes.SHA256()))

    root_name = cx.Name([cx.NameAttribute(NameOID.COMMON_NAME, "Ed448 test root")])
    leaf_name = cx.Name([cx.NameAttribute(NameOID.COMMON_NAME, "Ed448 signer")])
    root = cert(root_name, root_name, root_key.public_key(), root_key, True)
    leaf = cert(leaf_name, root_name, leaf_key.public_key(), root_key, False)
    der = serialization.Encoding.DER
    return (x509.Certificate.load(root.public_bytes(der)),
            x509.Certificate.load(leaf.public_bytes(der)), leaf_key,
            keys.PrivateKeyInfo.load(leaf_key.private_bytes(
                der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ed448_signed(plain_pdf):
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    root, leaf, key, key_info = _ed448_pki()
    signer = signers.SimpleSigner(signing_cert=leaf, signing_key=key_info,
                                  cert_registry=SimpleCertificateStore.from_certs([root]))
    meta = signers.PdfSignatureMetadata(field_name="Sig", md_algorithm="shake256",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    out = await signers.PdfSigner(meta, signer=signer).async_sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(plain_pdf)))
    return out.getvalue(), root, key


def test_rfc8419_ed448_requires_shake256_digest(ed448_signed):
    """RFC 8419 §2.3: Ed448 with SHAKE256 (pyHanko's own signature) is valid; the same
    signature re-made with SHA-256 as digestAlgorithm is invalid, not merely weak."""
    pdf, root, key = ed448_signed
    policy = VerificationPolicy(trust_roots=[root], offline=True)
    good = verify_pdf(pdf, policy)
    assert good.verdict is Verdict.VALID, good.to_json()
    si = t.content_info(pdf)["content"]["signer_infos"][0]
    attrs = [a for a in si["signed_attrs"]
             if a["type"].native not in ("message_digest", "cms_algorithm_protection")]
    attrs.append(cms.CMSAttribute({"type": "message_digest", "values": [
        hashlib.sha256(t.signed_range(pdf)).digest()]}))
    new_si = si.copy()
    new_si["digest_algorithm"] = algos.DigestAlgorithm({"algorithm": "sha256"})
    new_si["signed_attrs"] = cms.CMSAttributes(attrs)
    new_si["signature"] = key.sign(new_si["signed_attrs"].untag().dump())
    bad = _with_signer_infos(pdf, [new_si])
    sig = verify_pdf(bad, policy).signatures[0]
    assert sig.intact
    assert sig.verdict is Verdict.INVALID, sig.to_json()
    assert "ALGORITHM_COMBINATION" in _codes(sig.errors)
    assert _integrity(bad) == "invalid"


async def _retype_timestamp(pdf: bytes, pki, session, new: bytes) -> bytes:
    """The document timestamp with ``/Type /DocTimeStamp`` replaced by ``new`` (same
    length), timestamped again over the changed ByteRange by the test TSA."""
    from pyhanko.sign import timestamps

    old = b"/Type /DocTimeStamp"
    assert pdf.count(old) == 1 and len(new) == len(old)
    changed = pdf.replace(old, new)
    digest = hashlib.sha256(t.signed_range(changed)).digest()
    token = await timestamps.HTTPTimeStamper(pki.tsa_url, session=session).async_timestamp(
        digest, "sha256")
    return t.with_cms(changed, token.dump())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def timestamps_(test_pki, pki_session, rsa_signed):
    ts = await doc_timestamp(rsa_signed, test_pki, pki_session)
    return {
        "ts": ts,
        "missing": await _retype_timestamp(ts, test_pki, pki_session, b" " * 19),
        "sig": await _retype_timestamp(ts, test_pki, pki_session, b"/Type /Sig         "),
        "foo": await _retype_timestamp(ts, test_pki, pki_session, b"/Type /Foo         "),
        "ts_only": await doc_timestamp(await _plain(), test_pki, pki_session),
    }


async def _plain() -> bytes:
    from signing.testpki.pdfs import make_pdf

    return make_pdf(1, "timestamp only")


@pytest.mark.parametrize("name", ["missing", "sig"])
def test_iso32000_2_table_255_doctimestamp_type_is_a_warning(timestamps_, offline, name):
    """ISO 32000-2 §12.8.5 Table 255: /Type missing or /Sig on an ETSI.RFC3161 dictionary:
    the token is validated against the ByteRange (valid) with a DOCTIMESTAMP_TYPE warning."""
    pdf = timestamps_[name]
    report = verify_pdf(pdf, offline)
    ts = report.signatures[-1]
    assert ts.kind == "document_timestamp"
    assert ts.verdict is Verdict.VALID and ts.integrity_ok, ts.to_json()
    assert "DOCTIMESTAMP_TYPE" in _codes(ts.warnings)
    assert _integrity(pdf) == "intact"


def test_doctimestamp_with_other_type_or_stale_imprint_is_invalid(timestamps_, offline):
    """Near misses: /Type /Foo is malformed; /Type removed without a new token leaves the
    imprint over other bytes (HASH_FAILURE)."""
    ts = verify_pdf(timestamps_["foo"], offline).signatures[-1]
    assert ts.verdict is Verdict.INVALID
    stale = timestamps_["ts"].replace(b"/Type /DocTimeStamp", b" " * 19)
    ts = verify_pdf(stale, offline).signatures[-1]
    assert ts.verdict is Verdict.INVALID and ts.sub_indication == "HASH_FAILURE"
    assert _integrity(stale) == "invalid"


def test_report_integrity_needs_a_signature_not_only_timestamps(timestamps_, offline):
    """A document timestamp proves when bytes existed, not approval: a file with only
    document timestamps has no integrity_ok; with a signature it has."""
    only = verify_pdf(timestamps_["ts_only"], offline)
    assert only.signatures and not only.integrity_ok
    assert verify_pdf(timestamps_["ts"], offline).integrity_ok


async def _sha1_signed(pdf: bytes, pki, *, content: bytes | None = None,
                       digest_oid: str | None = None) -> bytes:
    """``/adbe.pkcs7.sha1`` made from a pyHanko signature: the SubFilter renamed and the CMS
    replaced by one encapsulating SHA-1 of the ByteRange (or ``content``)."""
    from signing.testpki.samples import load_signer

    old = b"/SubFilter /ETSI.CAdES.detached"
    changed = pdf.replace(old, b"/SubFilter /adbe.pkcs7.sha1    ")
    assert changed != pdf
    econtent = content or hashlib.sha1(t.signed_range(changed)).digest()
    ci = await load_signer(pki, "officer").async_sign_general_data(
        econtent, "sha256", detached=False)
    if digest_oid is not None:
        sd = ci["content"].copy()
        si = sd["signer_infos"][0].copy()
        si["digest_algorithm"] = algos.DigestAlgorithm({"algorithm": digest_oid})
        sd["signer_infos"] = cms.SignerInfos([si])
        ci = cms.ContentInfo({"content_type": "signed_data", "content": sd})
    return t.with_cms(changed, ci.dump())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sha1_docs(test_pki, rsa_signed):
    return {
        "good": await _sha1_signed(rsa_signed, test_pki),
        "other": await _sha1_signed(rsa_signed, test_pki, content=b"\x00" * 20),
        "sigoid": await _sha1_signed(rsa_signed, test_pki, digest_oid="1.2.840.113549.1.1.5"),
    }


def test_iso32000_1_12_8_3_3_1_adbe_pkcs7_sha1_is_verified(sha1_docs, offline):
    """ISO 32000-1 §12.8.3.3.1: eContent = SHA-1(ByteRange), signed as attached data: intact
    and crypto-valid (integrity holds); SHA-1 binding the document is a weak algorithm at
    validation time: WEAK_DIGEST and indeterminate (CRYPTO_CONSTRAINTS_FAILURE), as pyHanko's
    algorithm policy judges a SHA-1 digest under adbe.pkcs7.detached."""
    pdf = sha1_docs["good"]
    sig = verify_pdf(pdf, offline).signatures[0]
    assert sig.kind == "signature" and sig.intact and sig.valid, sig.to_json()
    assert "WEAK_DIGEST" in _codes(sig.warnings)
    assert sig.verdict is Verdict.INDETERMINATE and sig.reason == "WEAK_ALGORITHM"
    assert sig.integrity_ok
    assert _integrity(pdf) == "intact"


def test_adbe_pkcs7_sha1_other_content_or_signature_oid_as_digest_is_invalid(
        sha1_docs, offline):
    """Near misses: eContent not SHA-1 of the ByteRange (HASH_FAILURE); a digestAlgorithm
    holding sha1WithRSAEncryption (RFC 5652 §10.1.1) is invalid."""
    sig = verify_pdf(sha1_docs["other"], offline).signatures[0]
    assert sig.verdict is Verdict.INVALID and sig.sub_indication == "HASH_FAILURE"
    assert _integrity(sha1_docs["other"]) == "invalid"
    sig = verify_pdf(sha1_docs["sigoid"], offline).signatures[0]
    assert sig.verdict is Verdict.INVALID, sig.to_json()
    assert _integrity(sha1_docs["sigoid"]) == "invalid"


async def _encrypted_signed(pki, user: bytes) -> bytes:
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    from signing.testpki.pdfs import make_pdf
    from signing.testpki.samples import load_signer

    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(make_pdf(1, "encrypted"))))
    writer.encrypt(b"owner-secret", user)
    buf = io.BytesIO()
    writer.write(buf)
    inc = IncrementalPdfFileWriter(io.BytesIO(buf.getvalue()))
    inc.encrypt(b"owner-secret")
    from pyhanko.sign import fields, signers

    meta = signers.PdfSignatureMetadata(field_name="Sig",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    out = await signers.PdfSigner(meta, signer=load_signer(pki, "officer")).async_sign_pdf(inc)
    return out.getvalue()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def encrypted(test_pki):
    return {"empty": await _encrypted_signed(test_pki, b""),
            "password": await _encrypted_signed(test_pki, b"user-secret")}


def test_iso32000_2_7_6_4_empty_user_password_is_opened(encrypted, offline):
    """ISO 32000-2 §7.6.4: a file with an empty user password opens for any reader: its
    signature is verified (ENCRYPTED_EMPTY_PASSWORD); a file that needs a password stays
    PdfEncryptedError."""
    from signing.errors import PdfEncryptedError

    report = verify_pdf(encrypted["empty"], offline)
    assert report.verdict is Verdict.VALID, report.to_json()
    assert "ENCRYPTED_EMPTY_PASSWORD" in _codes(report.warnings)
    with pytest.raises(PdfEncryptedError):
        verify_pdf(encrypted["password"], offline)


def test_content_signed_without_attributes_may_start_with_0x31_rfc5652_5_4(
        test_pki, test_pki_folder):
    """RFC 5652 §5.4: without signed attributes the content itself is signed, as stored. Such
    content may begin with 0x31 like a SET (adbe.pkcs7.sha1 signs a SHA-1 digest: one time in
    256); only an attribute set is re-encoded as DER. The same bytes re-ordered as signed
    attributes still fail over their stored form."""
    from cryptography.exceptions import InvalidSignature

    from signing.verify.cms import SIGNATURE_VALIDATOR

    key = _rsa_key(test_pki_folder)
    cert = test_pki.cert("officer")
    algo = algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
    for content in (b"\x31" + hashlib.sha1(b"x").digest()[1:],  # not a well-formed value
                    b"\x31\x03\x02\x01\x05",  # a well-formed SET, but no attributes
                    ):
        sig = key.sign(content, padding.PKCS1v15(), hashes.SHA256())
        SIGNATURE_VALIDATOR.validate_signature(sig, content, cert.public_key, algo)
    attrs = [cms.CMSAttribute({"type": "content_type", "values": ["data"]}).dump(),
             cms.CMSAttribute({"type": "message_digest", "values": [b"\x00" * 32]}).dump()]
    stored = t.attrs_set(sorted(attrs)[::-1])
    sig = key.sign(stored, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        SIGNATURE_VALIDATOR.validate_signature(sig, stored, cert.public_key, algo)


async def test_sha1_digest_is_a_weak_algorithm_not_an_integrity_failure(test_pki, plain_pdf):
    """A SHA-1 digest under adbe.pkcs7.detached: intact and crypto-valid (integrity_ok), but a
    weak algorithm at validation time: INDETERMINATE / CRYPTO_CONSTRAINTS_FAILURE, reason
    WEAK_ALGORITHM (EN 319 102-1 §5.2.8 cryptographic constraints), like adbe.pkcs7.sha1."""
    from pyhanko.sign import fields, signers

    from signing.testpki.samples import load_signer
    from signing.verify import async_verify_pdf

    writer = IncrementalPdfFileWriter(io.BytesIO(plain_pdf))
    meta = signers.PdfSignatureMetadata(
        field_name="Old", md_algorithm="sha1",
        subfilter=fields.SigSeedSubFilter.ADOBE_PKCS7_DETACHED)
    out = await signers.PdfSigner(meta, signer=load_signer(test_pki, "officer")).async_sign_pdf(
        writer)
    report = await async_verify_pdf(out.getvalue(), VerificationPolicy(
        trust_roots=test_pki.trust_roots, offline=True))
    sig = report.signatures[0]
    assert sig.verdict is Verdict.INDETERMINATE and sig.reason == "WEAK_ALGORITHM", sig.to_json()
    assert sig.sub_indication.startswith("CRYPTO_CONSTRAINTS_FAILURE")
    assert sig.integrity_ok and "WEAK_DIGEST" in _codes(sig.warnings)
    assert "thuật toán" in report.summary_vi

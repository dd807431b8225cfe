"""The test PKI is what every signing/verification test stands on: check its shape."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers

from signing.testpki import build_test_pki
from signing.testpki.pdfs import make_pdf


def test_shape(test_pki):
    officer = test_pki.cert("officer")
    assert officer.subject.native["common_name"] == "Nguyễn Văn A"
    assert test_pki.cert("seal").subject.native["organization_name"] == "UBND tỉnh Thử Nghiệm"
    assert officer.issuer == test_pki.intermediate_cert.subject
    assert test_pki.intermediate_cert.issuer == test_pki.root_cert.subject
    assert test_pki.root_cert.self_signed == "maybe"
    assert test_pki.untrusted_root not in test_pki.trust_roots
    assert test_pki.cert("stranger").issuer == test_pki.untrusted_root.subject
    expired = test_pki.cert("expired")
    assert expired.not_valid_after < datetime(2022, 1, 1, tzinfo=UTC)
    assert test_pki.tsa_url.startswith("http://pki.test/")
    assert officer.public_key.algorithm == "rsa"


def test_p12_loads(test_pki):
    for label in ("officer", "seal", "revoked", "expired", "stranger"):
        signer = signers.SimpleSigner.load_pkcs12(
            str(test_pki.p12(label)), passphrase=test_pki.p12_passphrase
        )
        assert signer is not None, label
        assert signer.signing_cert.dump() == test_pki.cert(label).dump()


def test_rebuild_is_idempotent(test_pki, test_pki_folder):
    again = build_test_pki(test_pki_folder, arch="gov-rsa")
    # same keys on disk -> same public keys
    assert again.cert("officer").public_key.dump() == test_pki.cert("officer").public_key.dump()


def test_ec_arch(ec_pki):
    assert ec_pki.cert("seal").public_key.algorithm == "ec"


async def test_services_answer(test_pki, pki_session):
    async with pki_session.get("http://pki.test/gov-rsa/crls/interm/latest.crl") as resp:
        assert resp.status == 200
        body = await resp.read()
    from asn1crypto import crl

    parsed = crl.CertificateList.load(body)
    revoked_serials = {
        r["user_certificate"].native for r in parsed["tbs_cert_list"]["revoked_certificates"]
    }
    assert test_pki.cert("revoked").serial_number in revoked_serials
    assert test_pki.cert("officer").serial_number not in revoked_serials


def test_make_pdf_parses():
    data = make_pdf(3, "Xin chào")
    reader = PdfFileReader(io.BytesIO(data), strict=True)
    assert int(reader.root["/Pages"]["/Count"]) == 3
    page = reader.root["/Pages"]["/Kids"][0]
    assert b"page 1 of 3" in page["/Contents"].data

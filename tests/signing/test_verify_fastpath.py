"""The fast paths of signing.verify.fastpath change speed, never results."""

from __future__ import annotations

import io

import pytest
from asn1crypto import x509
from pyhanko.pdf_utils import generic

from signing.testpki.samples import sign_sample
from signing.verify import VerificationPolicy, Verifier, fastpath


@pytest.mark.parametrize("raw", [
    b"<48656c6c6f>", b"<4 8 6\n5\r6c\t6c 6f>", b"<486>", b"<>", b"<ABCDEFabcdef0123>",
])
def test_hex_reader_identical(raw):
    fast = fastpath.fast_read_hex_string_from_stream(io.BytesIO(raw + b" rest"))
    stream = io.BytesIO(raw + b" rest")
    slow = fastpath._ORIGINAL(stream)
    assert fast.original_bytes == slow.original_bytes
    s2 = io.BytesIO(raw + b" rest")
    fastpath.fast_read_hex_string_from_stream(s2)
    assert s2.tell() == stream.tell()


@pytest.mark.parametrize("raw", [b"<48zz>", b"<4865", b"<48%comment\n65>"])
def test_hex_reader_falls_back_on_unusual_input(raw):
    def run(fn):
        try:
            return ("ok", fn(io.BytesIO(raw)).original_bytes)
        except Exception as exc:
            return ("err", type(exc).__name__)

    assert run(fastpath.fast_read_hex_string_from_stream) == run(fastpath._ORIGINAL)


def test_name_prep_identical():
    name = x509.Name.build({"common_name": "  UBND  tỉnh Thử Nghiệm ", "country_name": "VN"})
    other = x509.Name.build({"common_name": "ubnd tỉnh thử nghiệm", "country_name": "VN"})
    fastpath.uninstall()
    try:
        slow = (name == other, x509.Name.load(name.dump()).hashable)
    finally:
        fastpath.install()
    fast = (x509.Name.load(name.dump()) == x509.Name.load(other.dump()),
            x509.Name.load(name.dump()).hashable)
    assert fast == slow


def test_name_equality_identical():
    """RFC 5280 §7.1 equality from the memo, for the shapes pyHanko compares: equal DER, equal
    after LDAP preparation but not in DER, different, and a Name inside a GeneralName (ESS
    IssuerSerial: an explicit [4] tag around it)."""
    def n(cn, c="VN"):
        return x509.Name.load(x509.Name.build({"common_name": cn, "country_name": c}).dump())

    a = n("UBND tỉnh Thử Nghiệm")
    tagged = x509.GeneralName.load(
        x509.GeneralName(name="directory_name", value=a).dump()).chosen
    pairs = [(a, n("UBND tỉnh Thử Nghiệm")), (a, n("  ubnd  TỈNH thử nghiệm ")),
             (a, n("UBND tỉnh Thử Nghiệm", "LA")), (a, n("Sở Nội vụ")), (a, tagged),
             (tagged, n("Sở Nội vụ")), (a, "not a name")]
    fast = [(x == y, x != y) for x, y in pairs]
    fastpath.uninstall()
    try:
        slow = [(x == y, x != y) for x, y in pairs]
    finally:
        fastpath.install()
    assert fast == slow
    assert [eq for eq, _ in fast] == [True, True, False, False, True, False, False]


def test_name_rendering_identical():
    """``human_friendly`` from the memo: the same text as asn1crypto's, for a parsed Name, a
    built one and one inside a GeneralName (explicit [4] tag), and distinct per name."""
    built = x509.Name.build({"common_name": "Nguyễn Văn A", "organization_name": "UBND",
                             "country_name": "VN"})
    parsed = x509.Name.load(built.dump())
    tagged = x509.GeneralName.load(
        x509.GeneralName(name="directory_name", value=parsed).dump()).chosen
    other = x509.Name.load(x509.Name.build({"common_name": "Sở Nội vụ"}).dump())
    names = [built, parsed, tagged, other]
    fast = [n.human_friendly for n in names]
    fastpath.uninstall()
    try:
        slow = [x509.Name.load(n.chosen.dump()).human_friendly for n in names]
    finally:
        fastpath.install()
    assert fast == slow
    assert fast[0] == fast[1] == fast[2] != fast[3] and "Nguyễn Văn A" in fast[0]


async def test_verdicts_identical_with_and_without_fastpath(test_pki, pki_session, plain_pdf):
    docs = [
        await sign_sample(plain_pdf, test_pki, "officer", level="B-T", session=pki_session),
        await sign_sample(plain_pdf, test_pki, "stranger", level="B-B"),
    ]
    bad = bytearray(docs[0])
    bad[bad.index(b"page 1 of 1")] ^= 1
    docs.append(bytes(bad))
    policy = VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)
    fast_v = Verifier(policy)
    fast = [(await fast_v.averify(d)).to_json() for d in docs]
    fastpath.uninstall()
    try:
        slow_policy = VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True,
                                         fast_hex=False)
        slow_v = Verifier(slow_policy)
        assert not fastpath.installed()
        slow = [(await slow_v.averify(d)).to_json() for d in docs]
    finally:
        fastpath.install()
    for f, s in zip(fast, slow, strict=True):
        f.pop("validation_time"), s.pop("validation_time")
        assert f == s
    assert [f["verdict"] for f in fast] == ["valid", "indeterminate", "invalid"]
    assert generic.read_hex_string_from_stream is fastpath.fast_read_hex_string_from_stream


async def test_embedded_certificates_are_interned(test_pki, plain_pdf):
    """Every pyHanko module that extracts a CMS's certificates gets the interning version; two
    signatures by one signer share its parsed certificate, another signer's is its own."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import generic_cms

    from signing.testpki.pdfs import make_pdf

    first = await sign_sample(plain_pdf, test_pki, "officer", level="B-B")
    second = await sign_sample(make_pdf(2, "Văn bản khác"), test_pki, "officer", level="B-B")
    other = await sign_sample(plain_pdf, test_pki, "stranger", level="B-B")

    def certs(pdf: bytes):
        sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
        return generic_cms.extract_certificate_info(sig.signed_data)

    assert not fastpath._modules_using(fastpath._ORIGINAL_CERT_INFO)
    a, b, c = certs(first), certs(second), certs(other)
    assert a.signer_cert is b.signer_cert
    assert [x.dump() for x in a.other_certs] == [x.dump() for x in b.other_certs]
    assert all(x is y for x, y in zip(a.other_certs, b.other_certs, strict=True))
    assert c.signer_cert is not a.signer_cert and c.signer_cert.dump() != a.signer_cert.dump()
    fastpath.uninstall()
    try:
        assert generic_cms.extract_certificate_info is fastpath._ORIGINAL_CERT_INFO
        plain = certs(first)
        assert plain.signer_cert is not a.signer_cert
        assert plain.signer_cert.dump() == a.signer_cert.dump()
    finally:
        fastpath.install()

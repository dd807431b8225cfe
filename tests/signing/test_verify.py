"""Verification: valid documents, attacks that must be caught, unreadable input."""

from __future__ import annotations

import io

import pytest
import pytest_asyncio
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from signing.errors import PdfEncryptedError, PdfUnreadableError
from signing.report import Role, Verdict
from signing.testpki.samples import doc_timestamp, sign_sample
from signing.verify import VerificationPolicy, Verifier, async_verify_pdf, verify_pdf


@pytest.fixture(scope="module")
def offline(test_pki):
    return VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def docs(test_pki, pki_session, plain_pdf):
    s = pki_session
    out = {"plain": plain_pdf}
    out["bb"] = await sign_sample(plain_pdf, test_pki, "officer", level="B-B")
    out["bt"] = await sign_sample(plain_pdf, test_pki, "officer", level="B-T", session=s)
    out["blt"] = await sign_sample(plain_pdf, test_pki, "officer", level="B-LT", session=s)
    out["blta"] = await sign_sample(plain_pdf, test_pki, "officer", level="B-LTA", session=s)
    out["two"] = await sign_sample(out["bt"], test_pki, "seal", level="B-T", session=s)
    out["two_ts"] = await doc_timestamp(out["two"], test_pki, s)
    out["ts_only"] = await doc_timestamp(plain_pdf, test_pki, s)
    for label in ("revoked", "expired", "stranger"):
        out[label] = await sign_sample(plain_pdf, test_pki, label, level="B-T", session=s)
    return out


def _one(report):
    assert len(report.signatures) == 1
    return report.signatures[0]


@pytest.mark.parametrize("name,level", [("bb", "B-B"), ("bt", "B-T"), ("blt", "B-LT")])
def test_valid_levels(docs, offline, name, level):
    report = verify_pdf(docs[name], offline)
    sig = _one(report)
    assert report.verdict is Verdict.VALID, report.to_json()
    assert report.integrity_ok
    assert sig.pades_level == level
    assert sig.indication.value == "TOTAL_PASSED"
    assert sig.role is Role.COMPETENT_PERSON
    assert sig.signer.common_name == "Nguyễn Văn A"
    assert report.summary_vi.startswith("Hợp lệ")


def test_blta_lta_updates_not_flagged(docs, offline):
    report = verify_pdf(docs["blta"], offline)
    assert report.verdict is Verdict.VALID
    sig, ts = report.signatures
    assert sig.modification_level == "LTA_UPDATES" and sig.pades_level == "B-LTA"
    assert ts.kind == "document_timestamp" and ts.role is Role.DOCUMENT_TIMESTAMP


def test_offline_blt_uses_embedded_revocation(docs, offline):
    sig = _one(verify_pdf(docs["blt"], offline))
    assert sig.revocation["source"] == "embedded"
    assert sig.revocation["status"] == "good"
    assert sig.revocation["online"] is False
    assert any(w["code"] == "OFFLINE_REVOCATION" for w in sig.warnings)


def test_offline_bb_says_revocation_not_checked(docs, offline):
    sig = _one(verify_pdf(docs["bb"], offline))
    assert sig.revocation["source"] == "none"
    codes = {w["code"] for w in sig.warnings}
    assert {"REVOCATION_NOT_CHECKED", "NO_TIMESTAMP"} <= codes


def test_competent_person_then_agency(docs, offline):
    report = verify_pdf(docs["two_ts"], offline)
    assert report.verdict is Verdict.VALID, report.to_json()
    roles = [s.role for s in report.signatures]
    assert roles == [Role.COMPETENT_PERSON, Role.AGENCY, Role.DOCUMENT_TIMESTAMP]
    first = report.signatures[0]
    assert first.coverage == "ENTIRE_REVISION"
    assert first.modification_level == "FORM_FILLING"
    assert report.signature_count == 2 and report.timestamp_count == 1
    assert not any(w["code"] == "DECREE30_SIGNING_ORDER" for w in report.warnings)


async def test_agency_before_competent_person_is_reported(test_pki, pki_session, plain_pdf,
                                                          offline):
    seal_first = await sign_sample(plain_pdf, test_pki, "seal", level="B-B")
    both = await sign_sample(seal_first, test_pki, "officer", level="B-B")
    report = await async_verify_pdf(both, offline)
    assert [s.role for s in report.signatures] == [Role.AGENCY, Role.COMPETENT_PERSON]
    assert report.verdict is Verdict.VALID  # both signatures hold...
    assert [w["code"] for w in report.warnings] == ["DECREE30_SIGNING_ORDER"]  # ...out of order


def test_timestamp_only(docs, offline):
    report = verify_pdf(docs["ts_only"], offline)
    ts = _one(report)
    assert ts.verdict is Verdict.VALID  # the timestamp itself is fine...
    assert ts.kind == "document_timestamp" and ts.timestamp_time is not None
    # ...but nobody signed: not a valid signed document
    assert report.verdict is Verdict.INDETERMINATE
    assert report.signature_count == 0 and report.timestamp_count == 1
    assert "không có chữ ký số" in report.summary_vi


def test_byte_flipped(docs, offline):
    data = bytearray(docs["bt"])
    pos = data.index(b"page 1 of 1")
    data[pos] ^= 0x01
    sig = _one(verify_pdf(bytes(data), offline))
    assert sig.verdict is Verdict.INVALID
    assert sig.sub_indication == "HASH_FAILURE"
    assert not sig.intact
    assert "Không hợp lệ" in verify_pdf(bytes(data), offline).summary_vi


def _incremental(pdf: bytes, mutate) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    mutate(w)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _first_page(w):
    return w.root["/Pages"]["/Kids"][0].get_object(), w.root["/Pages"]["/Kids"].raw_get(0)


def test_page_content_replaced_after_signing(docs, offline):
    def mutate(w):
        page, _ = _first_page(w)
        evil = generic.StreamObject(stream_data=b"BT /F1 30 Tf 72 700 Td (PAY 1,000,000) Tj ET")
        page["/Contents"] = w.add_object(evil)
        w.update_container(page)

    report = verify_pdf(_incremental(docs["bt"], mutate), offline)
    sig = _one(report)
    assert sig.verdict is Verdict.INVALID
    assert sig.intact and sig.valid  # the signed bytes are untouched...
    assert sig.reason == "MODIFIED_AFTER_SIGNING"  # ...but the shown page is not
    assert not report.integrity_ok


def test_annotation_over_signed_content(docs, offline):
    def mutate(w):
        page, _ = _first_page(w)
        annot = generic.DictionaryObject({
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/Square"),
            generic.NameObject("/Rect"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (60, 600, 540, 800)]),
            generic.NameObject("/IC"): generic.ArrayObject([generic.NumberObject(1)] * 3),
        })
        page["/Annots"] = generic.ArrayObject([w.add_object(annot)])
        w.update_container(page)

    sig = _one(verify_pdf(_incremental(docs["bt"], mutate), offline))
    assert sig.verdict is Verdict.INVALID
    assert sig.modification_level in ("ANNOTATIONS", "OTHER")


def test_content_appended_after_last_signature(docs, offline):
    def mutate(w):
        w.root["/Pages"]["/Kids"][0].get_object()
        pages = w.root["/Pages"]
        new_page = generic.DictionaryObject({
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/Parent"): w.root.raw_get("/Pages"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (0, 0, 595, 842)]),
        })
        pages["/Kids"].append(w.add_object(new_page))
        pages["/Count"] = generic.NumberObject(2)
        w.update_container(pages)

    report = verify_pdf(_incremental(docs["two"], mutate), offline)
    assert report.verdict is Verdict.INVALID
    assert all(s.verdict is Verdict.INVALID for s in report.signatures)


def test_trailing_garbage_invalidates_every_signature(docs, offline):
    report = verify_pdf(docs["bt"] + b"\n" + b"X" * 64, offline)
    sig = _one(report)
    assert sig.coverage == "ENTIRE_REVISION"
    assert sig.verdict is Verdict.INVALID and sig.reason == "TRAILING_DATA"
    assert sig.sub_indication == "FORMAT_FAILURE"
    assert any(e["code"] == "TRAILING_DATA" for e in sig.errors)


@pytest.mark.parametrize("tail, warned", [
    (b"\r\n", False), (b"\x00" * 512, False), (b"% written by X\n", True)])
def test_whitespace_and_comments_after_eof_are_harmless(docs, offline, tail, warned):
    report = verify_pdf(docs["bt"] + tail, offline)
    sig = _one(report)
    assert sig.verdict is Verdict.VALID, sig.reason
    assert any(w["code"] == "TRAILING_COMMENT" for w in report.warnings) is warned
    assert not any(e["code"] == "TRAILING_DATA" for e in sig.errors)


def test_update_appended_without_eof_marker(docs, offline):
    """The shadow attack of an incremental update whose ``%%EOF`` was cut off: pyHanko sees one
    revision (signature "covers its entire revision", no diff analysis), a viewer repairs the
    file and shows the replaced page."""
    def mutate(w):
        page, _ = _first_page(w)
        evil = generic.StreamObject(stream_data=b"BT /F1 30 Tf 72 700 Td (PAY 1,000,000) Tj ET")
        page["/Contents"] = w.add_object(evil)
        w.update_container(page)

    signed = docs["two"]
    updated = _incremental(signed, mutate)
    cut = updated[:updated.rindex(b"%%EOF")]
    report = verify_pdf(cut, offline)
    assert len(report.signatures) == 2
    for sig in report.signatures:
        assert sig.verdict is Verdict.INVALID
        assert sig.reason in ("TRAILING_DATA", "MODIFIED_AFTER_SIGNING"), sig.reason
    assert report.verdict is Verdict.INVALID
    assert _one_reason(report) == "TRAILING_DATA"


def _one_reason(report):
    return report.signatures[-1].reason


def test_revoked_signer(docs, offline):
    report = verify_pdf(docs["revoked"], VerificationPolicy(
        trust_roots=offline.trust_roots, offline=True, revocation_mode="hard-fail"))
    sig = _one(report)
    # offline and no embedded data: the revocation cannot be proven good -> not valid
    assert sig.verdict is not Verdict.VALID


async def test_revoked_signer_online(docs, test_pki, pki_session):
    policy = VerificationPolicy(trust_roots=test_pki.trust_roots, session=pki_session)
    report = await async_verify_pdf(docs["revoked"], policy)
    sig = _one(report)
    assert sig.revoked
    assert sig.verdict is Verdict.INVALID
    assert sig.revocation["status"] == "revoked"
    assert sig.revocation["source"] in ("ocsp", "crl")
    assert sig.reason == "REVOKED"


async def test_good_signer_online_source(docs, test_pki, pki_session):
    policy = VerificationPolicy(trust_roots=test_pki.trust_roots, session=pki_session,
                                revocation_mode="hard-fail")
    report = await async_verify_pdf(docs["bt"], policy)
    sig = _one(report)
    assert report.verdict is Verdict.VALID, report.to_json()
    assert sig.revocation["source"] in ("ocsp", "crl")
    assert sig.revocation["online"] is True


def test_expired_signer(docs, offline):
    sig = _one(verify_pdf(docs["expired"], offline))
    assert sig.verdict is Verdict.INDETERMINATE
    assert sig.reason == "EXPIRED", sig.to_json()


def test_untrusted_signer(docs, offline):
    report = verify_pdf(docs["stranger"], offline)
    sig = _one(report)
    assert sig.verdict is Verdict.INDETERMINATE
    assert sig.reason == "UNTRUSTED"
    assert sig.integrity_ok and report.integrity_ok  # intact, just not trusted
    assert report.summary_vi.startswith("Chưa xác định")


def test_untrusted_when_no_trust_configured(docs):
    sig = _one(verify_pdf(docs["bt"], VerificationPolicy(offline=True)))
    assert sig.verdict is Verdict.INDETERMINATE


def test_unsigned_pdf_is_indeterminate(docs, offline):
    report = verify_pdf(docs["plain"], offline)
    assert report.verdict is Verdict.INDETERMINATE and not report.signatures


@pytest.mark.parametrize("data", [
    b"",
    b"not a pdf at all",
    b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog",
    b"%PDF-1.4\n" + b"\xff" * 500,
])
def test_broken_pdf_raises_clear_error(data, offline):
    with pytest.raises(PdfUnreadableError) as info:
        verify_pdf(data, offline)
    assert info.value.code == "PDF_UNREADABLE"


def test_truncated_signed_pdf(docs, offline):
    data = docs["bt"][: len(docs["bt"]) // 2]
    with pytest.raises(PdfUnreadableError):
        verify_pdf(data, VerificationPolicy(trust_roots=offline.trust_roots, offline=True,
                                            allow_nonstrict=False))


async def test_repaired_pdf_is_at_best_indeterminate(test_pki, plain_pdf, offline):
    """A signed file whose structure only a lenient reader repairs (here: a wrong
    ``startxref`` in the signed original) may mean different things to different viewers."""
    i = plain_pdf.rindex(b"startxref")
    offset = int(plain_pdf[i + 10:].split()[0])
    broken = plain_pdf[:i] + b"startxref\n" + str(offset + 3).encode() + b"\n%%EOF\n"
    signed = await sign_sample(broken, test_pki, "officer", strict=False)
    report = await async_verify_pdf(signed, offline)
    sig = _one(report)
    assert sig.intact and sig.valid and sig.trusted
    assert sig.verdict is Verdict.INDETERMINATE and sig.reason == "NONSTRICT_PARSE"
    assert any(w["code"] == "NONSTRICT_PARSE" for w in report.warnings)
    with pytest.raises(PdfUnreadableError):
        await async_verify_pdf(signed, VerificationPolicy(
            trust_roots=offline.trust_roots, offline=True, allow_nonstrict=False))


async def test_hybrid_reference_file_as_office_writes_it(test_pki, plain_pdf, offline):
    """Hybrid xref files are a producer quirk, not damage: valid, with a warning — and the
    attacks are still caught in them."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from signing.testpki.pdfs import to_hybrid_xref

    hybrid = to_hybrid_xref(plain_pdf)
    assert PdfFileReader(io.BytesIO(hybrid)).xrefs.hybrid_xrefs_present
    signed = await sign_sample(hybrid, test_pki, "officer", strict=False)
    report = await async_verify_pdf(signed, offline)
    sig = _one(report)
    assert sig.verdict is Verdict.VALID, (sig.reason, sig.errors)
    assert [w["code"] for w in report.warnings] == ["HYBRID_XREF"]

    def mutate(w):
        page, _ = _first_page(w)
        page["/Contents"] = w.add_object(generic.StreamObject(stream_data=b"BT ET"))
        w.update_container(page)

    w = IncrementalPdfFileWriter(io.BytesIO(signed), strict=False)
    mutate(w)
    out = io.BytesIO()
    w.write(out)
    changed = _one(await async_verify_pdf(out.getvalue(), offline))
    assert changed.verdict is Verdict.INVALID and changed.reason == "MODIFIED_AFTER_SIGNING"
    flipped = bytearray(signed)
    flipped[flipped.index(b"/MediaBox") + 1] ^= 0x20
    assert _one(await async_verify_pdf(bytes(flipped), offline)).reason == "HASH_FAILURE"


def test_encrypted_pdf(plain_pdf, offline):
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    w = copy_into_new_writer(PdfFileReader(io.BytesIO(plain_pdf)))
    w.encrypt("owner-pass", "user-pass")
    out = io.BytesIO()
    w.write(out)
    with pytest.raises(PdfEncryptedError) as info:
        verify_pdf(out.getvalue(), offline)
    assert info.value.code == "PDF_ENCRYPTED"


def test_verifier_reused_across_documents(docs, offline):
    verifier = Verifier(offline)
    verdicts = [verifier.verify(docs[n]).verdict for n in ("bb", "stranger", "two", "bb")]
    assert verdicts == [Verdict.VALID, Verdict.INDETERMINATE, Verdict.VALID, Verdict.VALID]


def test_json_shape(docs, offline):
    data = verify_pdf(docs["two"], offline).to_json()
    assert data["verdict"] == "valid" and data["integrity_ok"] is True
    assert len(data["sha256"]) == 64
    keys = {"field", "role", "verdict", "indication", "sub_indication", "integrity_ok",
            "intact", "valid", "trusted", "revoked", "coverage", "modification_level",
            "pades_level", "signer", "chain", "revocation", "errors", "warnings"}
    assert keys <= set(data["signatures"][0])


def test_etsi_xml_on_request(docs, test_pki):
    policy = VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True, etsi_xml=True)
    sig = _one(verify_pdf(docs["bt"], policy))
    assert sig.etsi_xml is not None and "SignatureValidationReport" in sig.etsi_xml
    assert "etsi_xml" in sig.to_json()
    assert _one(verify_pdf(docs["bt"], VerificationPolicy(offline=True))).etsi_xml is None


def test_cli_json_lines_and_exit_codes(docs, test_pki, tmp_path, capsys):
    import json

    from gateway.cli import main

    good, bad, broken = tmp_path / "good.pdf", tmp_path / "bad.pdf", tmp_path / "broken.pdf"
    good.write_bytes(docs["two"])
    bad.write_bytes(docs["stranger"])
    broken.write_bytes(b"%PDF-1.7 garbage")
    trust = ["--trust", str(test_pki.trust_bundle_path), "--offline"]
    assert main(["verify", str(good), *trust]) == 0
    assert main(["verify", str(good), str(bad), "--json", *trust]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(x["file"], x["verdict"]) for x in lines] == [
        (str(good), "valid"), (str(bad), "indeterminate")]
    assert main(["verify", str(broken), str(good), *trust]) == 2
    assert "PDF_UNREADABLE" in capsys.readouterr().out

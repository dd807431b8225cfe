"""Realistic sample documents for the demo, the end-to-end tests and the benchmarks.

Each document is an edXML package whose PDF is signed the Decree 30 way (competent person, then
the agency seal) with the test PKI; variants: unsigned, tampered after signing (a word of the
signed page content changed: the signatures no longer match) or malformed edXML.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from gateway.edxml import (
    Attachment,
    Code,
    DocumentType,
    EdocMessage,
    Organ,
    OtherInfo,
    PromulgationInfo,
    SignerInfo,
    TraceHeader,
    build,
)
from signing.testpki import TestPki
from signing.testpki.pdfs import make_pdf
from signing.testpki.samples import sign_sample

_counter = itertools.count(1)


async def signed_pdf(pki: TestPki, title: str, *, pages: int = 1, filler_bytes: int = 0) -> bytes:
    """A PDF signed by the competent person (``officer``) then the agency (``seal``)."""
    pdf = make_pdf(pages, title, filler_bytes=filler_bytes)
    pdf = await sign_sample(pdf, pki, "officer", field_name="ChuKyNguoiCoThamQuyen")
    return await sign_sample(pdf, pki, "seal", field_name="ChuKyCoQuan")


def tamper(pdf: bytes, title: str) -> bytes:
    """Change one letter of the signed page text (same length): every signature breaks."""
    needle = title.encode("latin-1", "replace")[:8]
    at = pdf.find(needle)
    if at < 0:
        raise ValueError("title not found in the PDF content")
    flipped = bytes([needle[0] ^ 0x01])
    return pdf[:at] + flipped + pdf[at + 1:]


def edoc(sender: Organ, receivers: list[Organ], pdf: bytes, *, number: int | None = None,
         subject: str = "V/v triển khai liên thông văn bản điện tử",
         notation: str = "UBND-VP", when: datetime | None = None) -> EdocMessage:
    number = number or next(_counter)
    when = when or datetime.now(UTC)
    day = when.date() if isinstance(when, datetime) else date.today()
    document_id = f"{sender.organ_id},{day:%Y/%m/%d},{number}/{notation}"
    return EdocMessage(
        from_organ=sender, to_organs=tuple(receivers), document_id=document_id,
        code=Code(str(number), notation),
        promulgation_info=PromulgationInfo("Thành phố Thử Nghiệm", day),
        document_type=DocumentType(1, "Công văn", 1),
        subject=subject,
        signer_info=SignerInfo("Nguyễn Văn A", "TM. ỦY BAN NHÂN DÂN", "Chủ tịch"),
        other_info=OtherInfo(priority=0, promulgation_amount=1, page_amount=1),
        trace_headers=(TraceHeader(sender.organ_id, when),),
        attachments=(Attachment(f"cv-{number}", f"{number}-{notation}.pdf", "application/pdf",
                                pdf, "Văn bản chính"),),
    )


def package(msg: EdocMessage) -> bytes:
    return build(msg)


def malformed_package(sender: Organ, receiver: Organ, number: int) -> bytes:
    """An edXML package without the mandatory ``Subject`` and ``SignerInfo``: refused by the
    codec with ``EDXML_MISSING_ELEMENT`` (sender and DocumentId still readable for a 02)."""
    ok = build(edoc(sender, [receiver], make_pdf(1, "x"), number=number))
    start = ok.index(b"<edXML:Subject>")
    end = ok.index(b"</edXML:SignerInfo>") + len(b"</edXML:SignerInfo>")
    return ok[:start] + ok[end:]

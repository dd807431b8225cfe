"""PAdES signing with Decree 30/2020 appearances: ``sign_pdf(pdf, request, key) -> SignedPdf``.

Rules implemented here:

* Every signature is an incremental PAdES signature (``ETSI.CAdES.detached``, SHA-256) at level
  B-B, B-T (signature timestamp from the configured TSA), B-LT (plus validation data in the DSS)
  or B-LTA (plus a document timestamp).
* A document is an original when the competent person signs first and the agency (văn thư) signs
  after. The number/notation and date are assigned when the agency signs: they go into text form
  fields created *before* the first signature (:func:`prepare_form_fields`; the competent-person
  signature creates them automatically) and are filled in the agency's revision, which pyHanko's
  and Acrobat's diff rules accept as form filling: the first signature stays valid. Page content is
  never touched after a signature.
* Attachments and copies carry the agency signature without an image and a Times 10 pt text block
  at the top right of page 1 (see :mod:`signing.appearance`).
* The signature container space is reserved from the key's certificates (no dry-run signature);
  when a TSA answer does not fit, signing is retried once with pyHanko's own estimate.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError as PyHankoPdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError

from signing import appearance as ap
from signing.errors import PdfUnreadableError, SigningError
from signing.keys import KeySource, SignerRole

NUMBER_FIELD = "SoKyHieu"
DATE_FIELD = "NgayBanHanh"
DEFAULT_FIELD_NAMES = {
    SignerRole.COMPETENT_PERSON: "CompetentPerson",
    SignerRole.AGENCY: "AgencySeal",
    SignerRole.ATTACHMENT: "AgencyAttachment",
    SignerRole.COPY: "AgencyCopy",
}


class SignRequestError(SigningError):
    """The request cannot be honoured for this document (missing data, bad page, no TSA ...)."""

    code = "SIGN_REQUEST"


class FormFieldsMissing(SignRequestError):
    """The agency must fill number/date fields that were not created before the first signature."""

    code = "SIGN_FORM_FIELDS_MISSING"


class SignatureFailed(SigningError):
    """pyHanko or the key failed while producing the signature."""

    code = "SIGN_FAILED"


class PadesLevel(enum.StrEnum):
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SignRequest:
    """What to sign, as whom, and how it looks. Boxes are (x1, y1, x2, y2) in PDF points."""

    role: SignerRole
    level: PadesLevel = PadesLevel.B_B
    reason: str | None = None
    location: str | None = None
    field_name: str | None = None
    box: Box | None = None  # None: automatic placement for the role
    page: int = -1  # competent person/agency; -1 = last page. Attachment/copy: always page 1
    signer_name: str | None = None
    signer_position: str | None = None
    competence: str | None = None  # e.g. "TM. ỦY BAN NHÂN DÂN", "KT. CHỦ TỊCH"
    document_number: str | None = None  # số, ký hiệu (agency, attachment)
    document_date: str | None = None  # ngày ban hành, as printed (agency)
    copy_form: str | None = None  # "SAO Y", "SAO LỤC", "TRÍCH SAO" (copy)
    agency_name: str | None = None  # copying agency (copy) / template value
    text_template: str | None = None  # attachment/copy block; {number} {time} {copy_form} {agency}
    image: bytes | None = None  # PNG; default: demo blue signature / red seal
    prepare_fields: bool = True  # competent person: create number/date fields if missing
    number_box: Box | None = None
    date_box: Box | None = None
    visible: bool = True

    def __post_init__(self):
        object.__setattr__(self, "role", SignerRole(self.role))
        object.__setattr__(self, "level", PadesLevel(self.level))


@dataclass(frozen=True)
class SignedPdf:
    data: bytes
    sha256: str
    field_name: str
    signer_subject: str
    signing_time: datetime
    role: SignerRole
    level: PadesLevel


def _page_box(writer, page_ix: int) -> Box:
    page = writer.find_page_for_modification(page_ix)[0].get_object()
    while "/MediaBox" not in page and "/Parent" in page:
        page = page["/Parent"].get_object()
    x0, y0, x1, y1 = (float(v) for v in page["/MediaBox"])
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _page_count(writer) -> int:
    return int(writer.root["/Pages"]["/Count"])


def _field_named(writer, name: str):
    try:
        for ref in writer.root["/AcroForm"]["/Fields"]:
            obj = ref.get_object()
            if obj.get("/T") == name:
                return obj
    except KeyError:
        return None
    return None


def _has_signatures(writer) -> bool:
    return any(True for _ in fields.enumerate_sig_fields(writer, filled_status=True))


def default_field_boxes(page_box: Box) -> tuple[Box, Box]:
    """Number/notation under the issuing agency (left); place and date on the right (Decree 30)."""
    x0, _, x1, y1 = page_box
    return (x0 + 60, y1 - 150, x0 + 260, y1 - 132), (x0 + 300, y1 - 150, x1 - 50, y1 - 132)


def _add_text_fields(writer, page_ix: int, specs: list[tuple[str, Box]]) -> None:
    page_ref = writer.find_page_for_modification(page_ix)[0]
    root = writer.root
    form = root.get("/AcroForm")
    if form is None:
        form = generic.DictionaryObject({pdf_name("/Fields"): generic.ArrayObject()})
        root[pdf_name("/AcroForm")] = writer.add_object(form)
        writer.update_root()
    else:
        form = form.get_object()
    form.setdefault(pdf_name("/DA"), pdf_string("/Helv 0 Tf 0 g"))
    for name, box in specs:
        if _field_named(writer, name) is not None:
            continue
        widget = generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Annot"),
                pdf_name("/Subtype"): pdf_name("/Widget"),
                pdf_name("/FT"): pdf_name("/Tx"),
                pdf_name("/T"): pdf_string(name),
                pdf_name("/Rect"): generic.ArrayObject(generic.FloatObject(v) for v in box),
                pdf_name("/F"): generic.NumberObject(4),
                pdf_name("/P"): page_ref,
                pdf_name("/DA"): pdf_string("/Helv 0 Tf 0 g"),
            }
        )
        ref = writer.add_object(widget)
        form["/Fields"].append(ref)
        writer.register_annotation(page_ref, ref)
    writer.update_container(form)


def prepare_form_fields(
    pdf: bytes,
    *,
    page: int = 0,
    number_box: Box | None = None,
    date_box: Box | None = None,
    number_field: str = NUMBER_FIELD,
    date_field: str = DATE_FIELD,
) -> bytes:
    """Add empty number/notation and date text fields (a new revision); before any signature."""
    writer = _open(pdf)
    if _has_signatures(writer):
        raise SignRequestError(
            "form fields must be created before the first signature", code="SIGN_ALREADY_SIGNED"
        )
    default_number, default_date = default_field_boxes(_page_box(writer, page))
    _add_text_fields(
        writer,
        page,
        [(number_field, number_box or default_number), (date_field, date_box or default_date)],
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _fill_text_field(writer, name: str, value: str, font_size: int = 13) -> None:
    """Set the field's value and draw its appearance with the embedded font."""
    widget = _field_named(writer, name)
    if widget is None:
        raise FormFieldsMissing(
            f"no form field {name!r}: create it before the first signature "
            "(prepare_form_fields or the competent-person signature)",
        )
    ap.check_glyphs(value)
    x0, y0, x1, y1 = (float(v) for v in widget["/Rect"])
    style = ap.Decree30StampStyle(lines_above=(value,), font_size=font_size, leading=font_size)
    from pyhanko.pdf_utils.layout import BoxConstraints

    stamp = style.create_stamp(writer, BoxConstraints(abs(x1 - x0), abs(y1 - y0)), {})
    widget[pdf_name("/V")] = pdf_string(value)
    widget[pdf_name("/AP")] = generic.DictionaryObject(
        {pdf_name("/N"): writer.add_object(stamp.as_form_xobject())}
    )
    writer.update_container(widget)


def _open(pdf: bytes) -> IncrementalPdfFileWriter:
    try:
        return IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (PyHankoPdfError, ValueError, KeyError) as exc:
        raise PdfUnreadableError(f"cannot parse PDF: {exc}") from exc


def _unique_field_name(writer, base: str) -> str:
    name, n = base, 1
    while _field_named(writer, name) is not None:
        n += 1
        name = f"{base}{n}"
    return name


def _signed_signature_box(writer) -> tuple[int, Box] | None:
    """Page index and rectangle of the first visible filled signature (the competent person's)."""
    pages = {}
    for i in range(_page_count(writer)):
        pages[writer.find_page_for_modification(i)[0].idnum] = i
    for _, _, ref in fields.enumerate_sig_fields(writer, filled_status=True):
        obj = ref.get_object()
        rect = [float(v) for v in obj.get("/Rect", [0, 0, 0, 0])]
        page = obj.get_value_as_reference("/P") if "/P" in obj else None
        if rect[2] - rect[0] > 1 and page is not None and page.idnum in pages:
            return pages[page.idnum], (rect[0], rect[1], rect[2], rect[3])
    return None


class _FixedTimeSigner(signers.PdfSigner):
    """PdfSigner whose signing time is the one printed in the appearance."""

    def __init__(self, *args, signing_time: datetime, **kwargs):
        super().__init__(*args, **kwargs)
        self._signing_time = signing_time

    def init_signing_session(self, pdf_out, existing_fields_only=False):
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._signing_time
        return session


def reserved_bytes(signer: signers.Signer, level: PadesLevel) -> int:
    """Hex bytes to reserve for the CMS container: certificates + signature + attributes."""
    certs = [signer.signing_cert, *list(signer.cert_registry)]
    size = sum(len(c.dump()) for c in certs) + 512 + 2048
    if level is not PadesLevel.B_B:
        size += 8192  # timestamp token with the TSA's certificates
    return 2 * size + 1024


def _appearance(writer, request: SignRequest, when: datetime):
    """(page index, box, stamp style) for the role, or None for an invisible signature."""
    role = request.role
    if not request.visible:
        return None
    n = _page_count(writer)
    if role in (SignerRole.ATTACHMENT, SignerRole.COPY):
        template = request.text_template or (
            ap.ATTACHMENT_TEMPLATE if role is SignerRole.ATTACHMENT else ap.COPY_TEMPLATE
        )
        values = {
            "number": request.document_number or "",
            "time": ap.iso_vietnam(when),
            "copy_form": request.copy_form or "SAO Y",
            "agency": request.agency_name or "",
        }
        lines = [line for line in template.format(**values).split("\n") if line.strip()]
        box = request.box or ap.top_right_box(_page_box(writer, 0), lines)
        return 0, box, ap.text_block_style(lines)
    page = request.page if request.page >= 0 else n + request.page
    if not 0 <= page < n:
        raise SignRequestError(f"page {request.page} out of range (1..{n})", code="SIGN_PAGE")
    if role is SignerRole.AGENCY:
        box = request.box
        if box is None:
            found = _signed_signature_box(writer)
            if found is not None:
                page, sig_box = found
            else:
                sig_box = ap.auto_signature_box(_page_box(writer, page))
            box = ap.seal_box(sig_box)
        return page, box, ap.seal_style(request.image)
    box = request.box or ap.auto_signature_box(_page_box(writer, page))
    style = ap.competent_person_style(
        request.image,
        competence=request.competence,
        position=request.signer_position,
        name=request.signer_name,
    )
    return page, box, style


async def async_sign_pdf(
    pdf: bytes,
    request: SignRequest,
    key: KeySource,
    *,
    timestamper=None,
    validation_context=None,
) -> SignedPdf:
    """Sign ``pdf`` (async: use inside an event loop that owns the TSA/fetcher sessions)."""
    level = request.level
    if level is not PadesLevel.B_B and timestamper is None:
        raise SignRequestError(f"level {level} needs a timestamper (TSA)", code="SIGN_NO_TSA")
    if level in (PadesLevel.B_LT, PadesLevel.B_LTA) and validation_context is None:
        raise SignRequestError(f"level {level} needs a validation context", code="SIGN_NO_VC")
    signer = key.signer()
    when = ap.vietnam_time()
    try:
        try:
            data, name = await _sign_once(
                pdf,
                request,
                signer,
                when,
                timestamper,
                validation_context,
                reserved_bytes(signer, level),
            )
        except PyHankoSigningError as exc:
            if "larger than expected" not in str(exc):
                raise
            # a TSA answer bigger than reserved: let pyHanko estimate the size, once
            data, name = await _sign_once(
                pdf, request, signer, when, timestamper, validation_context, None
            )
    except SigningError:
        raise
    except (PyHankoSigningError, PyHankoPdfError) as exc:
        raise SignatureFailed(f"signing failed: {exc}") from exc
    return SignedPdf(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        field_name=name,
        signer_subject=signer.signing_cert.subject.human_friendly,
        signing_time=when,
        role=request.role,
        level=level,
    )


async def _sign_once(pdf, request, signer, when, timestamper, validation_context, reserve):
    """One signing attempt from the original bytes; returns (signed bytes, field name)."""
    level = request.level
    writer = _open(pdf)
    agency_fills = request.role is SignerRole.AGENCY and (
        request.document_number or request.document_date
    )
    creates = request.role is SignerRole.COMPETENT_PERSON and request.prepare_fields
    if (creates or agency_fills) and not _has_signatures(writer):
        # nothing signed yet: the fields can be created in this revision
        default_number, default_date = default_field_boxes(_page_box(writer, 0))
        _add_text_fields(
            writer,
            0,
            [
                (NUMBER_FIELD, request.number_box or default_number),
                (DATE_FIELD, request.date_box or default_date),
            ],
        )
    if request.role is SignerRole.AGENCY:
        if request.document_number:
            _fill_text_field(writer, NUMBER_FIELD, request.document_number)
        if request.document_date:
            _fill_text_field(writer, DATE_FIELD, request.document_date)
    name = request.field_name or _unique_field_name(writer, DEFAULT_FIELD_NAMES[request.role])
    placed = _appearance(writer, request, when)
    field_spec = fields.SigFieldSpec(name)
    style = None
    if placed is not None:
        page, box, style = placed
        field_spec = fields.SigFieldSpec(name, on_page=page, box=tuple(round(v, 2) for v in box))
    meta = signers.PdfSignatureMetadata(
        field_name=name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=request.reason,
        location=request.location,
        embed_validation_info=level in (PadesLevel.B_LT, PadesLevel.B_LTA),
        use_pades_lta=level is PadesLevel.B_LTA,
        validation_context=validation_context,
    )
    pdf_signer = _FixedTimeSigner(
        meta,
        signer,
        timestamper=timestamper if level is not PadesLevel.B_B else None,
        stamp_style=style,
        new_field_spec=field_spec,
        signing_time=when,
    )
    out = io.BytesIO()
    await pdf_signer.async_sign_pdf(writer, bytes_reserved=reserve, output=out)
    return out.getvalue(), name


def sign_pdf(
    pdf: bytes,
    request: SignRequest,
    key: KeySource,
    *,
    timestamper=None,
    validation_context=None,
) -> SignedPdf:
    """Sign ``pdf`` synchronously (worker processes, CLI). Not for use on a running event loop."""
    return asyncio.run(
        async_sign_pdf(
            pdf, request, key, timestamper=timestamper, validation_context=validation_context
        )
    )


@dataclass(frozen=True)
class SigningServices:
    """TSA and trust settings for B-T and above when signing outside an event loop."""

    tsa_url: str | None = None
    trust_roots: tuple[Path, ...] = ()
    other_certs: tuple[Path, ...] = ()
    allow_fetching: bool = True
    timeout: float = 10.0
    extra: dict = field(default_factory=dict)


async def async_sign_with_services(
    pdf: bytes, request: SignRequest, key: KeySource, services: SigningServices | None
) -> SignedPdf:
    """Sign, creating the aiohttp session for the TSA and revocation fetchers on this loop."""
    if request.level is PadesLevel.B_B or services is None:
        return await async_sign_pdf(pdf, request, key)
    if not services.tsa_url:
        raise SignRequestError(f"level {request.level} needs tsa_url", code="SIGN_NO_TSA")
    import aiohttp
    from pyhanko.keys import load_certs_from_pemder
    from pyhanko.sign.timestamps.aiohttp_client import AIOHttpTimeStamper
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    timeout = aiohttp.ClientTimeout(total=services.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tsa = AIOHttpTimeStamper(services.tsa_url, session=session)
        vc = None
        if request.level in (PadesLevel.B_LT, PadesLevel.B_LTA):
            vc = ValidationContext(
                trust_roots=list(load_certs_from_pemder([str(p) for p in services.trust_roots])),
                other_certs=list(load_certs_from_pemder([str(p) for p in services.other_certs])),
                allow_fetching=services.allow_fetching,
                fetcher_backend=AIOHttpFetcherBackend(session),
            )
        return await async_sign_pdf(pdf, request, key, timestamper=tsa, validation_context=vc)


def sign_with_services(
    pdf: bytes, request: SignRequest, key: KeySource, services: SigningServices | None = None
) -> SignedPdf:
    """Synchronous :func:`async_sign_with_services` (worker processes, CLI)."""
    return asyncio.run(async_sign_with_services(pdf, request, key, services))

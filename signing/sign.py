"""PAdES signing with Decree 30/2020 appearances: ``sign_pdf(pdf, request, key) -> SignedPdf``.

Rules implemented here:

* Every signature is an incremental PAdES signature (``ETSI.CAdES.detached``, SHA-256) at level
  B-B, B-T (signature timestamp from the configured TSA), B-LT (plus validation data in the DSS)
  or B-LTA (plus a document timestamp).
* A document is an original when the competent person signs first and the agency (văn thư) signs
  after. The number/notation and date go into text form fields created before the first
  signature and filled in the agency's revision (form filling: the first signature stays valid);
  see :mod:`signing.fields`. Page content is never touched after a signature.
* Attachments and copies carry the agency signature without an image and a Times 10 pt text block
  at the top right of page 1 (see :mod:`signing.appearance`).
* The signature container space is reserved from the key's certificates (no dry-run signature);
  when a TSA answer does not fit, signing is retried once with pyHanko's own estimate.
* Signing into a field that is already signed is refused (:class:`FieldAlreadySigned`, code
  ``FIELD_ALREADY_SIGNED``), into a field that is not a signature field too
  (``FIELD_NOT_SIGNATURE``); a PDF nested too deeply for the parser is ``PDF_TOO_COMPLEX``.
* With ``check_existing`` the signatures the PDF already carries are checked for integrity
  first (:func:`existing_signatures`: each one's ByteRange digest against its signed
  ``messageDigest`` and its signature value against its certificate; no trust, no revocation)
  and the verdict (``none``/``intact``/``invalid``) is returned with the signed PDF;
  with ``refuse_invalid_existing`` an ``invalid`` verdict refuses the job
  (:class:`ExistingSignaturesInvalid`).
* Memory: :func:`sign_pdf` holds the input and one signed copy (about 2x the PDF's size, the
  least a bytes-in, bytes-out API can do); :func:`sign_pdf_file` signs a copy of the file in
  place and digests it in chunks, so its memory does not grow with the PDF's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import io
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pyhanko.pdf_utils.misc import PdfError as PyHankoPdfError
from pyhanko.pdf_utils.misc import PdfReadError as PyHankoPdfReadError
from pyhanko.sign import fields as sig_fields
from pyhanko.sign import signers
from pyhanko.sign.general import SigningError as PyHankoSigningError

from signing import appearance as ap
from signing import fields as form
from signing.errors import PdfTooComplexError, PdfUnreadableError, SigningError
from signing.fields import DATE_FIELD, NUMBER_FIELD, Box, SignRequestError
from signing.fields import FormFieldsMissing as FormFieldsMissing  # re-exported
from signing.fields import prepare_form_fields as prepare_form_fields  # re-exported
from signing.integrity import existing_signatures
from signing.keys import KeySource, SignerRole

DEFAULT_FIELD_NAMES = {
    SignerRole.COMPETENT_PERSON: "CompetentPerson",
    SignerRole.AGENCY: "AgencySeal",
    SignerRole.ATTACHMENT: "AgencyAttachment",
    SignerRole.COPY: "AgencyCopy",
}


class SignatureFailed(SigningError):
    """pyHanko or the key failed while producing the signature."""

    code = "SIGN_FAILED"


class FieldAlreadySigned(SigningError):
    """The requested signature field is already signed (a signature is never overwritten)."""

    code = "FIELD_ALREADY_SIGNED"


class ExistingSignaturesInvalid(SigningError):
    """The PDF's existing signatures are not intact and the caller refuses to sign over them."""

    code = "EXISTING_SIGNATURES_INVALID"


class PadesLevel(enum.StrEnum):
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"


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
    check_existing: bool = False  # judge the existing signatures' integrity (SignedPdf says)
    refuse_invalid_existing: bool = False  # ... and refuse when one is not intact

    def __post_init__(self):
        object.__setattr__(self, "role", SignerRole(self.role))
        object.__setattr__(self, "level", PadesLevel(self.level))


@dataclass(frozen=True)
class SignedPdf:
    """A signed document in memory. ``repr`` leaves out ``data`` (it may be 100 MB)."""

    data: bytes = field(repr=False)
    sha256: str
    field_name: str
    signer_subject: str
    signing_time: datetime
    role: SignerRole
    level: PadesLevel
    #: ``none`` | ``intact`` | ``invalid`` when the request asked (``check_existing``), else None
    existing_signatures: str | None = None


@dataclass(frozen=True)
class SignedPdfFile:
    """A signed document written to ``path`` by :func:`sign_pdf_file`."""

    path: Path
    size: int
    sha256: str
    field_name: str
    signer_subject: str
    signing_time: datetime
    role: SignerRole
    level: PadesLevel


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


def _check_services(level: PadesLevel, timestamper, validation_context) -> None:
    if level is not PadesLevel.B_B and timestamper is None:
        raise SignRequestError(f"level {level} needs a timestamper (TSA)", code="SIGN_NO_TSA")
    if level in (PadesLevel.B_LT, PadesLevel.B_LTA) and validation_context is None:
        raise SignRequestError(f"level {level} needs a validation context", code="SIGN_NO_VC")


def _check_target_field(writer, name: str) -> None:
    existing = form.field_named(writer, name)
    if existing is None:
        return
    if existing.get("/FT") != "/Sig":
        raise SignRequestError(f"field {name!r} exists and is not a signature field",
                               code="FIELD_NOT_SIGNATURE", detail={"field": name})
    if existing.get("/V") is not None:
        raise FieldAlreadySigned(f"field {name!r} is already signed", detail={"field": name})


def _prepare(writer, request: SignRequest, signer, when, timestamper, validation_context):
    """Form fields of this revision and the configured pyHanko signer: (PdfSigner, field name)."""
    level = request.level
    if request.field_name:
        _check_target_field(writer, request.field_name)
    agency_fills = request.role is SignerRole.AGENCY and (
        request.document_number or request.document_date
    )
    creates = request.role is SignerRole.COMPETENT_PERSON and request.prepare_fields
    if (creates or agency_fills) and not form.has_signatures(writer):
        # nothing signed yet: the fields can be created in this revision
        default_number, default_date = form.default_field_boxes(form.page_box(writer, 0))
        form.add_text_fields(
            writer,
            0,
            [
                (NUMBER_FIELD, request.number_box or default_number),
                (DATE_FIELD, request.date_box or default_date),
            ],
        )
    if request.role is SignerRole.AGENCY:
        if request.document_number:
            form.fill_text_field(writer, NUMBER_FIELD, request.document_number)
        if request.document_date:
            form.fill_text_field(writer, DATE_FIELD, request.document_date)
    name = request.field_name or form.unique_field_name(writer, DEFAULT_FIELD_NAMES[request.role])
    placed = form.signature_placement(writer, request, when)
    field_spec = sig_fields.SigFieldSpec(name)
    style = None
    if placed is not None:
        page, box, style = placed
        field_spec = sig_fields.SigFieldSpec(
            name, on_page=page, box=tuple(round(v, 2) for v in box)
        )
    meta = signers.PdfSignatureMetadata(
        field_name=name,
        md_algorithm="sha256",
        subfilter=sig_fields.SigSeedSubFilter.PADES,
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
    return pdf_signer, name


async def _with_retry(attempt, signer, level: PadesLevel) -> str:
    """``await attempt(bytes_reserved)``; when a TSA answer does not fit, once more with
    pyHanko's own size estimate. pyHanko errors become :class:`SignatureFailed`."""
    try:
        try:
            return await attempt(reserved_bytes(signer, level))
        except PyHankoSigningError as exc:
            if "larger than expected" not in str(exc):
                raise
            return await attempt(None)
    except SigningError:
        raise
    except PyHankoPdfReadError as exc:  # objects read lazily while signing: the input's fault
        raise PdfUnreadableError(f"cannot parse PDF: {exc}") from exc
    except (PyHankoSigningError, PyHankoPdfError) as exc:
        raise SignatureFailed(f"signing failed: {exc}") from exc


async def async_sign_pdf(
    pdf: bytes,
    request: SignRequest,
    key: KeySource,
    *,
    timestamper=None,
    validation_context=None,
) -> SignedPdf:
    """Sign ``pdf`` (async: use inside an event loop that owns the TSA/fetcher sessions)."""
    _check_services(request.level, timestamper, validation_context)
    try:
        return await _async_sign_pdf(pdf, request, key, timestamper, validation_context)
    except RecursionError:
        raise PdfTooComplexError("the PDF's objects are nested too deeply to be processed"
                                 ) from None


async def _async_sign_pdf(pdf: bytes, request: SignRequest, key: KeySource, timestamper,
                          validation_context) -> SignedPdf:
    # the first attempt's writer also serves the integrity check: its reader (``prev``) is the
    # PDF as received, which signing does not change; a second attempt parses afresh
    writers = [form.open_writer(pdf)]  # BytesIO over the caller's bytes: no copy
    existing = None
    if request.check_existing:
        existing = existing_signatures(writers[0].prev)
        if existing == "invalid" and request.refuse_invalid_existing:
            raise ExistingSignaturesInvalid(
                "the PDF's existing signatures are not intact; refusing to sign over them")
    signer = key.signer()
    when = ap.vietnam_time()
    signed: list[bytes] = []

    async def attempt(reserve):
        writer = writers.pop() if writers else form.open_writer(pdf)
        pdf_signer, name = _prepare(writer, request, signer, when, timestamper, validation_context)
        out = io.BytesIO()
        await pdf_signer.async_sign_pdf(writer, bytes_reserved=reserve, output=out)
        signed[:] = [out.getvalue()]  # the buffer itself (resized), not a copy
        return name

    name = await _with_retry(attempt, signer, request.level)
    data = signed.pop()
    return SignedPdf(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        field_name=name,
        signer_subject=signer.signing_cert.subject.human_friendly,
        signing_time=when,
        role=request.role,
        level=request.level,
        existing_signatures=existing,
    )


def _run(coro):
    """``asyncio.run(coro)`` without making the (large) result the main task's result.

    Python 3.11's ``asyncio.Runner.run`` calls ``signal.getsignal(SIGINT)`` on the way out;
    that formats ``repr(partial(_on_sigint, main_task=task))``, i.e. the full ``repr`` of the
    task's result (reprlib truncates only afterwards). For a 100 MB signed PDF this allocated
    ~1.2 GB (12x the PDF). The result is handed over through a list instead.
    """
    box = []

    async def main():
        box.append(await coro)

    asyncio.run(main())
    return box[0]


def sign_pdf(
    pdf: bytes,
    request: SignRequest,
    key: KeySource,
    *,
    timestamper=None,
    validation_context=None,
) -> SignedPdf:
    """Sign ``pdf`` synchronously (worker processes, CLI). Not for use on a running event loop."""
    return _run(
        async_sign_pdf(
            pdf, request, key, timestamper=timestamper, validation_context=validation_context
        )
    )


def sign_pdf_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    request: SignRequest,
    key: KeySource,
    services: SigningServices | None = None,
) -> SignedPdfFile:
    """Sign the PDF at ``in_path`` into ``out_path`` (a new file; ``in_path`` is not changed).

    The input is copied to ``out_path`` by the OS, then signed there in place (pyHanko's
    ``in_place=True``: the new revision is appended and the byte range digested in chunks), so
    memory use does not depend on the document's size. A failed signature leaves no output.
    Synchronous (worker processes, CLI); TSA and trust for B-T and above come from ``services``.
    """
    src, dst = Path(in_path), Path(out_path)
    if dst.exists() and src.resolve() == dst.resolve():
        raise SignRequestError("out_path must differ from in_path", code="SIGN_SAME_FILE")
    shutil.copyfile(src, dst)
    try:
        with open(dst, "r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            name, signer, when = _run(_sign_file_with_services(fh, size, request, key, services))
            fh.flush()
            fh.seek(0)
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            total = fh.seek(0, os.SEEK_END)
    except BaseException:
        with contextlib.suppress(OSError):
            dst.unlink()
        raise
    return SignedPdfFile(
        path=dst,
        size=total,
        sha256=digest,
        field_name=name,
        signer_subject=signer.signing_cert.subject.human_friendly,
        signing_time=when,
        role=request.role,
        level=request.level,
    )


async def _sign_file_with_services(fh, size: int, request, key, services):
    async with _services(request.level, services) as (tsa, vc):
        return await _sign_file_in_place(fh, size, request, key, tsa, vc)


async def _sign_file_in_place(fh, size: int, request, key, timestamper, validation_context):
    """Sign the PDF in the first ``size`` bytes of ``fh`` (r+b) by appending to it; returns
    (field name, signer, signing time)."""
    _check_services(request.level, timestamper, validation_context)
    signer = key.signer()
    when = ap.vietnam_time()

    async def attempt(reserve):
        fh.seek(0)
        fh.truncate(size)  # undo a failed attempt
        writer = form.open_writer(fh)
        pdf_signer, name = _prepare(writer, request, signer, when, timestamper, validation_context)
        await pdf_signer.async_sign_pdf(writer, bytes_reserved=reserve, in_place=True)
        return name

    return await _with_retry(attempt, signer, request.level), signer, when


@dataclass(frozen=True)
class SigningServices:
    """TSA and trust settings for B-T and above when signing outside an event loop."""

    tsa_url: str | None = None
    trust_roots: tuple[Path, ...] = ()
    other_certs: tuple[Path, ...] = ()
    allow_fetching: bool = True
    timeout: float = 10.0
    extra: dict = field(default_factory=dict)


@contextlib.asynccontextmanager
async def _services(level: PadesLevel, services: SigningServices | None):
    """(timestamper, validation context) for ``level`` on an aiohttp session of this loop."""
    if level is PadesLevel.B_B or services is None:
        yield None, None
        return
    if not services.tsa_url:
        raise SignRequestError(f"level {level} needs tsa_url", code="SIGN_NO_TSA")
    import aiohttp
    from pyhanko.keys import load_certs_from_pemder
    from pyhanko.sign.timestamps.aiohttp_client import AIOHttpTimeStamper
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    timeout = aiohttp.ClientTimeout(total=services.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tsa = AIOHttpTimeStamper(services.tsa_url, session=session)
        vc = None
        if level in (PadesLevel.B_LT, PadesLevel.B_LTA):
            vc = ValidationContext(
                trust_roots=list(load_certs_from_pemder([str(p) for p in services.trust_roots])),
                other_certs=list(load_certs_from_pemder([str(p) for p in services.other_certs])),
                allow_fetching=services.allow_fetching,
                fetcher_backend=AIOHttpFetcherBackend(session),
            )
        yield tsa, vc


async def async_sign_with_services(
    pdf: bytes, request: SignRequest, key: KeySource, services: SigningServices | None
) -> SignedPdf:
    """Sign, creating the aiohttp session for the TSA and revocation fetchers on this loop."""
    async with _services(request.level, services) as (tsa, vc):
        return await async_sign_pdf(pdf, request, key, timestamper=tsa, validation_context=vc)


def sign_with_services(
    pdf: bytes, request: SignRequest, key: KeySource, services: SigningServices | None = None
) -> SignedPdf:
    """Synchronous :func:`async_sign_with_services` (worker processes, CLI)."""
    return _run(async_sign_with_services(pdf, request, key, services))

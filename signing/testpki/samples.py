"""Signed sample PDFs made with stock pyHanko against the test PKI (tests, benchmarks, demo).

These helpers deliberately use pyHanko directly rather than :mod:`signing.sign`, so that the
verifier is tested against an independent producer.
"""

from __future__ import annotations

import io
from typing import Any

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers, timestamps
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

from signing.testpki import TestPki

__all__ = ["LEVELS", "doc_timestamp", "load_signer", "sign_sample"]

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
_signer_cache: dict[tuple[str, str], signers.SimpleSigner] = {}


def load_signer(pki: TestPki, label: str) -> signers.SimpleSigner:
    """A cached ``SimpleSigner`` for the PKCS#12 file of ``label`` (with its chain)."""
    key = (str(pki.folder), label)
    if key not in _signer_cache:
        signer = signers.SimpleSigner.load_pkcs12(
            str(pki.p12(label)), passphrase=pki.p12_passphrase
        )
        if signer is None:  # pragma: no cover
            raise RuntimeError(f"cannot load PKCS#12 of {label}")
        _signer_cache[key] = signer
    return _signer_cache[key]


def _validation_context(pki: TestPki, session: Any) -> ValidationContext:
    return ValidationContext(
        trust_roots=pki.trust_roots,
        other_certs=[pki.intermediate_cert],
        allow_fetching=True,
        fetcher_backend=AIOHttpFetcherBackend(session),
        revocation_mode="hard-fail",
    )


async def sign_sample(
    pdf: bytes,
    pki: TestPki,
    label: str = "officer",
    *,
    level: str = "B-B",
    session: Any = None,
    field_name: str | None = None,
    certify: bool = False,
    docmdp: Any = None,
    visible_box: tuple[int, int, int, int] | None = None,
    page: int = 0,
    strict: bool = True,
) -> bytes:
    """Sign ``pdf`` incrementally as ``label`` at PAdES ``level`` (B-T and above need
    ``session`` from :meth:`TestPki.serve_session`; ``strict=False`` reads a damaged input
    the way a lenient producer would)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level}")
    field_name = field_name or f"Sig_{label}"
    timestamper = None
    vc = None
    if level != "B-B":
        if session is None:
            raise ValueError(f"{level} needs a served session")
        timestamper = timestamps.HTTPTimeStamper(pki.tsa_url, session=session)
    if level in ("B-LT", "B-LTA"):
        vc = _validation_context(pki, session)
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        certify=certify,
        docmdp_permissions=docmdp or fields.MDPPerm.FILL_FORMS,
        embed_validation_info=vc is not None,
        use_pades_lta=level == "B-LTA",
        validation_context=vc,
    )
    spec = None
    if visible_box is not None:
        spec = fields.SigFieldSpec(field_name, box=visible_box, on_page=page)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=strict)
    pdf_signer = signers.PdfSigner(
        meta, signer=load_signer(pki, label), timestamper=timestamper, new_field_spec=spec
    )
    out = await pdf_signer.async_sign_pdf(writer)
    return out.getvalue()


async def doc_timestamp(
    pdf: bytes, pki: TestPki, session: Any, *, field_name: str = "DocTS"
) -> bytes:
    """Add a document timestamp (``/SubFilter /ETSI.RFC3161``) to ``pdf``."""
    timestamper = timestamps.HTTPTimeStamper(pki.tsa_url, session=session)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = await signers.PdfTimeStamper(timestamper, field_name=field_name).async_timestamp_pdf(
        writer, md_algorithm="sha256"
    )
    return out.getvalue()

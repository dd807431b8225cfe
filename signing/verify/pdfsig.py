"""How each PDF signature dictionary is handed to pyHanko (see :mod:`signing.verify`).

* Routing by ``/SubFilter`` (:func:`kind_of`): ``ETSI.RFC3161`` document timestamps,
  ``ETSI.CAdES.detached`` / ``adbe.pkcs7.detached`` signatures, and the legacy
  ``adbe.pkcs7.sha1`` (ISO 32000-1 §12.8.3.3.1: the CMS encapsulates, as signed data, the
  SHA-1 digest of the ByteRange), validated by :func:`validate_sha1`.
* Document timestamps whose ``/Type`` is missing or ``/Sig`` (ISO 32000-2 Table 255 wants
  ``/DocTimeStamp``) are still validated as timestamps (:class:`_LenientDocTimestamp`).
* A CMS with several SignerInfos (ETSI EN 319 142-1 §6.3 wants exactly one) is validated once
  per SignerInfo (:func:`embedded_views`): pyHanko sees one view per SignerInfo, identical to
  the signature dictionary except that ``/Contents`` holds a SignedData with that SignerInfo
  only (zero-padded to the stored length, as a signer pads it).
"""

from __future__ import annotations

from asn1crypto import cms
from pyhanko.pdf_utils import generic
from pyhanko.sign import general
from pyhanko.sign.validation import generic_cms
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    extract_contents,
    report_seed_value_validation,
)
from pyhanko.sign.validation.status import PdfSignatureStatus

__all__ = [
    "SHA1_SUBFILTER",
    "SIG_SUBFILTERS",
    "TS_SUBFILTER",
    "embedded_views",
    "kind_of",
    "single_signer_data",
    "validate_sha1",
]

SHA1_SUBFILTER = "/adbe.pkcs7.sha1"
SIG_SUBFILTERS = ("/adbe.pkcs7.detached", "/ETSI.CAdES.detached", SHA1_SUBFILTER)
TS_SUBFILTER = "/ETSI.RFC3161"


def kind_of(subfilter: str | None) -> str:
    return ("document_timestamp" if subfilter == TS_SUBFILTER
            else "signature" if subfilter in SIG_SUBFILTERS else "unsupported")


class _LenientDocTimestamp(EmbeddedPdfSignature):
    """A ``/ETSI.RFC3161`` dictionary whose ``/Type`` is missing or ``/Sig``: pyHanko reads a
    missing ``/Type`` as ``/Sig`` and refuses to validate it as a timestamp."""

    @property
    def sig_object_type(self) -> generic.NameObject:
        return generic.NameObject("/DocTimeStamp")


class _ViewRef(generic.IndirectObject):
    """The reference of the real signature dictionary, resolving to a per-SignerInfo view
    (its revision and identity are the real object's)."""

    def __init__(self, real: generic.IndirectObject, view: generic.DictionaryObject) -> None:
        super().__init__(real.idnum, real.generation, real.get_pdf_handler())
        self._view = view

    def get_object(self) -> generic.DictionaryObject:
        return self._view


def single_signer_data(signed_data: cms.SignedData) -> list[cms.SignedData]:
    """One SignedData per SignerInfo (``signed_data`` itself when it has at most one)."""
    infos = signed_data["signer_infos"]
    if len(infos) <= 1:
        return [signed_data]
    out = []
    for info in infos:
        copy = signed_data.copy()
        copy["signer_infos"] = cms.SignerInfos([info.copy()])
        out.append(copy)
    return out


def embedded_views(reader, field_ref, name: str, kind: str) -> list[EmbeddedPdfSignature]:
    """The signature(s) pyHanko validates for one signature field (see the module docstring).
    A document timestamp with a ``/Type`` other than ``/DocTimeStamp``, ``/Sig`` or none is
    left to pyHanko, which refuses it (FORMAT_FAILURE)."""
    from signing.verify.cms import doc_timestamp_type

    field = field_ref.get_object()
    sig_ref = field.raw_get("/V")
    sig_obj = sig_ref.get_object()
    if kind == "document_timestamp":
        lenient = doc_timestamp_type(sig_obj) == "lenient"
        return [(_LenientDocTimestamp if lenient else EmbeddedPdfSignature)(
            reader, field_ref, name)]
    try:
        return [EmbeddedPdfSignature(reader, field_ref, name)]
    except general.CMSExtractionError:  # not exactly one SignerInfo
        if not isinstance(sig_ref, generic.IndirectObject):
            raise
    contents = extract_contents(sig_obj)
    parts = single_signer_data(cms.ContentInfo.load(contents)["content"])
    if len(parts) < 2:
        raise general.CMSExtractionError("no SignerInfo")
    views = []
    for part in parts:
        der = cms.ContentInfo({"content_type": "signed_data", "content": part}).dump()
        view = generic.DictionaryObject(sig_obj)
        view["/Contents"] = generic.ByteStringObject(der.ljust(len(contents), b"\x00"))
        view_field = generic.DictionaryObject(field)
        view_field["/V"] = _ViewRef(sig_ref, view)
        views.append(EmbeddedPdfSignature(reader, view_field, name))
    return views


async def validate_sha1(emb_sig: EmbeddedPdfSignature, vc, diff_policy) -> PdfSignatureStatus:
    """``/adbe.pkcs7.sha1`` (ISO 32000-1 §12.8.3.3.1): the CMS signs, as encapsulated
    ``data``, the SHA-1 digest of the ByteRange. Intact only when that eContent equals
    SHA-1 of the ByteRange bytes *and* the signed ``messageDigest`` matches the eContent
    (pyHanko's CMS validation of encapsulated data); the PDF-level checks (coverage,
    modifications, DocMDP) are pyHanko's as for any signature."""
    emb_sig.compute_integrity_info(diff_policy=diff_policy)
    status = emb_sig.summarise_integrity_info()
    signed_data = emb_sig.signed_data
    eci = signed_data["encap_content_info"]
    if eci["content_type"].native != "data" or eci["content"].native is None:
        raise general.CMSStructuralError(
            "adbe.pkcs7.sha1 needs encapsulated data (ISO 32000-1 §12.8.3.3.1)")
    status.update(await generic_cms.collect_timing_info(
        emb_sig.signer_info, vc, raw_digest=emb_sig.compute_digest))
    status = await generic_cms.cms_basic_validation(
        signed_data, raw_digest=None, validation_context=vc, status_kwargs=status,
        key_usage_settings=PdfSignatureStatus.default_usage_constraints(None))
    status["intact"] = bool(status["intact"]) and (
        bytes(eci["content"]) == emb_sig.compute_digest("sha1"))
    if "signer_reported_dt" not in status and emb_sig.self_reported_timestamp is not None:
        status["signer_reported_dt"] = emb_sig.self_reported_timestamp
    tst = status.get("timestamp_validity")
    status.update(report_seed_value_validation(
        emb_sig, status["validation_path"], bool(tst and tst.valid and tst.trusted)))
    status.update(await generic_cms.collect_signer_attr_status(
        sd_attr_certificates=emb_sig.embedded_attr_certs, signer_cert=emb_sig.signer_cert,
        validation_context=None, sd_signed_attrs=emb_sig.signer_info["signed_attrs"]))
    return PdfSignatureStatus(**status)

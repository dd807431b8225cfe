"""Per-signature validation with pyHanko and the verdict rule of :mod:`signing.verify`."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import MDPPerm, enumerate_sig_fields
from pyhanko.sign.validation import (
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.pdf_embedded import read_certification_data
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from signing.report import Indication, SignatureReport, ValidationReport, Verdict
from signing.verify import cms, pdfsig
from signing.verify.diff import GATEWAY_DIFF_POLICY
from signing.verify.diff.linearized import merge_linearized
from signing.verify.revocation import covers, describe_revocation, missing_revinfo

if TYPE_CHECKING:
    from signing.verify import Verifier

_OK_COVERAGE = (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION)
_ALWAYS_OK_MODS = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES,
                   ModificationLevel.FORM_FILLING)
_EXPIRED = ("EXPIRED", "OUT_OF_BOUNDS_NO_POE", "OUT_OF_BOUNDS_NOT_REVOKED", "NOT_YET_VALID")
_UNTRUSTED = ("NO_CERTIFICATE_CHAIN_FOUND", "CERTIFICATE_CHAIN_GENERAL_FAILURE",
              "CHAIN_CONSTRAINTS_FAILURE", "NO_SIGNING_CERTIFICATE_FOUND")
_REVINFO = ("TRY_LATER", "REVOCATION_OUT_OF_BOUNDS_NO_POE")


class _Embedded:
    """Revocation data and certificates embedded in the document's DSS."""

    def __init__(self, reader, report: ValidationReport) -> None:
        self.certs: list[x509.Certificate] = []
        self.ocsps: list[asn1_ocsp.OCSPResponse] = []
        self.crls: list[asn1_crl.CertificateList] = []
        if "/DSS" not in reader.root:
            return
        from pyhanko.pdf_utils.decode_limits import DecodePurpose
        from pyhanko.sign.validation.dss import DocumentSecurityStore

        try:
            dss = DocumentSecurityStore.read_dss(reader)
            self.certs = list(dss.load_certs())
            for ref in dss.ocsps:
                data = ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE)
                self.ocsps.append(asn1_ocsp.OCSPResponse.load(data))
            for ref in dss.crls:
                self.crls.append(asn1_crl.CertificateList.load(
                    ref.get_object().read_data(DecodePurpose.CRL)))
        except Exception as exc:
            report.warnings.append({"code": "DSS_UNREADABLE", "message": str(exc)})

    @property
    def has_revinfo(self) -> bool:
        return bool(self.ocsps or self.crls)


def _validation_context(verifier: Verifier, emb: _Embedded) -> ValidationContext:
    policy = verifier.policy
    cache = policy.revocation_cache
    kwargs: dict[str, Any] = {
        "trust_manager": verifier._trust_manager,
        "other_certs": [*verifier.bundle.intermediates, *emb.certs],
        "crls": [*(cache.crls if cache else ()), *emb.crls],
        "ocsps": [*(cache.ocsps if cache else ()), *emb.ocsps],
        "revocation_mode": policy.revocation_mode,
        "signature_validator": cms.SIGNATURE_VALIDATOR,
    }
    fetchers = verifier._get_fetchers()
    if fetchers is not None:
        kwargs.update(allow_fetching=True, fetchers=fetchers)
    elif policy.validation_time is not None:
        kwargs["moment"] = policy.validation_time
    return ValidationContext(**kwargs)


def _fill_common(rep: SignatureReport, status, verifier=None) -> None:
    rep.intact = bool(status.intact)
    rep.valid = bool(status.valid)
    rep.trusted = bool(status.trusted)
    rep.revoked = bool(status.revoked)
    rep.coverage = status.coverage.name if status.coverage is not None else None
    level = status.modification_level
    rep.modification_level = level.name if level is not None else None
    rep.docmdp_ok = status.docmdp_ok
    rep.md_algorithm = status.md_algorithm
    from signing.verify import _signer_info

    rep.signer = _signer_info(status.signing_cert)
    if verifier is not None:
        rep.signer.crl_urls = verifier.crl_urls_of(status.signing_cert)
    path = status.validation_path
    if path is not None:
        certs = list(path.iter_certs(include_root=True))
        rep.chain = [c.subject.human_friendly for c in reversed(certs)]
        rep.trust_anchor = certs[0].subject.human_friendly if certs else None
    else:
        rep.chain = [rep.signer.subject]


def _judge(rep: SignatureReport, status, docmdp: MDPPerm | None,
           revinfo: dict[str, str] | None = None) -> None:
    """Apply the verdict table of :mod:`signing.verify` (first failing row wins).

    ``revinfo``: closer sub-indications for paths that failed for lack of revocation data
    (:func:`signing.verify.revocation.missing_revinfo`)."""
    revinfo = revinfo or {}
    sub_trust = status.trust_problem_indic.name if status.trust_problem_indic else None
    sub_trust = revinfo.get("signer", sub_trust)

    def fail(reason: str, sub: str, verdict: Verdict = Verdict.INVALID,
             indication: Indication = Indication.TOTAL_FAILED) -> None:
        rep.judge(verdict, indication, sub, reason)

    level = status.modification_level
    annotations_ok = level == ModificationLevel.ANNOTATIONS and annotations_allowed(docmdp)
    if not rep.intact:
        fail("HASH_FAILURE", "HASH_FAILURE")
    elif not rep.valid:
        fail("SIG_CRYPTO_FAILURE", "SIG_CRYPTO_FAILURE")
    elif status.coverage not in _OK_COVERAGE:
        fail("COVERAGE", "FORMAT_FAILURE")
    elif level not in _ALWAYS_OK_MODS and not annotations_ok:
        fail("MODIFIED_AFTER_SIGNING", "FORMAT_FAILURE")
    elif status.docmdp_ok is False:
        fail("DOCMDP", "FORMAT_FAILURE")
    elif rep.revoked:
        sub = sub_trust or "REVOKED"
        ind = Indication.TOTAL_FAILED if sub == "REVOKED" else Indication.INDETERMINATE
        fail("REVOKED", sub, Verdict.INVALID, ind)
    elif sub_trust is not None or not rep.trusted:
        sub = sub_trust or "NO_CERTIFICATE_CHAIN_FOUND"
        reason = ("EXPIRED" if sub in _EXPIRED else "UNTRUSTED" if sub in _UNTRUSTED
                  else "REVOCATION_UNKNOWN" if sub in _REVINFO
                  else "WEAK_ALGORITHM" if sub.startswith("CRYPTO_CONSTRAINTS") else "GENERIC")
        fail(reason, sub, Verdict.INDETERMINATE, Indication.INDETERMINATE)
    elif rep.kind == "signature" and not _timestamp_ok(status):
        ts = status.timestamp_validity
        sub = ts.trust_problem_indic.name if ts.trust_problem_indic else "GENERIC"
        sub = revinfo.get("timestamp", sub)
        reason = "REVOCATION_UNKNOWN" if sub in _REVINFO else "TIMESTAMP"
        fail(reason, sub, Verdict.INDETERMINATE, Indication.INDETERMINATE)
    elif rep.kind == "signature" and not status.bottom_line:
        fail("GENERIC", "GENERIC", Verdict.INDETERMINATE, Indication.INDETERMINATE)
    else:
        rep.judge(Verdict.VALID, Indication.TOTAL_PASSED, None, "")
    if annotations_ok and rep.integrity_ok:
        rep.warn("ANNOTATIONS_ADDED", "annotations (comments) were added after signing")


def annotations_allowed(docmdp: MDPPerm | None) -> bool:
    """ISO 32000-2 §12.8.2.2.2: adding annotations is allowed under DocMDP P=3; with no DocMDP
    in force (approval signatures only) the gateway allows it too (with a warning). P=1/P=2
    forbid it. :attr:`signing.report.SignatureReport.integrity_ok` applies the same rule."""
    return docmdp is None or docmdp == MDPPerm.ANNOTATE


def docmdp_in_force(emb_sig, certification: MDPPerm | None) -> MDPPerm | None:
    """The strictest of the document's certification (``/Perms /DocMDP``) and the
    signature's own DocMDP or ``/Lock`` permission; ``None`` when there is none."""
    levels = [p for p in (emb_sig.docmdp_level, certification) if p is not None]
    return min(levels, key=lambda p: p.value) if levels else None


def _certification(reader, report: ValidationReport) -> MDPPerm | None:
    try:
        info = read_certification_data(reader)
    except Exception as exc:
        report.warnings.append({"code": "DOCMDP_UNREADABLE", "message": str(exc)})
        return MDPPerm.NO_CHANGES  # unreadable: assume the strictest
    return info.permission if info is not None else None


def _timestamp_ok(status) -> bool:
    ts = status.timestamp_validity
    return ts is None or bool(ts.intact and ts.valid and ts.trusted)


async def verify_all(verifier: Verifier, reader, report: ValidationReport,
                     repaired: bool = False) -> None:
    linearized = merge_linearized(reader)
    emb = _Embedded(reader, report)
    vc = _validation_context(verifier, emb)
    certification = _certification(reader, report)
    entries = []
    for name, sig_ref, field_ref in enumerate_sig_fields(reader, filled_status=True):
        sig_obj = sig_ref.get_object()
        subfilter = sig_obj.get("/SubFilter")
        subfilter = str(subfilter) if subfilter is not None else None
        kind = pdfsig.kind_of(subfilter)
        rep = SignatureReport(field=str(name), kind=kind, subfilter=subfilter)
        views: list = []
        if kind == "unsupported":
            rep.verdict, rep.reason, rep.sub_indication = (
                Verdict.INDETERMINATE, "UNSUPPORTED", "FORMAT_FAILURE")
            rep.error("UNSUPPORTED_SUBFILTER", f"unsupported /SubFilter {subfilter}")
        else:
            try:
                views = pdfsig.embedded_views(reader, field_ref, name, kind)
                rep.signed_revision = views[0].signed_revision
                if linearized and rep.signed_revision == 0:
                    rep.warn("LINEARIZED", "signed revision is a linearized file: its first-page "
                             "and main cross-reference sections read as one revision "
                             "(ISO 32000-2 Annex F)")
            except Exception as exc:
                rep.fail_format()
                rep.error("SIGNATURE_UNREADABLE", f"{type(exc).__name__}: {exc}")
        entries.append((rep, views))
    entries.sort(key=lambda e: e[0].signed_revision if e[0].signed_revision is not None else -1)
    ts_revisions = [r.signed_revision for r, _ in entries
                    if r.kind == "document_timestamp" and r.signed_revision is not None]
    for rep, views in entries:
        if len(views) == 1:
            await _validate_one(verifier, rep, views[0], vc, emb, ts_revisions, certification)
        elif views:
            rep = await _validate_signers(verifier, rep, views, vc, emb, ts_revisions,
                                          certification)
        report.signatures.append(rep)
    _judge_tail(reader, report)
    if repaired:
        _cap_repaired(report)


_EOF_MARK = re.compile(rb"startxref\s+(\d+)\s*%%EOF")
_HARMLESS_TAIL = re.compile(rb"(?:[\x00\t\n\f\r ]|%[^\r\n]*)*")


def unparsed_tail(reader) -> bytes | None:
    """The bytes after the ``%%EOF`` of the last revision pyHanko parsed (``None``: not found).

    A viewer repairs what a strict reader skips: an incremental update appended without its
    ``%%EOF`` is no revision to pyHanko (every signature then covers "its entire revision"
    and no diff analysis runs), yet Acrobat and pdf.js display it.
    """
    xrefs = reader.xrefs
    last = xrefs.total_revisions - 1
    startxref = xrefs.get_startxref_for_revision(last)
    stream = reader.stream
    stream.seek(xrefs.get_xref_container_info(last).end_location)
    after = stream.read()
    for m in _EOF_MARK.finditer(after):
        if int(m.group(1)) == startxref:
            return after[m.end():]
    return None


def _judge_tail(reader, report: ValidationReport) -> None:
    """PDF 32000-1 §7.5.5/§7.5.6: a file ends with the ``%%EOF`` of its last revision. Only
    white-space, NUL padding and comments may follow; anything else could be read by a viewer
    and is covered by no signature, so every signature of the file is invalid (FORMAT_FAILURE).
    """
    if not report.signatures:
        return
    if any(s.coverage == "ENTIRE_FILE" for s in report.signatures):
        return  # a signature covers every byte: nothing can follow its revision
    try:
        tail = unparsed_tail(reader)
    except Exception:  # an xref pyHanko cannot place: the end is treated as not found
        tail = None
    if tail is not None and _HARMLESS_TAIL.fullmatch(tail):
        if tail.strip(b"\x00\t\n\f\r "):
            report.warnings.append({"code": "TRAILING_COMMENT",
                                    "message": "comments after the last %%EOF"})
        return
    what = ("the end of the last revision cannot be found" if tail is None
            else f"{len(tail)} bytes after the last %%EOF form no revision")
    for rep in report.signatures:
        rep.error("TRAILING_DATA", f"{what}: a viewer may display them, no signature covers "
                  "them")
        if rep.verdict is not Verdict.INVALID:
            rep.fail_format("TRAILING_DATA")


def _cap_repaired(report: ValidationReport) -> None:
    """A file only a non-strict reader could repair: no signature of it is ``valid``."""
    for rep in report.signatures:
        if rep.verdict is Verdict.VALID:
            rep.judge(Verdict.INDETERMINATE, Indication.INDETERMINATE, "FORMAT_FAILURE",
                      "NONSTRICT_PARSE")


async def _validate_one(verifier, rep, emb_sig, vc, emb, ts_revisions,
                        certification: MDPPerm | None = None) -> None:
    try:
        if rep.kind == "document_timestamp":
            status = await async_validate_pdf_timestamp(
                emb_sig, vc, diff_policy=GATEWAY_DIFF_POLICY)
        elif rep.subfilter == pdfsig.SHA1_SUBFILTER:
            status = await pdfsig.validate_sha1(emb_sig, vc, GATEWAY_DIFF_POLICY)
        else:
            status = await async_validate_pdf_signature(
                emb_sig, vc, vc, diff_policy=GATEWAY_DIFF_POLICY)
    except Exception as exc:
        rep.fail_format()
        rep.error("VALIDATION_ERROR", f"{type(exc).__name__}: {exc}")
        return
    rep.status = status
    if verifier.policy.etsi_xml and rep.kind == "signature":
        rep.etsi_xml = await _etsi_xml(verifier, vc, emb_sig, rep)
    _fill_common(rep, status, verifier if rep.kind == "signature" else None)
    for code, message in getattr(status.diff_result, "tolerated", ()):
        rep.warn(code, message)  # what the difference policy accepted past stock pyHanko
    docmdp = docmdp_in_force(emb_sig, certification)
    rep.docmdp = docmdp.value if docmdp is not None else None
    _judge(rep, status, docmdp, await missing_revinfo(vc, status))
    cms.judge_cms(rep, emb_sig)
    if rep.kind == "document_timestamp":
        rep.timestamp_time = status.timestamp
        rep.timestamp_trusted = rep.trusted
        rep.pades_level = "DOC-TS"
        return
    rep.bottom_line = bool(status.bottom_line)
    rep.claimed_signing_time = status.signer_reported_dt
    ts = status.timestamp_validity
    if ts is not None:
        rep.timestamp_time = ts.timestamp
        rep.timestamp_trusted = bool(ts.intact and ts.valid and ts.trusted)
    level = "B-B"
    if ts is not None:
        level = "B-T"
        if emb.has_revinfo and covers(status.signing_cert, emb.ocsps, emb.crls):
            level = "B-LT"
            if any(r > rep.signed_revision for r in ts_revisions):
                level = "B-LTA"
    rep.pades_level = level
    if ts is None:
        rep.warn("NO_TIMESTAMP", "no signature timestamp: signing time is only claimed")
    if rep.md_algorithm in ("sha1", "md5"):
        rep.warn("WEAK_DIGEST", f"weak digest algorithm {rep.md_algorithm}")
    describe_revocation(verifier, rep, status.signing_cert, emb)


_SEVERITY = {Verdict.VALID: 0, Verdict.INDETERMINATE: 1, Verdict.INVALID: 2}


async def _validate_signers(verifier, rep, views, vc, emb, ts_revisions,
                            certification: MDPPerm | None) -> SignatureReport:
    """Several SignerInfos in one CMS (ETSI EN 319 142-1 §6.3: a PAdES baseline signature has
    exactly one): each is validated; the signature is as good as its worst SignerInfo."""
    parts = []
    for view in views:
        part = replace(rep, errors=[], warnings=[])
        await _validate_one(verifier, part, view, vc, emb, ts_revisions, certification)
        parts.append(part)
    merged = max(parts, key=lambda p: _SEVERITY[p.verdict])  # the first of the worst
    merged.intact = all(p.intact for p in parts)
    merged.valid = all(p.valid for p in parts)
    for part in parts:
        if part is not merged:
            merged.errors += [e for e in part.errors if e not in merged.errors]
            merged.warnings += [w for w in part.warnings if w not in merged.warnings]
    merged.warn("NOT_PADES_BASELINE", f"{len(parts)} SignerInfos in one CMS (ETSI EN 319 "
                "142-1 §6.3: exactly one); each was validated")
    return merged


async def _etsi_xml(verifier, vc, emb_sig, rep) -> str | None:
    """ETSI TS 119 102-2 XML from pyHanko's AdES basic validation (EN 319 102-1 §5.3)."""
    try:
        from pyhanko.sign.validation.ades import ades_basic_validation
        from pyhanko.sign.validation.policy_decl import SignatureValidationSpec
        from pyhanko.sign.validation.report.tools import generate_report
        from pyhanko_certvalidator.context import CertValidationPolicySpec

        spec = SignatureValidationSpec(cert_validation_policy=CertValidationPolicySpec(
            trust_manager=verifier._trust_manager, revinfo_policy=vc.revinfo_policy))
        result = await ades_basic_validation(
            emb_sig.signed_data, spec, raw_digest=emb_sig.compute_digest())
        return generate_report(emb_sig, result)
    except Exception as exc:
        rep.warn("ETSI_REPORT_FAILED", f"{type(exc).__name__}: {exc}")
        return None

"""Verification of every signature and document timestamp of a PDF (PAdES, ETSI EN 319 102-1).

Route per signature by ``/SubFilter`` (:mod:`signing.verify.pdfsig`): ``ETSI.RFC3161`` is a
document timestamp (validated as a time-stamp token over its byte range; a ``/Type`` missing or
``/Sig`` instead of ``/DocTimeStamp`` is the warning ``DOCTIMESTAMP_TYPE``, ISO 32000-2 Table
255); ``ETSI.CAdES.detached`` / ``adbe.pkcs7.detached`` are CMS signatures; the legacy
``adbe.pkcs7.sha1`` encapsulates SHA-1 of the byte range (``WEAK_DIGEST``, at best
indeterminate, like any SHA-1 digest); anything else is reported as unsupported
(indeterminate). A CMS with several SignerInfos is validated per SignerInfo, worst verdict wins
(``NOT_PADES_BASELINE``). CMS rules
(:mod:`signing.verify.cms`): signed attributes are verified over their DER (RFC 5652 §5.4),
BSI TR-03111 plain ECDSA is verified. An encrypted file opens only with an empty user password
(``ENCRYPTED_EMPTY_PASSWORD``); otherwise :class:`PdfEncryptedError`.

Verdict of one signature (no single pyHanko field is the verdict; checked in this order):

============================================  ==========  =============================
check failing                                 verdict     indication / sub-indication
============================================  ==========  =============================
CMS cannot be parsed / wrong object type      invalid     TOTAL_FAILED / FORMAT_FAILURE
digest of the byte range differs (``intact``) invalid     TOTAL_FAILED / HASH_FAILURE
signature value wrong (``valid``; over DER)   invalid     TOTAL_FAILED / SIG_CRYPTO_FAILURE
digest/signature algorithm pair not allowed   invalid     TOTAL_FAILED / SIG_CRYPTO_FAILURE
coverage not ENTIRE_FILE / ENTIRE_REVISION    invalid     TOTAL_FAILED / FORMAT_FAILURE
later change not allowed (see below)          invalid     TOTAL_FAILED / FORMAT_FAILURE
DocMDP permission exceeded (``docmdp_ok``)    invalid     TOTAL_FAILED / FORMAT_FAILURE
signer (or CA) revoked                        invalid     as computed (REVOKED[_NO_POE])
bytes after the last ``%%EOF`` (not comments) invalid     TOTAL_FAILED / FORMAT_FAILURE
no usable revocation data (hard-fail)         indeter.    INDETERMINATE / TRY_LATER
no path to a trust anchor, expired, …         indeter.    INDETERMINATE / as computed
signature timestamp not valid / not trusted   indeter.    INDETERMINATE / TIMESTAMP…
pyHanko ``bottom_line`` False (safety net)    indeter.    INDETERMINATE / GENERIC
weak algorithm now (SHA-1, ``pkcs7.sha1``)   indeter.    INDETERMINATE / CRYPTO_CONSTR…
============================================  ==========  =============================

Allowed changes after a signature (modification level): NONE, LTA_UPDATES (DSS, document
timestamps), FORM_FILLING (form fields, further signatures); ANNOTATIONS (comments added,
:mod:`signing.verify.diff.annotations`) when the document is certified with DocMDP P=3 or has
no DocMDP at all (warning ``ANNOTATIONS_ADDED``), never under P=1/P=2. An appearance that
changes while its field's value does not is no form filling (:mod:`signing.verify.diff.forms`).
Format-level failures (modifications, coverage) are
FORMAT_FAILURE like the "format checking" building block of EN 319 102-1 §5.2.2.

Revocation (policy and sources: :mod:`signing.verify.revocation`): the revocation data embedded
in the PDF (DSS) and a :class:`signing.trust.RevocationCache` are always used; online
(``offline=False``) OCSP/CRL are also fetched through the policy's aiohttp session and cached
for the lifetime of the :class:`Verifier`. Each signature reports its ``revocation.source``
(``ocsp``, ``crl``, ``embedded``, ``cache`` or ``none``).

Weak algorithms at validation time (SHA-1, MD5, RSA < 2048: pyHanko's algorithm policy; the SHA-1
binding of ``adbe.pkcs7.sha1``) are not integrity failures (``integrity_ok`` holds): warning
``WEAK_DIGEST``, verdict INDETERMINATE / CRYPTO_CONSTRAINTS_FAILURE, reason
``WEAK_ALGORITHM``. ``integrity_ok`` of a report needs at least one signature (document
timestamps alone prove no approval).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import x509

from signing import pdfguard
from signing.errors import PdfEncryptedError, PdfTooLargeError, PdfUnreadableError
from signing.report import Role, ValidationReport
from signing.trust import RevocationCache, TrustBundle, load_trust_bundle
from signing.verify import fastpath, xrefgen
from signing.verify.roles import RoleRule, classify_certificate

__all__ = [
    "RoleRule",
    "VerificationPolicy",
    "Verifier",
    "async_verify_pdf",
    "verify_pdf",
]

for _name in ("pyhanko.sign.validation", "pyhanko_certvalidator", "pyhanko.sign.diff_analysis"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)  # pyHanko logs tracebacks for normal cases

DEFAULT_MAX_PDF_BYTES = 512 * 1024 * 1024


@dataclass
class VerificationPolicy:
    """What to trust and how to check revocation.

    ``revocation_mode``: ``soft-fail`` (missing revocation data is a warning; the library's
    default, kept for callers that check revocation elsewhere) or ``hard-fail`` (it makes the
    signature INDETERMINATE/TRY_LATER; the gateway's default, ``signing.revocation_mode``).
    ``session`` is an ``aiohttp.ClientSession`` for
    online checks (one is created when omitted and ``offline`` is False).
    ``allow_nonstrict``: read hybrid-reference files (a known producer quirk, warning
    ``HYBRID_XREF``) non-strictly, and when strict parsing fails, retry non-strict and report
    it; such a damaged file is at best ``indeterminate`` (reason ``NONSTRICT_PARSE``): what a
    repaired file means depends on the reader that repaired it, so no signature of it is
    declared valid.
    """

    trust_roots: Sequence[x509.Certificate] = ()
    trust_paths: Sequence[str | Path] = ()
    intermediates: Sequence[x509.Certificate] = ()
    offline: bool = False
    revocation_mode: str = "soft-fail"
    session: Any = None
    revocation_cache: RevocationCache | None = None
    allow_nonstrict: bool = True
    role_rule: RoleRule = field(default_factory=RoleRule)
    validation_time: datetime | None = None
    max_pdf_bytes: int = DEFAULT_MAX_PDF_BYTES
    fast_hex: bool = True
    etsi_xml: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "offline": self.offline,
            "revocation_mode": self.revocation_mode,
            "allow_nonstrict": self.allow_nonstrict,
        }


def _signer_info(cert: x509.Certificate):
    from signing.report import SignerInfo

    subject = cert.subject.native
    org = subject.get("organization_name")
    if isinstance(org, list):
        org = org[0] if org else None
    return SignerInfo(
        common_name=subject.get("common_name"),
        organization=org,
        serial=format(cert.serial_number, "x"),
        issuer=cert.issuer.human_friendly,
        subject=cert.subject.human_friendly,
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
        sha256=cert.sha256.hex(),
    )


class Verifier:
    """Reusable verifier: trust material, role rule and revocation caches are built once and
    shared by every document it checks (use one per process / worker)."""

    def __init__(self, policy: VerificationPolicy | None = None) -> None:
        from pyhanko_certvalidator.registry import SimpleTrustManager

        self.policy = policy or VerificationPolicy()
        if self.policy.revocation_mode not in ("soft-fail", "hard-fail"):
            raise ValueError("revocation_mode must be 'soft-fail' or 'hard-fail'")
        self.bundle: TrustBundle = load_trust_bundle(
            self.policy.trust_paths,
            anchors=self.policy.trust_roots,
            intermediates=self.policy.intermediates,
        )
        self._trust_manager = SimpleTrustManager.build(trust_roots=self.bundle.anchors)
        self._fetchers = None
        self._backend = None  # the fetchers' backend: it owns their HTTP session
        self._crl_urls: dict[bytes, tuple[str, ...]] = {}
        self._loops = threading.local()
        if self.policy.fast_hex:
            fastpath.install()

    # -- plumbing ---------------------------------------------------------------------------
    def crl_urls_of(self, cert: x509.Certificate) -> tuple[str, ...]:
        """The CRL distribution points of a signer's certificate when a CA of the bundle issued
        it (the refresher may then keep that CA's CRL fresh); nothing otherwise. Memoised per
        certificate: the same signers arrive all day."""
        key = cert.sha256
        urls = self._crl_urls.get(key)
        if urls is None:
            from signing.trust import crl_distribution_urls, issued_by_bundle

            urls = tuple(crl_distribution_urls([cert])) if issued_by_bundle(
                cert, self.bundle) else ()
            if len(self._crl_urls) >= 4096:
                self._crl_urls.clear()
            self._crl_urls[key] = urls
        return urls

    def _get_fetchers(self):
        if self.policy.offline:
            return None
        if self._fetchers is None:
            from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

            self._backend = AIOHttpFetcherBackend(self.policy.session)
            self._fetchers = self._backend.get_fetchers()
        return self._fetchers

    async def aclose(self) -> None:
        """Close the HTTP session the fetchers opened (a caller's own ``policy.session`` is
        left to the caller: the backend closes only the session it created)."""
        backend, self._backend, self._fetchers = self._backend, None, None
        if backend is not None:
            await backend.close()

    def _read(self, pdf: bytes, report: ValidationReport):
        from pyhanko.pdf_utils import misc
        from pyhanko.pdf_utils.decode_limits import DecodeLimits
        from pyhanko.pdf_utils.reader import PdfFileReader

        if b"%PDF-" not in pdf[:1024]:
            raise PdfUnreadableError("input is not a PDF (no %PDF- header)")
        pdfguard.check_declared_objects(pdf)  # before a lenient reader believes /Size
        limits = DecodeLimits.for_untrusted_input()
        try:
            reader = PdfFileReader(io.BytesIO(pdf), strict=True, decode_limits=limits)
            reader.root  # noqa: B018 - force the trailer/catalog to parse
        except (misc.PdfError, ValueError, KeyError, TypeError, IndexError,
                RecursionError, AttributeError) as strict_exc:
            if not self.policy.allow_nonstrict:
                raise PdfUnreadableError(f"cannot parse PDF: {strict_exc}") from strict_exc
            quirk = self._read_quirk(pdf, limits, strict_exc, report)
            if quirk is not None:
                reader = quirk
            else:
                try:
                    reader = PdfFileReader(io.BytesIO(pdf), strict=False, decode_limits=limits)
                    reader.root  # noqa: B018
                except Exception as exc:
                    raise PdfUnreadableError(f"cannot parse PDF: {strict_exc}") from exc
                report.warnings.append({"code": "NONSTRICT_PARSE",
                                        "message": f"parsed non-strictly: {strict_exc}"})
            repaired = quirk is None
        else:
            repaired = False
            if reader.xrefs.hybrid_xrefs_present and self.policy.allow_nonstrict:
                # Hybrid-reference files (PDF 32000-1 §7.5.8.4; Microsoft Office writes them)
                # are well-formed, but pyHanko validates their signatures only from a
                # non-strict reader: the cross-references were read strictly, the rest is read
                # leniently. A known producer quirk: reported, verdict not capped.
                reader.strict = False
                report.warnings.append({
                    "code": "HYBRID_XREF",
                    "message": "hybrid cross-reference file (a producer quirk): read non-strictly"})
        if reader.encrypted:
            self._decrypt(reader, report)
        return reader, repaired

    @staticmethod
    def _read_quirk(pdf: bytes, limits, strict_exc: Exception, report: ValidationReport):
        """A strict reader for poppler's new objects at generation 1 (ISO 32000-2 §7.5.4,
        :mod:`signing.verify.xrefgen`): a known producer quirk, reported, verdict not capped;
        ``None`` for any other strict failure."""
        if xrefgen.ORPHANED_GENERATION not in str(strict_exc):
            return None
        found = xrefgen.read_new_objects(pdf, limits)
        if found is None:
            return None
        reader, count = found
        try:
            reader.root  # noqa: B018 - the catalog must parse strictly too
        except Exception:
            return None
        report.warnings.append({
            "code": "NEW_OBJECT_GENERATION",
            "message": f"{count} new object(s) created at a generation above 0 (ISO 32000-2 "
                       "§7.5.4; a producer quirk): tolerated"})
        return reader

    @staticmethod
    def _decrypt(reader, report: ValidationReport) -> None:
        """ISO 32000-2 §7.6.4.3.3: a file whose user password is empty opens for any reader
        (its signatures are judged as usual, reported ``ENCRYPTED_EMPTY_PASSWORD``); a file
        that needs a password, or another security handler, is :class:`PdfEncryptedError`."""
        from pyhanko.pdf_utils.crypt import AuthStatus, StandardSecurityHandler

        if not isinstance(reader.security_handler, StandardSecurityHandler):
            raise PdfEncryptedError("the PDF is encrypted for certificate holders")
        try:
            result = reader.decrypt(b"")
        except Exception as exc:
            raise PdfEncryptedError(f"the PDF is encrypted: {exc}") from exc
        if result.status is AuthStatus.FAILED:
            raise PdfEncryptedError("the PDF is encrypted with a password")
        report.warnings.append({"code": "ENCRYPTED_EMPTY_PASSWORD",
                                "message": "encrypted with an empty user password; opened"})

    # -- entry points ---------------------------------------------------------------------
    def verify(self, pdf: bytes) -> ValidationReport:
        """Synchronous verification (for worker processes). Do not call from a running loop.

        Offline, each thread reuses one private event loop (``asyncio.run`` would build and
        tear down a loop per document: ~0.2 ms); online, a fresh loop per call owns the
        fetchers' HTTP session."""
        if self.policy.offline:
            return self._thread_loop().run_until_complete(self.averify(pdf))
        return asyncio.run(self._averify_and_close(pdf))

    def _thread_loop(self) -> asyncio.AbstractEventLoop:
        loop = getattr(self._loops, "loop", None)
        if loop is None:
            loop = self._loops.loop = asyncio.new_event_loop()
            weakref.finalize(self, loop.close)
        return loop

    async def _averify_and_close(self, pdf: bytes) -> ValidationReport:
        try:
            return await self.averify(pdf)
        finally:
            await self.aclose()  # the fetchers are bound to the loop that is closing

    async def averify(self, pdf: bytes) -> ValidationReport:
        """Verify ``pdf``; raises :class:`PdfUnreadableError` / :class:`PdfEncryptedError` /
        :class:`PdfTooLargeError` for input that cannot be judged at all."""
        from signing.verify import engine

        if len(pdf) > self.policy.max_pdf_bytes:
            raise PdfTooLargeError(f"PDF of {len(pdf)} bytes exceeds the limit")
        report = ValidationReport(
            sha256=hashlib.sha256(pdf).hexdigest(),
            size=len(pdf),
            validation_time=self.policy.validation_time or datetime.now(UTC),
            policy=self.policy.describe(),
        )
        reader, repaired = self._read(pdf, report)
        try:
            await engine.verify_all(self, reader, report, repaired=repaired)
        except (PdfUnreadableError, PdfEncryptedError):
            raise
        except Exception as exc:
            from pyhanko.pdf_utils import misc

            if isinstance(exc, misc.PdfError | RecursionError):
                raise PdfUnreadableError(f"cannot read PDF structure: {exc}") from exc
            raise
        self._assign_roles(report)
        return report

    def _assign_roles(self, report: ValidationReport) -> None:
        """Certificate heuristic first, then signing order (first = competent person)."""
        sigs = [s for s in report.signatures if s.kind == "signature"]
        for idx, sig in enumerate(sigs):
            role = None
            if sig.status is not None:
                role = classify_certificate(sig.status.signing_cert, self.policy.role_rule)
            if role is None:
                role = Role.COMPETENT_PERSON if idx == 0 else Role.AGENCY
            sig.role = role
        for sig in report.signatures:
            if sig.kind == "document_timestamp":
                sig.role = Role.DOCUMENT_TIMESTAMP
        roles = [s.role for s in sigs]
        if Role.AGENCY in roles and Role.COMPETENT_PERSON in roles[roles.index(Role.AGENCY):]:
            # Decree 30/2020 Appendix I: the clerk applies the agency signature only after the
            # competent person signed. Both signatures may still be valid: a warning, not a
            # verdict.
            report.warnings.append({
                "code": "DECREE30_SIGNING_ORDER",
                "message": "the agency signed before the competent person (Decree 30: the "
                           "competent person signs first, then the agency)"})


def verify_pdf(pdf: bytes, policy: VerificationPolicy | None = None) -> ValidationReport:
    """Verify every signature and document timestamp of ``pdf`` (synchronous)."""
    return Verifier(policy).verify(pdf)


async def async_verify_pdf(
    pdf: bytes, policy: VerificationPolicy | None = None
) -> ValidationReport:
    """Asynchronous :func:`verify_pdf` (CPU-bound: prefer a worker pool in a server)."""
    verifier = Verifier(policy)
    try:
        return await verifier.averify(pdf)
    finally:
        await verifier.aclose()

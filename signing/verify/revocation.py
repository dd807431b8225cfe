"""Revocation in a signature's verdict (ETSI EN 319 102-1 §5.2.6 X.509 validation, RFC 5280 §6.3).

Sources of revocation data, all used together: the PDF's own DSS (embedded LTV data, PAdES
B-LT/B-LTA), the local :class:`signing.trust.RevocationCache` (refreshed in the background by
the gateway from its CAs' CRL distribution points; usable offline), and, when online, the CAs'
OCSP responders and CRL distribution points. ``revocation.source`` of each signature names the
ones that spoke about its signer (``ocsp``, ``crl``, ``embedded``, ``cache`` or ``none``).

Policy (``VerificationPolicy.revocation_mode``):

* ``hard-fail`` (the gateway's default, ``signing.revocation_mode``): every certificate of the
  path that declares a CRL distribution point or an OCSP responder needs usable revocation
  data, fresh at the validation time. Without it the signature is INDETERMINATE / TRY_LATER
  (reason ``REVOCATION_UNKNOWN``): a later check, with newer data, may decide.
* ``soft-fail``: missing data is a warning (``REVOCATION_NOT_CHECKED``) and the signature can be
  valid — a revoked signer is then judged valid whenever the responders are unreachable.

In both modes data that says *revoked* makes the verdict invalid (reason ``REVOKED``). The
sub-indication is the one of EN 319 102-1 as computed: ``REVOKED_NO_POE`` (INDETERMINATE) when
nothing proves the signature was made after the revocation — a signature timestamp only proves
it existed *before* the time it names — and ``REVOKED`` (TOTAL_FAILED) otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asn1crypto import x509

if TYPE_CHECKING:
    from signing.report import SignatureReport
    from signing.verify import Verifier

__all__ = ["covers", "describe_revocation", "missing_revinfo"]

#: pyHanko's sub-indication for every path failure it has no closer name for, including a
#: path that fails for lack of revocation data (``InsufficientRevinfoError``).
_GENERAL = "CERTIFICATE_CHAIN_GENERAL_FAILURE"


def covers(cert: x509.Certificate, ocsps, crls) -> bool:
    """Does this revocation data speak about ``cert``? (OCSP serial, or CRL from its issuer)"""
    serial = cert.serial_number
    for resp in ocsps:
        try:
            tbs = resp["response_bytes"]["response"].parsed["tbs_response_data"]
            for single in tbs["responses"]:
                if single["cert_id"]["serial_number"].native == serial:
                    return True
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
    issuer = cert.issuer
    return any(c["tbs_cert_list"]["issuer"] == issuer for c in crls)


async def _lacks_revinfo(vc, cert: x509.Certificate | None) -> bool:
    """Validate ``cert``'s path again: does it fail for lack of usable revocation data?"""
    if cert is None:
        return False
    from pyhanko_certvalidator import CertificateValidator
    from pyhanko_certvalidator.errors import InsufficientRevinfoError

    try:
        await CertificateValidator(cert, validation_context=vc).async_validate_path()
    except InsufficientRevinfoError:
        return True
    except Exception:  # any other failure keeps pyHanko's sub-indication
        return False
    return False


async def missing_revinfo(vc, status) -> dict[str, str]:
    """EN 319 102-1 sub-indications pyHanko reports as a general chain failure when the path
    of the signer (key ``signer``) or of the signature timestamp's TSA (key ``timestamp``)
    fails for lack of usable revocation data: ``TRY_LATER``. Only failing paths are checked
    again, so valid signatures cost nothing more."""
    found: dict[str, str] = {}
    indic = status.trust_problem_indic
    if indic is not None and indic.name == _GENERAL and \
            await _lacks_revinfo(vc, status.signing_cert):
        found["signer"] = "TRY_LATER"
    ts = getattr(status, "timestamp_validity", None)
    if ts is not None and ts.trust_problem_indic is not None and \
            ts.trust_problem_indic.name == _GENERAL and \
            await _lacks_revinfo(vc, ts.signing_cert):
        found["timestamp"] = "TRY_LATER"
    return found


def describe_revocation(verifier: Verifier, rep: SignatureReport, cert, emb: Any) -> None:
    """Fill ``rep.revocation``: status, the sources that spoke about ``cert``, the mode."""
    policy = verifier.policy
    sources = []
    fetchers = verifier._fetchers
    if fetchers is not None:
        for name, get in (("ocsp", fetchers.ocsp_fetcher.fetched_responses_for_cert),
                          ("crl", fetchers.crl_fetcher.fetched_crls_for_cert)):
            try:
                if list(get(cert)):
                    sources.append(name)
            except KeyError:  # nothing fetched for this certificate
                pass
    if covers(cert, emb.ocsps, emb.crls):
        sources.append("embedded")
    cache = policy.revocation_cache
    if cache is not None and covers(cert, cache.ocsps, cache.crls):
        sources.append("cache")
    status = "revoked" if rep.revoked else ("good" if sources and rep.trusted else "unknown")
    rep.revocation = {
        "status": status,
        "source": sources[0] if sources else "none",
        "sources": sources,
        "online": not policy.offline,
        "mode": policy.revocation_mode,
    }
    details = getattr(rep.status, "revocation_details", None)
    if details is not None:
        rep.revocation["revoked_at"] = details.revocation_date.isoformat()
        rep.revocation["reason"] = details.revocation_reason.native
    if policy.offline and sources:
        rep.warn("OFFLINE_REVOCATION",
                 f"revocation checked offline from {rep.revocation['source']} data")
    if not sources and not rep.revoked and rep.trusted:
        rep.warn("REVOCATION_NOT_CHECKED", "no revocation data was available (soft-fail)")

"""Trust bundles and cached revocation data.

Rules (ETSI EN 319 102-1 §5.2.6, X.509 path validation): a signature is trusted only when a
certification path from the signer's certificate reaches a configured **trust anchor**. The
gateway trusts nothing by default: an operator installs the anchors.

Documented defaults an operator installs (files are not shipped with the code; check the
fingerprint of what you install):

* Government special-use CA (Ban Cơ yếu Chính phủ):
  ``CN=RootCA chuyên dùng Chính phủ G2, O=Ban Cơ yếu Chính phủ, C=VN``
  (SHA-256 :data:`GOV_ROOT_G2_SHA256`), issuing CA ``CN=CA phục vụ các cơ quan Nhà nước G2``.
* Vietnam National Root CA (public CAs such as VNPT-CA, Viettel-CA chain to it).

PEM bundles and folders are loaded by :func:`load_trust_bundle`: self-signed certificates become
anchors, the others intermediates (PDFs often embed only the signer's certificate).

Cached revocation data (:class:`RevocationCache`) lets validation work where the CAs' responders
cannot be reached (government CRL/OCSP are often on the government network only). A CRL enters
the cache only through :func:`check_crl`: RFC 5280 §6.3.3 — its signature verifies with the key
of a configured CA whose subject is the CRL's issuer (and whose key identifier matches the CRL's
authority key identifier, key usage ``cRLSign`` when declared), it is not dated in the future,
and it is not older than the CRL already cached for the same issuer and scope (no rollback to a
list from before a revocation). A newer CRL replaces the older one; a failed fetch keeps it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pem, x509
from cryptography.exceptions import InvalidSignature

from signing.errors import SigningError, TrustConfigError

__all__ = [
    "DEFAULT_TRUST_DIRS",
    "GOV_ROOT_G2_SHA256",
    "CrlRejected",
    "RevocationCache",
    "TrustBundle",
    "check_crl",
    "crl_distribution_urls",
    "load_certificates",
    "load_trust_bundle",
]

log = logging.getLogger(__name__)

#: SHA-256 of the DER of ``RootCA chuyên dùng Chính phủ G2`` (Ban Cơ yếu Chính phủ).
GOV_ROOT_G2_SHA256 = "f04ba4b459a7c9a1b971ad9b1cb833e695a80c79aea63b174b66a70edfe2fdb8"
#: Where an operator installs trust anchors and intermediates (PEM/DER files).
DEFAULT_TRUST_DIRS = (Path("/etc/edoc-gateway/trust"),)
_CERT_SUFFIXES = {".pem", ".crt", ".cer", ".der"}
_MAX_TRUST_FILE = 16 * 1024 * 1024


def _certs_from_bytes(data: bytes, origin: str) -> list[x509.Certificate]:
    try:
        if pem.detect(data):
            return [
                x509.Certificate.load(der)
                for kind, _hdr, der in pem.unarmor(data, multiple=True)
                if kind in ("CERTIFICATE", "TRUSTED CERTIFICATE")
            ]
        cert = x509.Certificate.load(data)
        cert.native  # noqa: B018 - force a full parse so that garbage fails here
        return [cert]
    except (ValueError, TypeError) as exc:
        raise TrustConfigError(f"cannot read certificates from {origin}: {exc}") from exc


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """Certificates of a PEM (one or many) or DER file, or of every such file in a folder."""
    path = Path(path)
    if path.is_dir():
        out: list[x509.Certificate] = []
        for child in sorted(path.iterdir()):
            if child.is_file() and child.suffix.lower() in _CERT_SUFFIXES:
                out.extend(load_certificates(child))
        return out
    try:
        if path.stat().st_size > _MAX_TRUST_FILE:
            raise TrustConfigError(f"trust file too large: {path}")
        return _certs_from_bytes(path.read_bytes(), str(path))
    except OSError as exc:
        raise TrustConfigError(f"cannot read trust file {path}: {exc}") from exc


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.self_signed in ("yes", "maybe")


@dataclass
class TrustBundle:
    """Trust anchors plus intermediates used to complete chains (never trusted by themselves)."""

    anchors: list[x509.Certificate] = field(default_factory=list)
    intermediates: list[x509.Certificate] = field(default_factory=list)

    def extend(self, certs: Iterable[x509.Certificate], *, as_anchors: bool | None = None) -> None:
        """Add certificates; ``as_anchors=None`` classifies self-signed ones as anchors."""
        seen = {c.sha256 for c in self.anchors} | {c.sha256 for c in self.intermediates}
        for cert in certs:
            if cert.sha256 in seen:
                continue
            seen.add(cert.sha256)
            anchor = _self_signed(cert) if as_anchors is None else as_anchors
            (self.anchors if anchor else self.intermediates).append(cert)

    def fingerprints(self) -> list[str]:
        return [c.sha256.hex() for c in self.anchors]


def load_trust_bundle(
    paths: Sequence[str | Path] = (),
    *,
    anchors: Iterable[x509.Certificate] = (),
    intermediates: Iterable[x509.Certificate] = (),
) -> TrustBundle:
    """Build a :class:`TrustBundle` from files/folders and certificate objects."""
    bundle = TrustBundle()
    bundle.extend(anchors, as_anchors=True)
    bundle.extend(intermediates, as_anchors=False)
    for path in paths:
        bundle.extend(load_certificates(path))
    return bundle



class CrlRejected(SigningError):
    """A CRL that must not enter the cache. Codes: ``CRL_UNREADABLE``, ``CRL_ISSUER_UNKNOWN``,
    ``CRL_SIGNATURE_INVALID``, ``CRL_NOT_YET_VALID``, ``CRL_NOT_NEWER``."""

    code = "CRL_REJECTED"


#: Clock skew tolerated on a CRL's ``thisUpdate``.
CRL_CLOCK_SKEW = timedelta(minutes=5)


def crl_distribution_urls(certs: Iterable[x509.Certificate]) -> list[str]:
    """HTTP(S) URLs of the CRL distribution points of ``certs`` (RFC 5280 §4.2.1.13), in order,
    without duplicates (LDAP and other schemes are skipped: the gateway fetches over HTTP)."""
    urls: list[str] = []
    for cert in certs:
        for url in (u for dp in cert.crl_distribution_points for u in _dp_urls(dp)):
            if url.lower().startswith(("http://", "https://")) and url not in urls:
                urls.append(url)
    return urls


def issued_by_bundle(cert: x509.Certificate, bundle: TrustBundle) -> bool:
    """Whether a CA of ``bundle`` signed ``cert`` (issuer name and signature, RFC 5280 §6.1.3):
    only such a certificate's CRL distribution points may be fetched — a URL from any other
    certificate is chosen by whoever made it (a request to it would be the sender's, not the
    CA's)."""
    from cryptography import x509 as cx509

    try:
        subject = cx509.load_der_x509_certificate(cert.dump())
        for ca in (*bundle.intermediates, *bundle.anchors):
            if ca.subject != cert.issuer:
                continue
            try:
                subject.verify_directly_issued_by(cx509.load_der_x509_certificate(ca.dump()))
                return True
            except (ValueError, TypeError, InvalidSignature):
                continue
    except (ValueError, TypeError):
        return False
    return False


def _dp_urls(dp) -> list[str]:
    try:
        name = dp["distribution_point"]
        if name.name != "full_name":
            return []
        return [g.native for g in name.chosen if g.name == "uniform_resource_identifier"]
    except (KeyError, ValueError, TypeError, AttributeError):
        return []


def _crl_scope(crl: asn1_crl.CertificateList) -> tuple:
    """Which certificates a CRL speaks for: its issuer and issuing distribution point."""
    idp = crl.issuing_distribution_point_value
    delta = crl.delta_crl_indicator_value is not None
    return (crl.issuer.dump(), idp.dump() if idp is not None else b"", delta)


def _crl_order(crl: asn1_crl.CertificateList) -> tuple:
    number = crl.crl_number_value
    tbs = crl["tbs_cert_list"]
    return (tbs["this_update"].native, number.native if number is not None else -1)


def check_crl(der: bytes, issuers: Iterable[x509.Certificate], *,
              now: datetime | None = None) -> tuple[asn1_crl.CertificateList, x509.Certificate]:
    """Parse ``der`` and verify it was signed by one of ``issuers`` (RFC 5280 §6.3.3 (f), (g));
    returns the CRL and its issuer or raises :class:`CrlRejected`."""
    from cryptography import x509 as cx509
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        crl = asn1_crl.CertificateList.load(der)
        crl.native  # noqa: B018 - full parse: garbage fails here, not in the verifier
        signed = cx509.load_der_x509_crl(der)
    except (ValueError, TypeError) as exc:
        raise CrlRejected(f"not a DER CRL: {exc}", code="CRL_UNREADABLE") from None
    aki = crl.authority_key_identifier
    candidates = [c for c in issuers if c.subject == crl.issuer
                  and (aki is None or c.key_identifier in (None, aki))]
    if not candidates:
        raise CrlRejected(f"CRL issuer {crl.issuer.human_friendly} is no configured CA",
                          code="CRL_ISSUER_UNKNOWN")
    for issuer in candidates:
        usage = issuer.key_usage_value
        if usage is not None and "crl_sign" not in usage.native:
            continue
        try:
            key = cx509.load_der_x509_certificate(issuer.dump()).public_key()
            if signed.is_signature_valid(key):  # type: ignore[arg-type]
                break
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
    else:
        raise CrlRejected(f"CRL of {crl.issuer.human_friendly}: signature does not verify "
                          "with the CA's key", code="CRL_SIGNATURE_INVALID")
    this_update = crl["tbs_cert_list"]["this_update"].native
    if this_update > (now or datetime.now(UTC)) + CRL_CLOCK_SKEW:
        raise CrlRejected(f"CRL of {crl.issuer.human_friendly} is dated in the future "
                          f"({this_update.isoformat()})", code="CRL_NOT_YET_VALID")
    return crl, issuer


@dataclass(frozen=True)
class CachedCrl:
    """What an operator sees of one cached CRL (metrics, console)."""

    name: str
    issuer: str
    this_update: datetime
    next_update: datetime | None


#: Parsed DER by file name (= SHA-256 of the content), per process: a worker that receives a
#: new cache state parses only the files it has not seen.
_PARSED: dict[str, Any] = {}
_PARSED_MAX = 256
#: Superseded CRL files are kept this long (as ``*.old``): a worker may still load a state
#: pickled just before the replacement.
_OLD_GRACE = 600.0


class RevocationCache:
    """CRLs and OCSP responses kept for offline validation: filled by the gateway's CRL
    refresher, or copied in by an operator (e.g. fetched on the government network). Stored as
    DER files ``*.crl`` / ``*.ocsp`` in a folder (or in memory when ``folder`` is None); names
    are the SHA-256 of the content, so adding is idempotent.

    Updates replace the maps (copy on write), so a thread pickling the cache for a worker never
    sees one half-changed. Pickled with a folder, the cache carries only its file names; the
    receiving process loads the files on first use (once per name and process), so shipping a
    policy to the pool's workers stays cheap and the state (the names) is part of the
    verifier key (:func:`signing.pool.policy_key`).
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._crls: dict[str, Any] = {}
        self._ocsps: dict[str, Any] = {}
        self._lock = threading.Lock()
        if self.folder is not None and self.folder.is_dir():
            self.reload()

    # -- persistence ---------------------------------------------------------------------
    def _persist(self, name: str, data: bytes) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / name
        if not target.exists():
            tmp = target.with_name(f"{name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)

    def _retire(self, name: str) -> None:
        """Move a superseded file aside (``*.old``) and delete ones retired long ago."""
        if self.folder is None:
            return
        try:
            (self.folder / name).replace(self.folder / f"{name}.old")
        except OSError:
            pass
        cutoff = time.time() - _OLD_GRACE
        for old in self.folder.glob("*.old"):
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass

    def reload(self) -> bool:
        """Take in files added to (or removed from) the folder by an operator or another
        gateway process; unreadable files are skipped with a warning. True when it changed."""
        if self.folder is None or not self.folder.is_dir():
            return False
        with self._lock:
            found: dict[str, dict[str, Any]] = {".crl": {}, ".ocsp": {}}
            for child in sorted(self.folder.iterdir()):
                if child.suffix not in found:
                    continue
                maps = self._crls if child.suffix == ".crl" else self._ocsps
                key = child.stem
                if key in maps:
                    found[child.suffix][key] = maps[key]
                    continue
                try:
                    der = child.read_bytes()
                    parsed = _load(child.suffix, der)
                except (OSError, ValueError, TypeError) as exc:
                    log.warning("unreadable revocation file skipped",
                                extra={"file": str(child), "error": str(exc)})
                    continue
                found[child.suffix][hashlib.sha256(der).hexdigest()] = parsed
            changed = (found[".crl"].keys() != self._crls.keys()
                       or found[".ocsp"].keys() != self._ocsps.keys())
            self._crls, self._ocsps = found[".crl"], found[".ocsp"]
        return changed

    # -- updates -------------------------------------------------------------------------
    def add_crl(self, data: bytes | asn1_crl.CertificateList, *, persist: bool = True) -> None:
        """Add a CRL as is (no checks: for data an operator vouches for; the refresher uses
        :meth:`update_crl`)."""
        der = data if isinstance(data, bytes) else data.dump()
        key = hashlib.sha256(der).hexdigest()
        with self._lock:
            if key not in self._crls:
                self._crls = {**self._crls, key: asn1_crl.CertificateList.load(der)}
                if persist:
                    self._persist(f"{key}.crl", der)

    def update_crl(self, crl: asn1_crl.CertificateList) -> bool:
        """Cache ``crl`` (already checked by :func:`check_crl`) in place of the older CRLs of
        the same issuer and scope. Returns False when it (or one of the same date and number) is
        already cached; raises :class:`CrlRejected` (``CRL_NOT_NEWER``) when a newer one is
        (no rollback to a list from before a revocation)."""
        der = crl.dump()
        key = hashlib.sha256(der).hexdigest()
        scope, order = _crl_scope(crl), _crl_order(crl)
        with self._lock:
            crls = dict(self._ok_crls())
            if key in crls:
                return False
            same = [k for k, v in crls.items() if _crl_scope(v) == scope]
            newest = max((_crl_order(crls[k]) for k in same), default=None)
            if newest is not None and newest > order:
                raise CrlRejected(f"CRL of {crl.issuer.human_friendly} is older than the "
                                  "cached one", code="CRL_NOT_NEWER")
            if newest == order:  # the same list signed again (ECDSA signatures differ)
                return False
            self._persist(f"{key}.crl", der)
            for old in same:
                del crls[old]
                self._retire(f"{old}.crl")
            crls[key] = crl
            self._crls = crls
        return True

    def add_ocsp(self, data: bytes | asn1_ocsp.OCSPResponse, *, persist: bool = True) -> None:
        der = data if isinstance(data, bytes) else data.dump()
        key = hashlib.sha256(der).hexdigest()
        with self._lock:
            if key not in self._ocsps:
                self._ocsps = {**self._ocsps, key: asn1_ocsp.OCSPResponse.load(der)}
                if persist:
                    self._persist(f"{key}.ocsp", der)

    # -- reading -------------------------------------------------------------------------
    def _ok_crls(self) -> list[tuple[str, asn1_crl.CertificateList]]:
        return [(k, v) for k, v in self._resolve(".crl").items() if v is not None]

    def _resolve(self, suffix: str) -> dict[str, Any]:
        """The map of ``suffix``, loading names received without content (see ``__setstate__``)."""
        attr = "_crls" if suffix == ".crl" else "_ocsps"
        current = getattr(self, attr)
        if all(v is not None for v in current.values()):
            return current
        loaded = dict(current)
        for name, value in current.items():
            if value is None:
                loaded[name] = self._load_named(name, suffix)
        setattr(self, attr, loaded)
        return loaded

    def _load_named(self, name: str, suffix: str) -> Any:
        if name in _PARSED:
            return _PARSED[name]
        for candidate in (f"{name}{suffix}", f"{name}{suffix}.old"):
            try:
                der = (self.folder / candidate).read_bytes()  # type: ignore[operator]
                if hashlib.sha256(der).hexdigest() != name:
                    continue
                parsed = _load(suffix, der)
            except (OSError, ValueError, TypeError):
                continue
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[name] = parsed
            return parsed
        log.warning("cached revocation file vanished", extra={"name": name})
        return None

    @property
    def crls(self) -> list[asn1_crl.CertificateList]:
        return [v for v in self._resolve(".crl").values() if v is not None]

    @property
    def ocsps(self) -> list[asn1_ocsp.OCSPResponse]:
        return [v for v in self._resolve(".ocsp").values() if v is not None]

    def crl_entries(self) -> list[CachedCrl]:
        """Issuer and validity of every cached CRL (for metrics)."""
        out = []
        for name, crl in self._ok_crls():
            tbs = crl["tbs_cert_list"]
            out.append(CachedCrl(name, crl.issuer.human_friendly, tbs["this_update"].native,
                                 tbs["next_update"].native))
        return out

    def __len__(self) -> int:
        return len(self._crls) + len(self._ocsps)

    # -- pickling (the pool ships policies to worker processes) --------------------------
    def __getstate__(self) -> dict[str, Any]:
        crls, ocsps = self._crls, self._ocsps  # one snapshot each (maps are replaced, not changed)
        if self.folder is not None:
            return {"folder": str(self.folder), "crls": sorted(crls), "ocsps": sorted(ocsps)}
        return {"folder": None,
                "crl_der": [v.dump() for v in crls.values() if v is not None],
                "ocsp_der": [v.dump() for v in ocsps.values() if v is not None]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self.folder = Path(state["folder"]) if state["folder"] is not None else None
        if self.folder is not None:
            self._crls = dict.fromkeys(state["crls"])
            self._ocsps = dict.fromkeys(state["ocsps"])
            return
        self._crls = {hashlib.sha256(d).hexdigest(): asn1_crl.CertificateList.load(d)
                      for d in state["crl_der"]}
        self._ocsps = {hashlib.sha256(d).hexdigest(): asn1_ocsp.OCSPResponse.load(d)
                       for d in state["ocsp_der"]}


def _load(suffix: str, der: bytes) -> Any:
    obj = (asn1_crl.CertificateList if suffix == ".crl" else asn1_ocsp.OCSPResponse).load(der)
    obj.native  # noqa: B018 - force a full parse so that a corrupt file fails here
    return obj

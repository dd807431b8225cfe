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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pem, x509

from signing.errors import TrustConfigError

__all__ = [
    "DEFAULT_TRUST_DIRS",
    "GOV_ROOT_G2_SHA256",
    "RevocationCache",
    "TrustBundle",
    "load_certificates",
    "load_trust_bundle",
]

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


class RevocationCache:
    """CRLs and OCSP responses kept for offline validation (e.g. fetched on the government
    network and copied to the gateway). Stored as DER files ``*.crl`` / ``*.ocsp`` in a folder;
    names are the SHA-256 of the content so adding is idempotent."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._crls: dict[str, asn1_crl.CertificateList] = {}
        self._ocsps: dict[str, asn1_ocsp.OCSPResponse] = {}
        if self.folder is not None and self.folder.is_dir():
            for child in sorted(self.folder.iterdir()):
                if child.suffix == ".crl":
                    self.add_crl(child.read_bytes(), persist=False)
                elif child.suffix == ".ocsp":
                    self.add_ocsp(child.read_bytes(), persist=False)

    def _persist(self, name: str, data: bytes) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / name
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)

    def add_crl(self, data: bytes | asn1_crl.CertificateList, *, persist: bool = True) -> None:
        der = data if isinstance(data, bytes) else data.dump()
        key = hashlib.sha256(der).hexdigest()
        if key not in self._crls:
            self._crls[key] = asn1_crl.CertificateList.load(der)
            if persist:
                self._persist(f"{key}.crl", der)

    def add_ocsp(self, data: bytes | asn1_ocsp.OCSPResponse, *, persist: bool = True) -> None:
        der = data if isinstance(data, bytes) else data.dump()
        key = hashlib.sha256(der).hexdigest()
        if key not in self._ocsps:
            self._ocsps[key] = asn1_ocsp.OCSPResponse.load(der)
            if persist:
                self._persist(f"{key}.ocsp", der)

    @property
    def crls(self) -> list[asn1_crl.CertificateList]:
        return list(self._crls.values())

    @property
    def ocsps(self) -> list[asn1_ocsp.OCSPResponse]:
        return list(self._ocsps.values())

    def __len__(self) -> int:
        return len(self._crls) + len(self._ocsps)

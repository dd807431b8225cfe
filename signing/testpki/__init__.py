"""A throw-away test PKI for tests, benchmarks and the demo (certomancer, real protocols).

``build_test_pki(folder)`` generates the private keys into ``folder`` when missing, loads the
certomancer configuration shipped with this package (``testpki.yml``), writes one PKCS#12 file
per signer and PEM files of the CA certificates, and returns a :class:`TestPki`.

Architectures: ``gov-rsa`` (RSA-2048) and ``gov-ec`` (ECDSA P-256), same shape::

    root ─┬─ interm (CRL + OCSP) ─┬─ officer  "Nguyễn Văn A"          (competent person)
          │                       ├─ seal     "UBND tỉnh Thử Nghiệm"  (agency)
          │                       ├─ revoked  (revoked since 2025-01-01, key compromise)
          │                       └─ expired  (valid 2020-01-01 .. 2021-01-01)
          └─ tsa (time-stamping authority)
    stranger-root (not trusted) ── stranger

All service URLs use the host ``pki.test``; :meth:`TestPki.serve_session` serves CRL, OCSP, TSA
and certificate repositories in-process (no ports are exposed to other processes).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto import x509

from signing.errors import TestPkiError

__all__ = ["ARCHITECTURES", "KEY_LABELS", "SIGNER_LABELS", "TestPki", "build_test_pki"]

CONFIG_PATH = Path(__file__).with_name("testpki.yml")
ARCHITECTURES = {"gov-rsa": "keys-rsa", "gov-ec": "keys-ec"}
KEY_LABELS = (
    "root", "interm", "ocsp", "tsa", "officer", "seal", "revoked", "expired",
    "stranger-root", "stranger",
)
#: Certificates packaged as PKCS#12 (key + chain) for signing.
SIGNER_LABELS = ("officer", "seal", "revoked", "expired", "stranger")
DEFAULT_PASSPHRASE = b"secret"


def _generate_keys(key_dir: Path, algorithm: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key_dir.mkdir(parents=True, exist_ok=True)
    for label in KEY_LABELS:
        path = key_dir / f"{label}.key.pem"
        if path.exists():
            continue
        if algorithm == "rsa":
            key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.replace(path)


@dataclass
class TestPki:
    """A loaded test PKI: certomancer architecture plus files written for signers."""

    __test__ = False  # not a pytest test class

    arch_label: str
    arch: Any  # certomancer.registry.PKIArchitecture
    folder: Path
    p12_passphrase: bytes = DEFAULT_PASSPHRASE
    _p12: dict[str, Path] = field(default_factory=dict, repr=False)

    def cert(self, label: str) -> x509.Certificate:
        """The asn1crypto certificate with this certomancer label (``officer``, ``root`` …)."""
        from certomancer.registry import CertLabel

        return self.arch.get_cert(CertLabel(label))

    def chain(self, label: str) -> list[x509.Certificate]:
        """Issuer chain of ``label`` up to (and including) its root, nearest first."""
        from certomancer.registry import CertLabel

        return [self.arch.get_cert(c) for c in self.arch.get_chain(CertLabel(label))]

    def p12(self, label: str) -> Path:
        """Path of the PKCS#12 file (key, certificate, chain) of signer ``label``."""
        try:
            return self._p12[label]
        except KeyError:
            raise TestPkiError(f"no PKCS#12 file for {label!r}", code="TEST_PKI_LABEL") from None

    def pem(self, label: str) -> Path:
        """PEM file of a certificate (written for the CA certificates and the signers)."""
        return self.folder / f"{label}.cert.pem"

    def crl_cache(self) -> Path:
        """A CRL cache folder (:class:`signing.trust.RevocationCache`) holding the current CRLs
        of the root and the issuing CA — what the gateway's refresher would have fetched — so
        that hard-fail verification can decide without reaching ``pki.test``."""
        from certomancer.registry import ServiceLabel

        from signing.trust import RevocationCache

        folder = self.folder / "crl-cache"
        cache = RevocationCache(folder)
        for repo in ("root", "interm"):
            cache.add_crl(self.arch.service_registry.get_crl(ServiceLabel(repo)))
        return folder

    @property
    def root_cert(self) -> x509.Certificate:
        return self.cert("root")

    @property
    def intermediate_cert(self) -> x509.Certificate:
        return self.cert("interm")

    @property
    def tsa_cert(self) -> x509.Certificate:
        return self.cert("tsa")

    @property
    def trust_roots(self) -> list[x509.Certificate]:
        """The trust anchors of this PKI (only the root; ``stranger-root`` is not trusted)."""
        return [self.root_cert]

    @property
    def untrusted_root(self) -> x509.Certificate:
        return self.cert("stranger-root")

    @property
    def tsa_url(self) -> str:
        from certomancer.registry import ServiceLabel

        info = self.arch.service_registry.get_tsa_info(ServiceLabel("tsa"))
        return info.url

    @property
    def trust_bundle_path(self) -> Path:
        """A PEM bundle with the root certificate (what an operator would configure)."""
        return self.folder / "trust-bundle.pem"

    @contextlib.asynccontextmanager
    async def serve_session(self, at_time: Any = None) -> AsyncIterator[Any]:
        """Yield an ``aiohttp.ClientSession`` whose requests to ``pki.test`` are answered by
        certomancer in-process (CRL, OCSP, TSA, certificate repositories)."""
        from certomancer.integrations.aiohttp_illusionist import AsyncIllusionist

        async with AsyncIllusionist(self.arch, at_time=at_time).serving_session() as session:
            yield session


def _pem(cert: x509.Certificate) -> bytes:
    from asn1crypto import pem

    return pem.armor("CERTIFICATE", cert.dump())


def build_test_pki(
    folder: Path, *, arch: str = "gov-rsa", passphrase: bytes = DEFAULT_PASSPHRASE
) -> TestPki:
    """Build (or reload) the test PKI in ``folder``; idempotent and safe to call repeatedly."""
    try:
        from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig
    except ImportError as exc:  # pragma: no cover - certomancer is a dependency
        raise TestPkiError("certomancer is not installed") from exc
    if arch not in ARCHITECTURES:
        raise TestPkiError(f"unknown test PKI architecture {arch!r}", code="TEST_PKI_ARCH")
    folder = Path(folder)
    # certomancer loads every key set of the configuration, so both must exist.
    _generate_keys(folder / ARCHITECTURES["gov-rsa"], "rsa")
    _generate_keys(folder / ARCHITECTURES["gov-ec"], "ec")
    cfg = CertomancerConfig.from_file(str(CONFIG_PATH), key_search_dir=str(folder))
    pki_arch = cfg.get_pki_arch(ArchLabel(arch))
    out = folder / arch
    out.mkdir(parents=True, exist_ok=True)
    result = TestPki(arch_label=arch, arch=pki_arch, folder=out, p12_passphrase=passphrase)
    for label in ("root", "interm", "tsa", "stranger-root", *SIGNER_LABELS):
        path = out / f"{label}.cert.pem"
        path.write_bytes(_pem(pki_arch.get_cert(CertLabel(label))))
    result.trust_bundle_path.write_bytes(_pem(result.root_cert))
    for label in SIGNER_LABELS:
        path = out / f"{label}.p12"
        path.write_bytes(pki_arch.package_pkcs12(CertLabel(label), password=passphrase))
        result._p12[label] = path
    return result

"""Signing keys configured by alias: PKCS#12 files (default) and PKCS#11 tokens.

Rules implemented here:

* Every key has an alias, a Decree 30 role (competent person, agency seal, ...) and an owner
  (agency code or person). Aliases come from a TOML or JSON key configuration file::

      [keys.officer-a]                     # alias
      role = "competent_person"            # competent_person | agency | attachment | copy
      owner = "Nguyễn Văn A"
      source = "pkcs12"                    # default
      path = "officer.p12"                 # relative paths: against the config file's folder
      passphrase_file = "officer.pass"     # first line = passphrase; omit for none

      [keys.seal]
      role = "agency"
      owner = "000.00.00.H01"
      source = "pkcs11"
      module = "/usr/lib/softhsm/libsofthsm2.so"
      token_label = "agency"               # or token_serial = "..." / slot = 0
      key_label = "seal"                   # or key_id = "hex"
      cert_label = "seal"                  # or cert_id = "hex"
      pin_file = "seal.pin"

  JSON files hold the same structure: ``{"keys": {"seal": {...}}}``.
* A PKCS#12 key is parsed once per process and kept as a ``cryptography`` key object: pyHanko's
  ``SimpleSigner`` re-parses the private key on every raw signature (twice per document).
* PKCS#11 sessions are not safe for concurrent operations: one session and one lock per token per
  process. When the token drops (closed session, removed token, logged out) the session is
  reopened, the user logs in again and the operation is retried once.
* PINs and passphrases are read from files, never from the command line, and are never logged.
"""

from __future__ import annotations

import enum
import json
import threading
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.sign import signers
from pyhanko.sign.general import get_pyca_cryptography_hash
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.errors import SigningError


class KeyConfigError(SigningError):
    """The key configuration file or one of its aliases is invalid."""

    code = "KEY_CONFIG"


class UnknownKeyAlias(KeyConfigError):
    """No key is configured under the requested alias."""

    code = "KEY_UNKNOWN_ALIAS"


class KeyLoadError(SigningError):
    """A key could not be loaded (bad passphrase, unreadable file, object missing on token)."""

    code = "KEY_LOAD"


class TokenError(SigningError):
    """The PKCS#11 token failed and could not be recovered by reopening the session."""

    code = "KEY_TOKEN"


class SignerRole(enum.StrEnum):
    """Who signs, in the sense of Decree 30/2020 Appendix I."""

    COMPETENT_PERSON = "competent_person"
    AGENCY = "agency"
    ATTACHMENT = "attachment"
    COPY = "copy"


@dataclass(frozen=True)
class KeyAlias:
    """One configured key. Secrets are referenced by file, never held in the config."""

    alias: str
    role: SignerRole
    owner: str
    source: str = "pkcs12"  # "pkcs12" | "pkcs11"
    # PKCS#12
    path: Path | None = None
    passphrase_file: Path | None = None
    # PKCS#11
    module: Path | None = None
    token_label: str | None = None
    token_serial: str | None = None
    slot: int | None = None
    key_label: str | None = None
    key_id: bytes | None = None
    cert_label: str | None = None
    cert_id: bytes | None = None
    pin_file: Path | None = None
    raw_mechanism: bool | None = None  # None: automatic (True for ECDSA, SoftHSM 2.6 needs it)
    # Both: extra certificates (PEM/DER) to embed, e.g. the issuing CA
    chain: tuple[Path, ...] = ()

    @classmethod
    def from_mapping(cls, alias: str, data: dict[str, Any], base: Path) -> KeyAlias:
        """Build an alias from one ``[keys.ALIAS]`` table; relative paths are against ``base``."""

        def path(name: str) -> Path | None:
            value = data.get(name)
            if value is None:
                return None
            try:
                p = Path(value).expanduser()
            except RuntimeError:  # ~user without a home folder
                raise KeyConfigError(f"key {alias!r}: {name}: no home folder for "
                                     f"{str(value).split('/', 1)[0]!r}") from None
            return p if p.is_absolute() else base / p

        def hexbytes(name: str) -> bytes | None:
            value = data.get(name)
            try:
                return bytes.fromhex(value) if value is not None else None
            except ValueError as exc:
                raise KeyConfigError(f"key {alias!r}: {name} must be hex") from exc

        known = {f.name for f in cls.__dataclass_fields__.values()} - {"alias"}
        unknown = set(data) - known
        if unknown:
            raise KeyConfigError(f"key {alias!r}: unknown settings {sorted(unknown)}")
        _check_types(alias, data)
        try:
            role = SignerRole(data.get("role", ""))
        except ValueError as exc:
            roles = ", ".join(r.value for r in SignerRole)
            raise KeyConfigError(f"key {alias!r}: role must be one of {roles}") from exc
        source = data.get("source", "pkcs12")
        if source not in ("pkcs12", "pkcs11"):
            raise KeyConfigError(f"key {alias!r}: source must be pkcs12 or pkcs11")
        result = cls(
            alias=alias,
            role=role,
            owner=str(data.get("owner", "")),
            source=source,
            path=path("path"),
            passphrase_file=path("passphrase_file"),
            module=path("module"),
            token_label=data.get("token_label"),
            token_serial=data.get("token_serial"),
            slot=data.get("slot"),
            key_label=data.get("key_label"),
            key_id=hexbytes("key_id"),
            cert_label=data.get("cert_label"),
            cert_id=hexbytes("cert_id"),
            pin_file=path("pin_file"),
            raw_mechanism=data.get("raw_mechanism"),
            chain=tuple(base / Path(p) for p in data.get("chain", ())),
        )
        if source == "pkcs12" and result.path is None:
            raise KeyConfigError(f"key {alias!r}: pkcs12 needs path")
        if source == "pkcs11":
            if result.module is None:
                raise KeyConfigError(f"key {alias!r}: pkcs11 needs module")
            if not (result.key_label or result.key_id or result.cert_label or result.cert_id):
                raise KeyConfigError(f"key {alias!r}: pkcs11 needs key/cert label or id")
        return result


#: The TOML type of each key-file setting (a wrong type is the key file's fault, reported at
#: load as ``KEY_CONFIG``, never later as a fault of the document being signed).
_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "role": (str,), "owner": (str,), "source": (str,), "path": (str,),
    "passphrase_file": (str,), "module": (str,), "token_label": (str,), "token_serial": (str,),
    "slot": (int,), "key_label": (str,), "key_id": (str,), "cert_label": (str,),
    "cert_id": (str,), "pin_file": (str,), "raw_mechanism": (bool,), "chain": (list,),
}


def _check_types(alias: str, data: dict[str, Any]) -> None:
    for name, value in data.items():
        types = _SETTING_TYPES.get(name)
        if types is None:
            continue
        if isinstance(value, bool) and bool not in types:  # TOML true is no slot number
            ok = False
        else:
            ok = isinstance(value, types)
        if name == "chain" and ok:
            ok = all(isinstance(item, str) for item in value)
        if name == "slot" and ok:
            ok = value >= 0
        if not ok:
            want = {"slot": "a number >= 0", "raw_mechanism": "true or false",
                    "chain": "a list of file names"}.get(name, "a string")
            raise KeyConfigError(f"key {alias!r}: {name} must be {want}")


def load_key_config(path: str | Path) -> dict[str, KeyAlias]:
    """Read a TOML (``.toml``) or JSON key configuration: ``{"keys": {ALIAS: {...}}}``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"cannot read key config {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyConfigError(f"key config {path} is not valid: {exc}") from exc
    except RecursionError:  # JSON nested past the parser's depth
        raise KeyConfigError(f"key config {path} is not valid: nested too deeply") from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, dict) or not keys:
        raise KeyConfigError(f"key config {path} has no [keys.ALIAS] tables")
    base = path.resolve().parent
    aliases = {}
    for alias, spec in keys.items():
        if not isinstance(spec, dict):
            raise KeyConfigError(f"key config {path}: keys.{alias} must be a table")
        try:
            aliases[alias] = KeyAlias.from_mapping(alias, spec, base)
        except (TypeError, ValueError) as exc:  # e.g. path = 5: a value of the wrong type
            raise KeyConfigError(f"key config {path}: key {alias!r}: {exc}") from None
    return aliases


def read_secret(path: Path | None) -> bytes | None:
    """First line of a PIN/passphrase file (without the line break), or None when not configured."""
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"cannot read secret file {path}: {exc.strerror}") from exc
    return data.splitlines()[0] if data else b""


def _load_chain(paths: tuple[Path, ...]) -> list[asn1_x509.Certificate]:
    from pyhanko.keys import load_certs_from_pemder

    try:
        return list(load_certs_from_pemder([str(p) for p in paths]))
    except (OSError, ValueError) as exc:
        raise KeyLoadError(f"cannot load certificate chain: {exc}") from exc


class CachedKeySigner(signers.SimpleSigner):
    """``SimpleSigner`` that keeps the parsed ``cryptography`` private key.

    pyHanko's ``SimpleSigner.sign_raw`` deserialises the key from DER on every call (twice per
    document, ~60 ms for RSA-2048); this signer does it once.
    """

    def __init__(self, *args, private_key, **kwargs):
        super().__init__(*args, **kwargs)
        self._private_key = private_key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mech = self.get_signature_mechanism_for_digest(digest_algorithm)
        try:
            name = mech.signature_algo
        except ValueError:
            name = mech["algorithm"].native
        key = self._private_key
        if name == "rsassa_pkcs1v15" and isinstance(key, RSAPrivateKey):
            return key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
        if name == "ecdsa" and isinstance(key, EllipticCurvePrivateKey):
            return key.sign(data, ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
        return super().sign_raw(data, digest_algorithm)  # PSS, EdDSA, ...: stock path


class KeySource:
    """Where a key lives. ``signer()`` returns a pyHanko Signer, built once and cached."""

    def __init__(self, config: KeyAlias):
        self.config = config
        self._signer: signers.Signer | None = None
        self._lock = threading.Lock()

    @property
    def alias(self) -> str:
        return self.config.alias

    @property
    def role(self) -> SignerRole:
        return self.config.role

    def signer(self) -> signers.Signer:
        with self._lock:
            if self._signer is None:
                self._signer = self._build_signer()
            return self._signer

    def certificate(self) -> asn1_x509.Certificate:
        """The signer's certificate."""
        return self.signer().signing_cert

    def not_after(self) -> datetime:
        """End of validity of the signer's certificate (for the key-expiry view)."""
        return self.certificate().not_valid_after

    def _build_signer(self) -> signers.Signer:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (token sessions). The source can be used again afterwards."""
        with self._lock:
            self._signer = None


class Pkcs12KeySource(KeySource):
    """A key and certificate in a PKCS#12 file, parsed once and cached in memory."""

    def _build_signer(self) -> signers.Signer:
        cfg = self.config
        assert cfg.path is not None
        try:
            blob = cfg.path.read_bytes()
        except OSError as exc:
            msg = f"key {cfg.alias!r}: cannot read {cfg.path}: {exc.strerror}"
            raise KeyLoadError(msg) from exc
        passphrase = read_secret(cfg.passphrase_file)
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(blob, passphrase)
        except ValueError as exc:
            raise KeyLoadError(
                f"key {cfg.alias!r}: cannot open PKCS#12 (wrong passphrase or corrupt file)"
            ) from exc
        if key is None or cert is None:
            raise KeyLoadError(f"key {cfg.alias!r}: PKCS#12 holds no key and certificate")
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        cert_asn1 = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
        others = [
            asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
            for c in extra or ()
        ]
        others += _load_chain(cfg.chain) if cfg.chain else []
        return CachedKeySigner(
            signing_cert=cert_asn1,
            signing_key=asn1_keys.PrivateKeyInfo.load(der),
            cert_registry=SimpleCertificateStore.from_certs(others),
            private_key=key,
        )


def key_source(config: KeyAlias) -> KeySource:
    """The key source for an alias."""
    if config.source == "pkcs11":
        from signing.keys.token import Pkcs11KeySource

        return Pkcs11KeySource(config)
    return Pkcs12KeySource(config)


@dataclass
class KeyStore:
    """The configured aliases; sources are created on first use and cached (one per process)."""

    aliases: dict[str, KeyAlias]
    _sources: dict[str, KeySource] = field(default_factory=dict, repr=False)

    @classmethod
    def from_file(cls, path: str | Path) -> KeyStore:
        return cls(load_key_config(path))

    def get(self, alias: str) -> KeySource:
        try:
            config = self.aliases[alias]
        except KeyError:
            raise UnknownKeyAlias(f"no key configured under alias {alias!r}") from None
        source = self._sources.get(alias)
        if source is None:
            source = self._sources[alias] = key_source(config)
        return source

    def expiry(self, alias: str) -> datetime:
        """The certificate's ``not_after`` for ``alias``."""
        return self.get(alias).not_after()

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()

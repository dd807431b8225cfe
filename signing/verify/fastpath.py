"""Pure-function speed-ups of pyHanko/asn1crypto internals — the only patches we apply.

1. Faster reading of PDF hex strings (signature ``/Contents``).
2. A bounded memo of asn1crypto's RFC 4518 LDAP string preparation
   (``NameTypeAndValue._ldap_string_prep``), which every ``Name`` comparison
   (``match_issuer_serial``, path building) recomputes for each freshly parsed certificate; its
   result depends only on the input string (the method does not use ``self``), and a gateway
   sees the same few CA names all day.
3. ``Name`` equality (RFC 5280 §7.1, after that preparation) and ``Name.hashable`` answered from
   bounded memos keyed by the names' DER encodings, identical encodings equal at once: both are
   functions of the encodings alone, and pyHanko compares the same few issuer and subject
   names dozens of times per signature (``match_issuer_serial`` over every embedded
   certificate, ``ESSCertIDv2`` checks, path building) — a quarter of a 100 KB two-signature
   PDF's validation time before these memos. ``Name.human_friendly`` (rendered for every
   certificate by pyHanko's path builder and by our reports: ~4% of a validation) likewise.
4. The certificates embedded in a signature's CMS are interned by DER (a bounded memo of
   parsed ``Certificate`` objects): the same signer and CA certificates arrive all day, and
   parsing their extensions, names and keys again for every signature was ~18% of a 100 KB
   two-signature PDF's validation.

Why: stock pyHanko reads a hex string one token at a time through
``pdf_utils.misc.read_non_whitespace`` — about 10,000 Python calls for a typical signature's
``/Contents`` (≈ half of the validation time of a one-page PDF, measured in
``bench/bench_verify.py``). Here the string is located with one ``bytes.find``, whitespace is
removed with ``bytes.translate``, the digits are checked with one regular expression and decoded
with ``bytes.fromhex``.

Semantics are unchanged (PDF 32000-1 §7.3.4.3: whitespace ignored, an odd final digit is
followed by an implicit 0). Anything unusual (a ``%`` comment inside the string, a stream that is
not seekable, invalid digits, a missing ``>``) falls back to pyHanko's original function, which
then raises its usual errors. ``tests/signing/test_verify_fastpath.py`` proves verdicts and
decoded bytes are identical with and without the patch.

The patch is applied by :func:`install` (idempotent) and undone by :func:`uninstall`.
"""

from __future__ import annotations

import binascii
import functools
import re
import sys

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.sign import general

__all__ = ["install", "installed", "uninstall"]

_ORIGINAL = generic.read_hex_string_from_stream
_ORIGINAL_PREP = asn1_x509.NameTypeAndValue._ldap_string_prep
_memo_prep = functools.lru_cache(maxsize=8192)(
    lambda string: _ORIGINAL_PREP(None, string)  # does not use self
)


def _cached_ldap_string_prep(self, string):
    if isinstance(string, str):
        return _memo_prep(string)
    return _ORIGINAL_PREP(self, string)


_ORIGINAL_NAME_EQ = asn1_x509.Name.__eq__


@functools.lru_cache(maxsize=4096)
def _rdn_sequences_equal(a: bytes, b: bytes) -> bool:
    return asn1_x509.RDNSequence.load(a) == asn1_x509.RDNSequence.load(b)


def _memo_name_eq(self, other):
    """Drop-in replacement of ``asn1crypto.x509.Name.__eq__`` (which compares ``chosen``, the
    RDNSequence). The key is the RDNSequence's own DER, never the Name's: a Name inside a
    ``GeneralName`` (ESS ``IssuerSerial``) carries an explicit ``[4]`` tag in its encoding."""
    if not isinstance(other, asn1_x509.Name):
        return False
    a, b = self.chosen.dump(), other.chosen.dump()
    return a == b or _rdn_sequences_equal(a, b)


_ORIGINAL_NAME_HASHABLE = asn1_x509.Name.hashable


@functools.lru_cache(maxsize=4096)
def _rdn_sequence_hashable(der: bytes) -> str:
    return asn1_x509.RDNSequence.load(der).hashable


@property
def _memo_name_hashable(self) -> str:
    """Drop-in replacement of ``asn1crypto.x509.Name.hashable`` (the key pyHanko's certificate
    registry files issuers under), a function of the RDNSequence's DER alone."""
    return _rdn_sequence_hashable(self.chosen.dump())


_ORIGINAL_HUMAN_FRIENDLY = asn1_x509.Name.human_friendly


@functools.lru_cache(maxsize=4096)
def _rdn_sequence_human_friendly(der: bytes) -> str:
    # an untagged Name (a CHOICE) encodes exactly as its RDNSequence
    return _ORIGINAL_HUMAN_FRIENDLY.fget(asn1_x509.Name.load(der))


@property
def _memo_human_friendly(self) -> str:
    """Drop-in replacement of ``asn1crypto.x509.Name.human_friendly`` (pyHanko's path builder
    and our reports render every certificate's names), a function of the RDNSequence's DER."""
    return _rdn_sequence_human_friendly(self.chosen.dump())


_ORIGINAL_CERT_INFO = general.extract_certificate_info


@functools.lru_cache(maxsize=1024)
def _certificate(der: bytes) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(der)


def _interned_certificate_info(signed_data):
    """Drop-in replacement of ``pyhanko.sign.general.extract_certificate_info``: the same
    classification, with each X.509 certificate replaced by THE parsed object for its DER
    encoding (a bounded memo). Everything asn1crypto computes lazily on a certificate (its
    extensions, names, public key, fingerprints) is then computed once per process instead of
    once per signature; a certificate is a value (pyHanko and asn1crypto only read it), so
    sharing the object cannot carry anything from one document to another."""
    info = _ORIGINAL_CERT_INFO(signed_data)
    return general.SignedDataCerts(
        signer_cert=_certificate(info.signer_cert.dump()),
        other_certs=[_certificate(c.dump()) for c in info.other_certs],
        attribute_certs=info.attribute_certs,
    )


def _modules_using(function) -> list:
    """pyHanko modules whose ``extract_certificate_info`` is ``function`` (each module that
    imported it by name must be patched on its own)."""
    return [m for name, m in list(sys.modules.items()) if name.startswith("pyhanko.")
            and getattr(m, "extract_certificate_info", None) is function]


_WHITESPACE = b"\x00\t\n\x0c\r "
_HEX = re.compile(rb"[0-9A-Fa-f]*")
_CHUNK = 1 << 16
_MAX_HEX = 64 * 1024 * 1024  # beyond this, let pyHanko's reader deal with it


def fast_read_hex_string_from_stream(stream):
    """Drop-in replacement of ``generic.read_hex_string_from_stream``."""
    try:
        start = stream.tell()
    except (OSError, AttributeError):  # pragma: no cover - unseekable stream
        return _ORIGINAL(stream)
    parts = []
    total = 0
    end = -1
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        end = chunk.find(b">")
        if end >= 0:
            parts.append(chunk[:end])
            total += end
            break
        parts.append(chunk)
        total += len(chunk)
        if total > _MAX_HEX:
            break
    if end < 0:
        stream.seek(start)
        return _ORIGINAL(stream)
    raw = b"".join(parts)
    if not raw.startswith(b"<"):
        stream.seek(start)
        return _ORIGINAL(stream)
    digits = raw[1:].translate(None, _WHITESPACE)
    if b"%" in digits or _HEX.fullmatch(digits) is None:
        stream.seek(start)
        return _ORIGINAL(stream)
    stream.seek(start + len(raw) + 1)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def install() -> None:
    if installed():  # every Verifier calls this: the module scan below runs once
        return
    generic.read_hex_string_from_stream = fast_read_hex_string_from_stream
    asn1_x509.NameTypeAndValue._ldap_string_prep = _cached_ldap_string_prep
    asn1_x509.Name.__eq__ = _memo_name_eq
    asn1_x509.Name.hashable = _memo_name_hashable
    asn1_x509.Name.human_friendly = _memo_human_friendly
    import pyhanko.sign.validation  # noqa: F401 - every module that imports the function

    for module in _modules_using(_ORIGINAL_CERT_INFO):
        module.extract_certificate_info = _interned_certificate_info


def uninstall() -> None:
    generic.read_hex_string_from_stream = _ORIGINAL
    asn1_x509.NameTypeAndValue._ldap_string_prep = _ORIGINAL_PREP
    asn1_x509.Name.__eq__ = _ORIGINAL_NAME_EQ
    asn1_x509.Name.hashable = _ORIGINAL_NAME_HASHABLE
    asn1_x509.Name.human_friendly = _ORIGINAL_HUMAN_FRIENDLY
    for module in _modules_using(_interned_certificate_info):
        module.extract_certificate_info = _ORIGINAL_CERT_INFO


def installed() -> bool:
    return generic.read_hex_string_from_stream is fast_read_hex_string_from_stream

"""CMS rules of the verifier that stock pyHanko lacks (used by :mod:`signing.verify.engine`
and :mod:`signing.integrity`).

* :class:`GatewaySignatureValidator` — every signature value pyHanko checks goes through it:
  signed attributes are verified over their canonical DER (RFC 5652 §5.4,
  :mod:`signing.verify.der`), and BSI TR-03111 plain ECDSA (``r || s``, OIDs
  ``0.4.0.127.0.7.1.1.4.1.x``) is verified after conversion to the X9.62 DER form.
* :func:`algorithm_problem` — a digest / signature algorithm combination the algorithms do not
  allow (RFC 8419 §2.3: Ed25519 with SHA-512, Ed448 with SHAKE256 of 512 bits; RFC 5652
  §10.1.1: a ``digestAlgorithm`` is a digest algorithm, not a signature OID): invalid.
  :func:`algorithm_mismatch` — an algorithm that names another hash than ``digestAlgorithm``
  (RFC 8933 §3): a warning, since each value is still checked with its own hash. Weak algorithms at
  validation time (SHA-1, MD5, RSA < 2048) are another, non-integrity matter (pyHanko's
  algorithm policy; the ``WEAK_DIGEST`` warning).
* :func:`doc_timestamp_type` — ISO 32000-2 §12.8.5 Table 255: a document timestamp's ``/Type``
  shall be ``/DocTimeStamp``; missing or ``/Sig`` is a conformance warning, anything else is
  malformed.
"""

from __future__ import annotations

from asn1crypto import algos, cms, core
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    encode_dss_signature,
)
from pyhanko_certvalidator.sig_validate import (
    DEFAULT_VALIDATION_CONTEXT,
    DefaultSignatureValidator,
    SignatureValidationContext,
)

from signing.verify.der import NotDerError, canonical_der

__all__ = [
    "PLAIN_ECDSA",
    "SIGNATURE_VALIDATOR",
    "GatewaySignatureValidator",
    "algorithm_mismatch",
    "algorithm_problem",
    "doc_timestamp_type",
    "judge_cms",
    "signed_attrs_not_der",
]

#: BSI TR-03111 §5.2.1 ``ecdsa-plain-signatures`` (0.4.0.127.0.7.1.1.4.1) and their hash.
PLAIN_ECDSA = {
    "0.4.0.127.0.7.1.1.4.1.1": "sha1",
    "0.4.0.127.0.7.1.1.4.1.2": "sha224",
    "0.4.0.127.0.7.1.1.4.1.3": "sha256",
    "0.4.0.127.0.7.1.1.4.1.4": "sha384",
    "0.4.0.127.0.7.1.1.4.1.5": "sha512",
    "0.4.0.127.0.7.1.1.4.1.8": "sha3_224",
    "0.4.0.127.0.7.1.1.4.1.9": "sha3_256",
    "0.4.0.127.0.7.1.1.4.1.10": "sha3_384",
    "0.4.0.127.0.7.1.1.4.1.11": "sha3_512",
}
_HASHES = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512, "sha3_224": hashes.SHA3_224,
    "sha3_256": hashes.SHA3_256, "sha3_384": hashes.SHA3_384, "sha3_512": hashes.SHA3_512,
}
#: RFC 5652 §10.1.1: a DigestAlgorithmIdentifier names a message digest algorithm.
DIGEST_ALGORITHMS = frozenset({
    "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha512_224", "sha512_256",
    "sha3_224", "sha3_256", "sha3_384", "sha3_512", "shake128", "shake256", "shake256_len",
})


def _verify_plain_ecdsa(signature: bytes, data: bytes, public_key_info, hash_name: str,
                        prehashed: bool) -> None:
    """BSI TR-03111 §5.2.1: the value is ``r || s``, each the byte length of the curve
    order; anything else (or a non-EC key) is an invalid signature."""
    key = serialization.load_der_public_key(public_key_info.dump())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidSignature("plain ECDSA with a key that is not EC")
    size = (key.curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        raise InvalidSignature("plain ECDSA value of the wrong length")
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    algorithm = _HASHES[hash_name]()
    key.verify(encode_dss_signature(r, s), data,
               ec.ECDSA(Prehashed(algorithm) if prehashed else algorithm))


class GatewaySignatureValidator(DefaultSignatureValidator):
    """pyHanko's signature validator with the two rules of the module docstring.

    Which input is a set of signed attributes: pyHanko passes the signed attributes re-tagged
    as a universal ``SET OF`` (first octet ``0x31``) when not pre-hashed; every other input it
    verifies (certificates, CRLs, OCSP responses, attribute certificates) is a ``SEQUENCE``
    (``0x30``), and content signed without signed attributes is taken as stored even when it
    starts with ``0x31`` (:func:`_as_signed`). Canonicalising a DER value changes nothing; a
    non-DER one that a signer signed as stored then fails, as RFC 5652 §5.4 requires."""

    def validate_signature(self, signature: bytes, signed_data: bytes, public_key_info,
                           signature_algorithm: algos.SignedDigestAlgorithm,
                           context: SignatureValidationContext = DEFAULT_VALIDATION_CONTEXT,
                           ) -> None:
        if not context.prehashed and signed_data[:1] == b"\x31":
            signed_data = _as_signed(signed_data)
        oid = signature_algorithm["algorithm"].dotted
        hash_name = PLAIN_ECDSA.get(oid)
        if hash_name is not None:
            _verify_plain_ecdsa(signature, signed_data, public_key_info, hash_name,
                                context.prehashed)
            return
        super().validate_signature(signature, signed_data, public_key_info,
                                   signature_algorithm, context)


def _is_attribute_set(data: bytes) -> bool:
    """``data`` reads as a SET OF Attribute (RFC 5652 §5.3), as pyHanko's parser reads a
    SignerInfo's signed attributes."""
    try:
        attrs = cms.CMSAttributes.load(data)
        for attr in attrs:  # parsing each type and its values raises on anything else
            _ = attr["type"].dotted, len(attr["values"])
        return len(attrs) > 0
    except Exception:  # not attributes: content signed without signed attributes
        return False


def _as_signed(data: bytes) -> bytes:
    """The bytes a ``0x31``-led input was signed as: a set of signed attributes in its
    canonical DER (an attribute set that cannot be canonicalised is an invalid signature);
    anything else as stored. A CMS without signed attributes signs its content itself, which
    may start with ``0x31`` (``adbe.pkcs7.sha1``: a SHA-1 digest, one time in 256). The
    attribute test runs only when the canonical form differs from the stored bytes."""
    try:
        canonical: bytes | None = canonical_der(data)
    except NotDerError:
        canonical = None
    if canonical == data or not _is_attribute_set(data):
        return data
    if canonical is None:
        raise InvalidSignature("signed attributes that cannot be DER-encoded (RFC 5652 §5.4)")
    return canonical


SIGNATURE_VALIDATOR = GatewaySignatureValidator()


def signed_attrs_not_der(signer_info: cms.SignerInfo) -> bool:
    """The stored signed attributes are not DER (their signature was checked over DER)."""
    attrs = signer_info["signed_attrs"]
    if attrs is core.VOID:
        return False
    stored = attrs.untag().dump()
    try:
        return canonical_der(stored) != stored
    except NotDerError:
        return True


def _digest_name(digest_algorithm: algos.DigestAlgorithm) -> str | None:
    """The digest algorithm's name, or ``None`` when the identifier is not a digest algorithm
    allowed with its parameters (RFC 5652 §10.1.1; RFC 8419 §2.3 for SHAKE256: ``id-shake256``
    without parameters, ``id-shake256-len`` with 512)."""
    name = digest_algorithm["algorithm"].native
    if name not in DIGEST_ALGORITHMS:
        return None
    params = digest_algorithm["parameters"]
    if name == "shake256_len":
        return "shake256" if params.native == 512 else None
    if name == "shake256" and params.native is not None:
        return None
    return name


#: Signature algorithms defined together with their digest (RFC 8419 §2.3: Ed25519 uses
#: SHA-512, Ed448 uses SHAKE256 with 512 bits of output): any other digest is not that algorithm.
_BOUND_DIGEST = {"ed25519": "sha512", "ed448": "shake256"}


def _implied_digest(signature_algorithm: algos.SignedDigestAlgorithm) -> str | None:
    implied = PLAIN_ECDSA.get(signature_algorithm["algorithm"].dotted)
    if implied is not None:
        return implied
    try:
        return signature_algorithm.hash_algo
    except ValueError:  # rsaEncryption, bare ecdsa: the digest algorithm decides
        return None


def algorithm_problem(signer_info: cms.SignerInfo) -> str | None:
    """Why the ``digestAlgorithm`` / ``signatureAlgorithm`` pair of ``signer_info`` is not
    allowed at all (``None``: allowed). An integrity failure:

    * the ``digestAlgorithm`` does not name a digest algorithm (RFC 5652 §10.1.1; a signature
      OID such as ``sha1WithRSAEncryption`` there is malformed);
    * EdDSA with another digest than the one the algorithm is defined with (RFC 8419 §2.3:
      Ed25519 with SHA-512, Ed448 with SHAKE256/512).
    """
    digest_oid = signer_info["digest_algorithm"]["algorithm"]
    digest = _digest_name(signer_info["digest_algorithm"])
    if digest is None:
        return (f"digestAlgorithm {digest_oid.native} is not a digest algorithm allowed here "
                "(RFC 5652 §10.1.1, RFC 8419 §2.3)")
    name = signer_info["signature_algorithm"]["algorithm"].native
    bound = _BOUND_DIGEST.get(name)
    if bound is not None and bound != digest:
        return (f"signature algorithm {name} is defined with digest {bound}, the signer info "
                f"names {digest} (RFC 8419 §2.3)")
    return None


def algorithm_mismatch(signer_info: cms.SignerInfo) -> str | None:
    """A signature algorithm that names its hash (``sha256WithRSAEncryption``,
    ``ecdsa-with-SHA384``, plain ECDSA, RSASSA-PSS parameters) with another
    ``digestAlgorithm`` (RFC 8933 §3: one digest algorithm for the content and the signed
    attributes). The signature value is still checked with the hash it names, the message
    digest with ``digestAlgorithm``; neither is weakened by the mismatch, so it is a
    conformance finding of the producer (a warning), not an integrity failure."""
    digest = _digest_name(signer_info["digest_algorithm"])
    signature_algorithm = signer_info["signature_algorithm"]
    if digest is None or signature_algorithm["algorithm"].native in _BOUND_DIGEST:
        return None
    implied = _implied_digest(signature_algorithm)
    if implied is None or implied == digest:
        return None
    return (f"signature algorithm {signature_algorithm['algorithm'].native} names digest "
            f"{implied}, the signer info names {digest} (RFC 8933 §3)")


def doc_timestamp_type(sig_obj) -> str | None:
    """ISO 32000-2 §12.8.5 Table 255 (``/Type`` of a document timestamp dictionary):
    ``"ok"`` for ``/DocTimeStamp``, ``"lenient"`` for a missing ``/Type`` or ``/Sig`` (the
    token is validated all the same, with a conformance warning), ``None`` for anything
    else (malformed)."""
    value = sig_obj.get("/Type")
    if value is None or value == "/Sig":
        return "lenient"
    return "ok" if value == "/DocTimeStamp" else None


def judge_cms(rep, emb_sig) -> None:
    """The rules above, on a :class:`signing.report.SignatureReport` already judged from
    pyHanko's status (its verdict only gets worse)."""
    from signing.report import Indication, Verdict
    from signing.verify.pdfsig import SHA1_SUBFILTER

    if rep.kind == "document_timestamp" and doc_timestamp_type(emb_sig.sig_object) == "lenient":
        rep.warn("DOCTIMESTAMP_TYPE", "document timestamp dictionary without /Type "
                 "/DocTimeStamp (ISO 32000-2 §12.8.5, Table 255); validated as a timestamp")
    signer_info = emb_sig.signer_info
    if signed_attrs_not_der(signer_info):
        rep.warn("SIGNED_ATTRS_NOT_DER", "signed attributes not DER-encoded; the signature "
                 "was verified over their DER encoding (RFC 5652 §5.4)")
    mismatch = algorithm_mismatch(signer_info)
    if mismatch is not None:
        rep.warn("ALGORITHM_MISMATCH", mismatch)
    problem = algorithm_problem(signer_info)
    if problem is not None:
        rep.valid = False
        rep.error("ALGORITHM_COMBINATION", problem)
        if rep.intact:
            rep.judge(Verdict.INVALID, Indication.TOTAL_FAILED, "SIG_CRYPTO_FAILURE",
                      "SIG_CRYPTO_FAILURE")
    if rep.subfilter == SHA1_SUBFILTER:
        rep.warn("WEAK_DIGEST", "adbe.pkcs7.sha1: the document is bound by a SHA-1 digest")
    if rep.subfilter == SHA1_SUBFILTER and rep.verdict is Verdict.VALID:
        # ISO 32000-1 §12.8.3.3.1: the document is bound to the signature by SHA-1 only. A
        # weak algorithm at validation time is a finding apart from integrity (intact and
        # valid stay true), judged as pyHanko's algorithm policy judges a SHA-1 digest under
        # any other subfilter: INDETERMINATE / CRYPTO_CONSTRAINTS_FAILURE (EN 319 102-1).
        rep.judge(Verdict.INDETERMINATE, Indication.INDETERMINATE,
                  "CRYPTO_CONSTRAINTS_FAILURE_NO_POE", "WEAK_ALGORITHM")

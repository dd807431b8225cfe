"""A cheap integrity check of the signatures a PDF already carries (before signing over them).

Rules implemented here:

* A signature is *intact* when the digest of its ByteRange equals the ``messageDigest`` it
  signed (ISO 32000-1 §12.8.1; for a document timestamp, RFC 3161's message imprint; for
  ``/adbe.pkcs7.sha1``, ISO 32000-1 §12.8.3.3.1, the encapsulated SHA-1 of the ByteRange) and
  its signature value verifies with the embedded signer certificate (RFC 5652 §5.4: over the
  DER encoding of the signed attributes; BSI TR-03111 plain ECDSA included — the verifier's
  :class:`signing.verify.cms.GatewaySignatureValidator`).
* A digest / signature algorithm combination the algorithm forbids is not intact
  (:func:`signing.verify.cms.algorithm_problem`). Several SignerInfos: each must be intact.
* A document timestamp is recognised by ``/SubFilter /ETSI.RFC3161`` (or ``/Type
  /DocTimeStamp``), whatever its ``/Type`` (ISO 32000-2 Table 255 is a conformance matter).
* Nothing here judges trust, revocation, time or the changes made after a signature: that is
  :mod:`signing.verify`. This check only tells whether existing signatures are already broken.
* A signature dictionary or CMS blob that cannot be read is not intact; a PDF whose signature
  fields cannot be walked counts as ``invalid``. ``RecursionError`` is left to the caller
  (``PDF_TOO_COMPLEX``).
"""

from __future__ import annotations


def _hash(algorithm: str, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from pyhanko.sign.general import get_pyca_cryptography_hash

    md = hashes.Hash(get_pyca_cryptography_hash(algorithm))
    md.update(data)
    return md.finalize()


def _signer_intact(signed_data, content_type: str, digest_of) -> bool:
    """The single SignerInfo of ``signed_data`` signs ``digest_of(its digest algorithm)``."""
    from pyhanko.sign.general import extract_certificate_info
    from pyhanko.sign.validation.generic_cms import validate_sig_integrity

    from signing.verify.cms import SIGNATURE_VALIDATOR, algorithm_problem

    signer_info = signed_data["signer_infos"][0]
    if algorithm_problem(signer_info) is not None:
        return False
    digest = digest_of(signer_info["digest_algorithm"]["algorithm"].native)
    cert = extract_certificate_info(signed_data).signer_cert
    intact, valid = validate_sig_integrity(signer_info, cert, content_type, digest,
                                           sig_validator=SIGNATURE_VALIDATOR)
    return bool(intact and valid)


def _signature_intact(reader, sig_obj) -> bool:
    """One embedded signature's integrity (module docstring). Anything unreadable is not
    intact."""
    from asn1crypto import cms
    from pyhanko.sign.general import byte_range_digest
    from pyhanko.sign.validation.pdf_embedded import extract_contents

    from signing.verify.pdfsig import SHA1_SUBFILTER, TS_SUBFILTER, single_signer_data

    try:
        subfilter = sig_obj.get("/SubFilter")
        byte_range = list(sig_obj["/ByteRange"])

        def range_digest(algorithm: str) -> bytes:
            return byte_range_digest(reader.stream, byte_range, algorithm)[1]

        signed_data = cms.ContentInfo.load(extract_contents(sig_obj))["content"]
        content = signed_data["encap_content_info"]["content"]
        if subfilter == TS_SUBFILTER or sig_obj.get("/Type") == "/DocTimeStamp":
            imprint = content.parsed["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            if imprint["hashed_message"].native != range_digest(algorithm):
                return False
            return _signer_intact(signed_data, "tst_info",
                                  lambda md: _hash(md, content.contents))
        if subfilter == SHA1_SUBFILTER:
            if bytes(content) != range_digest("sha1"):
                return False
            return all(_signer_intact(part, "data",
                                      lambda md: _hash(md, bytes(content)))
                       for part in single_signer_data(signed_data))
        if content.native is not None:  # detached signatures carry no content
            return False
        return all(_signer_intact(part, "data", range_digest)
                   for part in single_signer_data(signed_data))
    except RecursionError:
        raise
    except Exception:  # a malformed signature dictionary or CMS blob: hostile bytes, not a bug
        return False


def existing_signatures(reader) -> str:
    """``none``, ``intact`` (every embedded signature passes :func:`_signature_intact`) or
    ``invalid`` (one does not, or the signature fields cannot be read)."""
    from pyhanko.sign.fields import enumerate_sig_fields

    try:
        signatures = [ref.get_object()
                      for _, ref, _ in enumerate_sig_fields(reader, filled_status=True)]
    except RecursionError:
        raise
    except Exception:  # the AcroForm cannot be walked
        return "invalid"
    if not signatures:
        return "none"
    return "intact" if all(_signature_intact(reader, s) for s in signatures) else "invalid"

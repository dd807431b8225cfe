"""A cheap integrity check of the signatures a PDF already carries (before signing over them).

Rules implemented here:

* A signature is *intact* when the digest of its ByteRange equals the ``messageDigest`` it
  signed (ISO 32000-1 §12.8.1; for a document timestamp, RFC 3161's message imprint) and its
  signature value verifies with the embedded signer certificate (RFC 5652 §5.4).
* Nothing here judges trust, revocation, time or the changes made after a signature: that is
  :mod:`signing.verify`. This check only tells whether existing signatures are already broken.
* A signature dictionary or CMS blob that cannot be read is not intact; a PDF whose signature
  fields cannot be walked counts as ``invalid``. ``RecursionError`` is left to the caller
  (``PDF_TOO_COMPLEX``).
"""

from __future__ import annotations

import hashlib


def _signature_intact(sig) -> bool:
    """One embedded signature's integrity: the ByteRange digest equals the signed
    ``messageDigest`` (for a document timestamp: the token's message imprint) and the signature
    value verifies with the embedded signer certificate. Anything unreadable is not intact."""
    from pyhanko.sign.validation.generic_cms import validate_sig_integrity

    try:
        digest = sig.compute_digest()
        signer_info = sig.signer_info
        if sig.sig_object_type == "/DocTimeStamp":
            content = sig.signed_data["encap_content_info"]["content"]
            if content.parsed["message_imprint"]["hashed_message"].native != digest:
                return False
            algorithm = signer_info["digest_algorithm"]["algorithm"].native
            intact, valid = validate_sig_integrity(
                signer_info, sig.signer_cert, "tst_info",
                hashlib.new(algorithm, content.contents).digest())
        else:
            intact, valid = validate_sig_integrity(signer_info, sig.signer_cert, "data", digest)
        return bool(intact and valid)
    except RecursionError:
        raise
    except Exception:  # a malformed signature dictionary or CMS blob: hostile bytes, not a bug
        return False


def existing_signatures(reader) -> str:
    """``none``, ``intact`` (every embedded signature passes :func:`_signature_intact`) or
    ``invalid`` (one does not, or the signature fields cannot be read)."""
    try:
        signatures = reader.embedded_signatures
    except RecursionError:
        raise
    except Exception:  # the AcroForm cannot be walked
        return "invalid"
    if not signatures:
        return "none"
    return "intact" if all(_signature_intact(s) for s in signatures) else "invalid"

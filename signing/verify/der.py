"""Canonical DER of CMS signed attributes (RFC 5652 §5.4, X.690 §10/§11).

RFC 5652 §5.4: when signed attributes are present, the signature is computed over "the DER
encoding of the SignedAttrs value" with an EXPLICIT ``SET OF`` tag — whatever bytes the signer
stored. A verifier that checks the signature over the stored bytes accepts a signature a
conforming verifier rejects, and the attributes a reader sees need not be what was signed in
DER form. So the signature is always verified over the canonical re-encoding computed here:

* every length in the definite, shortest form (X.690 §10.1; indefinite lengths of BER become
  definite, their end-of-contents octets dropped);
* the elements of every universal ``SET`` / ``SET OF`` (tag ``0x31``) sorted by their encoded
  bytes (X.690 §11.6; for the ``SET`` of distinct tags this is also the canonical tag order
  of §10.3), recursively — the attributes, each attribute's values, names inside values.

Primitive contents are kept as stored. This sort is implemented here on the raw octets on
purpose: asn1crypto keeps the parsed bytes and re-sorts only sometimes. DER input is returned
unchanged (the canonical form of DER is itself).
"""

from __future__ import annotations

from signing.errors import SigningError

__all__ = ["NotDerError", "canonical_der"]

_MAX_DEPTH = 64


class NotDerError(SigningError):
    """Bytes that are not a BER value this module can canonicalise (signature invalid)."""

    code = "SIGNED_ATTRS_UNPARSABLE"


def _header(buf: bytes, pos: int, end: int) -> tuple[bytes, int, int | None]:
    """Tag octets, position of the contents, and contents length (None: indefinite)."""
    start = pos
    if pos >= end:
        raise NotDerError("truncated tag")
    first = buf[pos]
    pos += 1
    if first & 0x1F == 0x1F:  # high tag number form (X.690 §8.1.2.4)
        while True:
            if pos >= end:
                raise NotDerError("truncated tag")
            pos += 1
            if not buf[pos - 1] & 0x80:
                break
    tag = buf[start:pos]
    if pos >= end:
        raise NotDerError("truncated length")
    octet = buf[pos]
    pos += 1
    if octet < 0x80:
        return tag, pos, octet
    if octet == 0x80:
        if not first & 0x20:
            raise NotDerError("indefinite length on a primitive value")
        return tag, pos, None
    count = octet & 0x7F
    if count > 4 or pos + count > end:
        raise NotDerError("unsupported length")
    length = int.from_bytes(buf[pos:pos + count], "big")
    return tag, pos + count, length


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _value(buf: bytes, pos: int, end: int, depth: int) -> tuple[bytes, int]:
    """Canonical encoding of the value at ``pos`` and the position after it."""
    if depth > _MAX_DEPTH:
        raise NotDerError("nesting too deep")
    tag, pos, length = _header(buf, pos, end)
    if not tag[0] & 0x20:  # primitive: contents as stored
        if length is None or pos + length > end:
            raise NotDerError("truncated value")
        return tag + _length(length) + buf[pos:pos + length], pos + length
    children: list[bytes] = []
    if length is None:
        while True:
            if buf[pos:pos + 2] == b"\x00\x00":
                pos += 2
                break
            child, pos = _value(buf, pos, end, depth + 1)
            children.append(child)
    else:
        stop = pos + length
        if stop > end:
            raise NotDerError("truncated value")
        while pos < stop:
            child, pos = _value(buf, pos, stop, depth + 1)
            children.append(child)
    if tag == b"\x31":
        children.sort()
    body = b"".join(children)
    return tag + _length(len(body)) + body, pos


def canonical_der(encoded: bytes) -> bytes:
    """The canonical DER re-encoding of one BER value (see the module docstring); raises
    :class:`NotDerError` when ``encoded`` is not exactly one well-formed value."""
    out, pos = _value(encoded, 0, len(encoded), 0)
    if pos != len(encoded):
        raise NotDerError("trailing bytes after the value")
    return out

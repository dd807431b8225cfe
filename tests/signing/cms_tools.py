"""Helpers of the CMS tests: take a signed PDF apart at its last signature and put it back
with another CMS (the ByteRange gap is rewritten in place, zero-padded)."""

from __future__ import annotations

import re

from asn1crypto import cms
from cryptography.hazmat.primitives import serialization

_BR = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def gap(pdf: bytes) -> tuple[int, int]:
    """Start and end of the last signature's ``<hex>`` /Contents."""
    m = list(_BR.finditer(pdf))[-1]
    return int(m.group(2)), int(m.group(3))


def content_info(pdf: bytes) -> cms.ContentInfo:
    start, end = gap(pdf)
    return cms.ContentInfo.load(bytes.fromhex(pdf[start + 1:end - 1].decode()), strict=False)


def with_cms(pdf: bytes, der: bytes) -> bytes:
    start, end = gap(pdf)
    hexed = der.hex().encode()
    assert len(hexed) <= end - start - 2, "CMS larger than the reserved gap"
    return pdf[:start + 1] + hexed.ljust(end - start - 2, b"0") + pdf[end - 1:]


def signed_range(pdf: bytes) -> bytes:
    start, end = gap(pdf)
    return pdf[:start] + pdf[end:]


def load_key(path) -> object:
    return serialization.load_pem_private_key(path.read_bytes(), None)


def attrs_set(attrs: list[bytes]) -> bytes:
    """``SET OF`` of encoded attributes in the given (not necessarily DER) order."""
    body = b"".join(attrs)
    return b"\x31" + _length(len(body)) + body


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw

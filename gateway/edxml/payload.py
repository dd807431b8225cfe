"""Attachment payloads: locating them in the raw bytes, base64 and zip.

QCVN 102:2016 producers zip each file (one entry ``<uuid>.<ext>``) and put the base64 of the
zip in ``ContentTransferEncoded``. To keep parsing fast and memory bounded the payload text is
cut out of the raw bytes before lxml sees the document: lxml then parses a small skeleton in
which each payload is replaced by a placeholder, and the payload is decoded straight from a
memoryview of the input. Only payloads that are plain character data directly closed by their
end tag (no markup characters, no CDATA anywhere in the document) are cut, so the skeleton's
markup is always the input's (see :func:`cut_payloads`); anything else is left to lxml.

Accelerators, each optional (import guarded) and giving byte-identical results to the stdlib
path: ``pybase64`` (SIMD base64) and ``zlib-ng`` (CRC-32 and inflate). :func:`accelerators`
tells which are in use.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
import struct
import zipfile
import zlib
from dataclasses import dataclass

from .errors import EdxmlAttachmentError, EdxmlLimitError
from .limits import Limits

try:  # SIMD base64; strict-mode results equal binascii's (see _b64decode)
    import pybase64 as _pybase64
except ImportError:  # pragma: no cover - depends on the installation
    _pybase64 = None
try:  # zlib-ng: same API and results as zlib, vectorised CRC-32 and a faster inflate
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover - depends on the installation
    _zlib = zlib

_CTE_OPEN = re.compile(rb"<([A-Za-z_][\w.\-]*:)?ContentTransferEncoded(?:\s[^<>]*)?>")
_CTE_CLOSE = re.compile(rb"</([A-Za-z_][\w.\-]*:)?ContentTransferEncoded\s*>")
_NOT_IN_SPAN = (b">", b"&", b"-")
ZIP_MAGIC = b"PK\x03\x04"
#: The zip ratio limit applies above this many inflated bytes (small files may compress well).
RATIO_FLOOR = 1024 * 1024
_MIN_CUT = 256
_IN_STEP = 256 * 1024
_OUT_STEP = 1024 * 1024  # payloads shorter than this stay in the tree
_B64_SPACE = b" \t\r\n"


def accelerators() -> dict[str, str]:
    """Which implementation does base64 and CRC-32/inflate (for benchmarks and diagnostics)."""
    return {"base64": "pybase64" if _pybase64 is not None else "binascii",
            "zlib": "zlib-ng" if _zlib is not zlib else "zlib"}


@dataclass(slots=True)
class Skeleton:
    """The document with payloads replaced by ``@@edxml:<nonce>:<n>@@`` placeholders."""

    xml: bytes
    nonce: str
    spans: list[tuple[int, int]]  # (start, end) of each payload in the original bytes

    def placeholder(self, index: int) -> str:
        return f"@@edxml:{self.nonce}:{index}@@"

    def index_of(self, text: str | None) -> int | None:
        if not text or not text.startswith("@@edxml:"):
            return None
        prefix = f"@@edxml:{self.nonce}:"
        if not (text.startswith(prefix) and text.endswith("@@")):
            return None
        try:
            index = int(text[len(prefix):-2])
        except ValueError:
            return None
        return index if 0 <= index < len(self.spans) else None


def cut_payloads(data: bytes) -> Skeleton:
    """Replace the text of every ``ContentTransferEncoded`` element by a placeholder.

    The skeleton must tokenise exactly as the input does, or text hidden in a comment or a
    processing instruction could become elements (or elements vanish into one) in what is
    parsed. A span is cut only when:

    - the start tag matched does not end in ``-->`` or ``?>`` (it could be the end of a
      comment or PI, the span then being ordinary text after it);
    - the span holds no ``<`` (by construction), ``>``, ``&`` or ``-``: no markup, reference,
      comment end (``-->``), PI end (``?>``) or ``--`` (forbidden in comments) lies in it;
    - the span is followed at once by ``</[prefix:]ContentTransferEncoded>``;
    - the document has no CDATA section at all.

    The placeholder holds none of ``<>&-`` either, so a comment or PI that encloses a span
    still ends at the same byte: the skeleton's markup is the input's, only that character
    data changed.
    """
    nonce = secrets.token_hex(8)
    if b"ContentTransferEncoded" not in data:
        return Skeleton(data, nonce, [])
    pieces: list[bytes] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    search = 0
    while True:
        # Locate candidates with bytes.find (fast) and confirm each start tag with an anchored
        # match: running the regex over the whole payload would cost more than lxml's parse.
        hit = data.find(b"ContentTransferEncoded", search)
        if hit < 0:
            break
        search = hit + 22
        lt = data.rfind(b"<", max(0, hit - 64), hit)
        m = _CTE_OPEN.match(data, lt) if lt >= 0 else None
        if m is None or lt < pos or data[m.end() - 2] in b"-?":
            continue
        start = m.end()
        end = data.find(b"<", start)
        if end < 0 or end - start < _MIN_CUT:
            continue
        close = _CTE_CLOSE.match(data, end)
        if close is None or close.group(1) != m.group(1):
            continue
        if any(data.find(c, start, end) >= 0 for c in _NOT_IN_SPAN):
            continue  # references, markup ends: let lxml read this text itself
        pieces.append(data[pos:start])
        pieces.append(f"@@edxml:{nonce}:{len(spans)}@@".encode("ascii"))
        spans.append((start, end))
        pos = search = end
    if not spans:
        return Skeleton(data, nonce, [])
    pieces.append(data[pos:])
    xml = b"".join(pieces)
    # No cut at all when the document has a CDATA section. A cut span holds no "<", and the
    # bytes either side of it are ">" and "<", so every "<![CDATA[" of the input lies whole
    # in the skeleton: searching the small skeleton is the same test as searching the input
    # (which would cost as much as lxml's whole parse).
    if b"<![CDATA[" in xml:
        return Skeleton(data, nonce, [])
    return Skeleton(xml, nonce, spans)


def decode_payload(encoded, limits: Limits, path: str, budget: int) -> bytes:
    """Base64-decode ``encoded`` (bytes, memoryview or str) and unzip a single-entry zip.

    ``budget`` is what is left of ``limits.max_total_attachment_size``. Decoding is strict
    (:func:`decode_base64`): a payload with a byte outside the alphabet, bad padding or a
    length that is not a whole number of quads is ``EDXML_BAD_PAYLOAD``, never decoded around;
    so is a zip whose first bytes were damaged (see :func:`_damaged_zip`), which would otherwise
    be taken as a "raw" attachment of garbage.
    """
    size_cap = min(limits.max_attachment_size, budget)
    # Base64 yields 3 bytes per 4 characters: refuse before decoding what cannot fit even
    # zipped (a zip holding size_cap bytes is at most size_cap plus small headers).
    if len(encoded) * 3 // 4 > size_cap + 65536 + len(encoded) // 40:
        raise EdxmlLimitError(
            "EDXML_ATTACHMENT_TOO_LARGE",
            f"encoded attachment of {len(encoded)} characters exceeds {size_cap} bytes", path)
    if isinstance(encoded, str):
        encoded = encoded.encode("ascii", "replace")
    try:
        raw = decode_base64(encoded)
    except binascii.Error as exc:
        raise EdxmlAttachmentError("EDXML_BAD_PAYLOAD", f"invalid base64: {exc}", path) from exc
    if raw[:4] == ZIP_MAGIC:
        unzipped = _unzip_single(raw, limits, size_cap, path)
        if unzipped is not None:
            return unzipped
    elif _damaged_zip(raw):
        raise EdxmlAttachmentError(
            "EDXML_BAD_PAYLOAD", "the payload is a zip whose first bytes are damaged", path)
    if len(raw) > size_cap:
        raise EdxmlLimitError(
            "EDXML_ATTACHMENT_TOO_LARGE", f"attachment of {len(raw)} bytes exceeds {size_cap}",
            path)
    return raw


def decode_base64(encoded: bytes | memoryview | str) -> bytes:
    """Strict base64 (RFC 4648 §3.3: data outside the alphabet is rejected, not skipped) that
    allows the line breaks of MIME-wrapped text (RFC 2045 §6.8) and XML white space (space,
    tab, CR, LF — XML 1.0 production ``S``) anywhere. After removing that white space the text
    must be a whole number of quads of the alphabet with at most two ``=`` at its end; anything
    else raises :class:`binascii.Error`. SIMD-accelerated when pybase64 is present: well-formed
    base64 has exactly one decoding, so both paths give the same bytes and refuse the same
    input.
    """
    if isinstance(encoded, str):
        encoded = encoded.encode("ascii", "replace")  # "?" is outside the alphabet
    if len(encoded) % 4 == 0:  # the usual one-line payload: no copy, no white space to drop
        try:
            return _strict(encoded)
        except ValueError:  # binascii.Error is one
            pass  # may still be wrapped text whose line breaks add up to a multiple of 4
    compact = bytes(encoded).translate(None, _B64_SPACE)
    if len(compact) % 4:
        raise binascii.Error(
            f"{len(compact)} base64 characters (white space removed) are not a whole number of"
            " 4-character groups")
    try:
        return _strict(compact)
    except ValueError as exc:  # pybase64 raises binascii.Error, a ValueError; keep one type
        raise binascii.Error(str(exc)) from None


def _strict(text: bytes | memoryview) -> bytes:
    """Only the alphabet and final padding (``validate=True``): no white space at all."""
    if _pybase64 is not None:
        return _pybase64.b64decode(text, validate=True)
    return base64.b64decode(text, validate=True)


def _damaged_zip(raw: bytes) -> bool:
    """Whether ``raw`` (which does not start with a zip local header) is a single-archive zip
    whose start was damaged: its end-of-central-directory record is intact and places an entry
    at an offset where no local header is. A file that merely contains a zip further on (a
    self-extracting archive) has its entries' local headers where the directory says."""
    if len(raw) < 22 or raw.rfind(b"PK\x05\x06", max(0, len(raw) - 65557)) < 0:
        return False  # cheap test first: no end record in the last 64 KiB
    try:
        infos = zipfile.ZipFile(io.BytesIO(raw)).infolist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError):
        return False  # not a zip at all: a raw attachment
    return any(raw[i.header_offset:i.header_offset + 4] != ZIP_MAGIC for i in infos)


def b64decode_strict(encoded: str | bytes) -> bytes:
    """Strict base64 (``base64.b64decode(..., validate=True)``: only the alphabet and correct
    padding, else :class:`binascii.Error`), SIMD-accelerated when pybase64 is present."""
    if _pybase64 is not None:
        return _pybase64.b64decode(encoded, validate=True)
    return base64.b64decode(encoded, validate=True)


def b64encode(data: bytes) -> bytes:
    """Base64 on one line, no newline (identical output with or without pybase64)."""
    if _pybase64 is not None:
        return _pybase64.b64encode(data)
    return binascii.b2a_base64(data, newline=False)


def _unzip_single(raw: bytes, limits: Limits, size_cap: int, path: str) -> bytes | None:
    """Unzip the one entry of ``raw``; ``None`` when it is a multi-entry zip (docx, odt…).

    The entry is inflated in bounded steps straight from a memoryview of ``raw`` (declared
    sizes are checked first, then the streamed output against the size cap and the ratio),
    and its CRC-32 is verified. Only stored and deflated entries are accepted.
    """
    try:
        infos = [i for i in zipfile.ZipFile(io.BytesIO(raw)).infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise EdxmlAttachmentError("EDXML_BAD_ZIP", f"unreadable zip: {exc}", path) from exc
    if len(infos) != 1:
        return None
    info = infos[0]
    if info.file_size > size_cap:
        raise EdxmlLimitError(
            "EDXML_ATTACHMENT_TOO_LARGE",
            f"zip entry declares {info.file_size} bytes, limit {size_cap}", path)
    compressed = max(info.compress_size, 1)
    if info.file_size > RATIO_FLOOR and info.file_size / compressed > limits.max_zip_ratio:
        raise EdxmlLimitError(
            "EDXML_ZIP_RATIO",
            f"zip entry ratio {info.file_size / compressed:.0f} exceeds {limits.max_zip_ratio:g}",
            path)
    if info.flag_bits & 0x1:
        raise EdxmlAttachmentError("EDXML_BAD_ZIP", "encrypted zip entries are not accepted",
                                   path)
    header = raw[info.header_offset:info.header_offset + 30]
    if len(header) < 30 or header[:4] != ZIP_MAGIC:
        raise EdxmlAttachmentError("EDXML_BAD_ZIP", "zip local header is missing", path)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.compress_size > len(raw):
        raise EdxmlAttachmentError("EDXML_BAD_ZIP", "zip entry is truncated", path)
    body = memoryview(raw)[start:start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        if info.compress_size != info.file_size:
            raise EdxmlAttachmentError("EDXML_BAD_ZIP", "stored entry sizes disagree", path)
        out = bytes(body)
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        cap = min(size_cap, max(int(len(raw) * limits.max_zip_ratio), RATIO_FLOOR))
        out = _inflate(body, cap, cap == size_cap, path)
    else:
        raise EdxmlAttachmentError(
            "EDXML_BAD_ZIP", f"zip compression method {info.compress_type} is not supported",
            path)
    if len(out) != info.file_size:
        raise EdxmlAttachmentError(
            "EDXML_BAD_ZIP", f"zip entry has {len(out)} bytes, declared {info.file_size}", path)
    if _zlib.crc32(out) != info.CRC:
        raise EdxmlAttachmentError("EDXML_BAD_ZIP", "zip entry CRC-32 mismatch", path)
    return out


def _inflate(body: memoryview, cap: int, size_bound: bool, path: str) -> bytes:
    """Raw-deflate ``body`` producing at most ``cap`` bytes, in 1 MiB steps."""
    inflater = _zlib.decompressobj(-15)
    out = io.BytesIO()
    total = 0
    try:
        for pos in range(0, len(body), _IN_STEP):
            chunk = body[pos:pos + _IN_STEP]
            while chunk:
                piece = inflater.decompress(chunk, _OUT_STEP)
                total += len(piece)
                if total > cap:
                    code = "EDXML_ATTACHMENT_TOO_LARGE" if size_bound else "EDXML_ZIP_RATIO"
                    raise EdxmlLimitError(code, f"zip entry inflates beyond {cap} bytes", path)
                out.write(piece)
                chunk = inflater.unconsumed_tail
        tail = inflater.flush()
    except (zlib.error, _zlib.error) as exc:
        raise EdxmlAttachmentError("EDXML_BAD_ZIP", f"corrupt deflate data: {exc}",
                                   path) from exc
    if tail:
        out.write(tail)
    if not inflater.eof:
        raise EdxmlAttachmentError("EDXML_BAD_ZIP", "deflate stream is truncated", path)
    return out.getvalue()


def zip_entry_name(content_id: str, name: str) -> str:
    """The entry name of the canonical zip: ``<content id>.<ext of the file name>``."""
    ext = ""
    if "." in name:
        ext = "." + re.sub(r"[^A-Za-z0-9]", "", name.rsplit(".", 1)[1])[:10]
    base = re.sub(r"[^A-Za-z0-9\-_]", "_", content_id) or "attachment"
    return base + (ext if ext != "." else "")


#: Compressibility is judged on this many windows of this size spread over the file: small
#: enough to cost little, many enough that a signature's zero-padded ``/Contents`` (a few
#: dozen KiB of ``0`` in an otherwise compressed PDF) cannot make the file look compressible.
_SAMPLE_WINDOWS, _SAMPLE_BYTES = 16, 2048


def _compressible(data: bytes) -> bool:
    """Whether deflating pays (PDF, JPEG, DOCX barely shrink): deflate level 1 of
    :data:`_SAMPLE_WINDOWS` windows spread evenly over ``data`` must shrink them by 20% (two
    windows of zero padding in a compressed PDF shrink the sample by about 12%)."""
    if len(data) < _SAMPLE_WINDOWS * _SAMPLE_BYTES * 2:
        return len(data) < 4096 or len(zlib.compress(data[:65536], 1)) < 0.8 * min(
            len(data), 65536)
    stride = (len(data) - _SAMPLE_BYTES) // (_SAMPLE_WINDOWS - 1)
    sample = b"".join(data[i * stride:i * stride + _SAMPLE_BYTES]
                      for i in range(_SAMPLE_WINDOWS))
    return len(zlib.compress(sample, 1)) < 0.8 * len(sample)


def encode_payload(content_id: str, name: str, data: bytes) -> bytes:
    """Zip ``data`` as one entry (deterministic: fixed date; stored when deflate would not
    shrink it, else deflated at level 1: the package is built on the send path, where a
    second of CPU matters more than a few percent of size) and base64 it on one line."""
    method = zipfile.ZIP_DEFLATED if _compressible(data) else zipfile.ZIP_STORED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo(zip_entry_name(content_id, name), date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = method
        info.external_attr = 0o644 << 16
        zf.writestr(info, data, compress_type=method, compresslevel=1)
    zipped = buffer.getvalue()
    del buffer
    return b64encode(zipped)

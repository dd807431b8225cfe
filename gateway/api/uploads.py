"""Request bodies read with a bound and a clear answer for every way they can be broken.

Rules implemented here:

* A raw body is read in chunks and refused (413, the caller's code) as soon as it passes the
  limit — a declared ``Content-Length`` over the limit is refused before anything is read, a
  chunked body at the first chunk past it — so a client cannot make the gateway buffer more
  than the limit.
* ``multipart/form-data`` (RFC 7578) framing that cannot be parsed — no or an empty boundary, a
  body that does not start with the boundary, a truncated part or a body without the closing
  delimiter, a part without ``Content-Disposition``, a part header with a control character
  (not valid HTTP, RFC 9110 §5.5), a nested multipart part — is 400
  ``MULTIPART_INVALID``. aiohttp reports these as ``ValueError``/``AssertionError``/``KeyError``
  from its reader; they are translated only around the reader's own calls.
* A body the server cannot decode (``Content-Encoding: gzip`` over bytes that are not gzip) is
  400 ``BODY_INVALID`` (see :mod:`gateway.api.middleware`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from gateway.api.errors import ApiError

CHUNK = 256 * 1024
#: What aiohttp's multipart reader raises on framing it cannot parse (``BadHttpMessage``: a
#: part header that is not valid HTTP, e.g. a control character in a file name).
_FRAMING_ERRORS = (ValueError, AssertionError, KeyError, IndexError, BadHttpMessage)


class MultipartInvalid(ApiError):
    status = 400
    code = "MULTIPART_INVALID"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


def is_form_data(request: web.Request) -> bool:
    return request.content_type == "multipart/form-data"


async def form_parts(request: web.Request) -> AsyncIterator[BodyPartReader]:
    """The top-level parts of a ``multipart/form-data`` body; broken framing is 400."""
    try:
        reader = await request.multipart()
    except _FRAMING_ERRORS as exc:
        raise MultipartInvalid(f"the multipart body cannot be parsed: {exc}") from None
    while True:
        try:
            part = await reader.next()
        except _FRAMING_ERRORS as exc:
            raise MultipartInvalid(f"the multipart body cannot be parsed: {exc}") from None
        if part is None:
            return
        if not isinstance(part, BodyPartReader):
            raise MultipartInvalid("nested multipart bodies are not accepted")
        yield part


async def read_part(part: BodyPartReader, limit: int, too_large: ApiError) -> bytes:
    """The part's bytes, at most ``limit`` (else ``too_large``); a truncated part is 400."""
    out = bytearray()
    try:
        while chunk := await part.read_chunk(CHUNK):
            out += chunk
            if len(out) > limit:
                raise too_large
    except _FRAMING_ERRORS as exc:
        raise MultipartInvalid(f"multipart part {part.name!r} is truncated or broken: {exc}"
                               ) from None
    return bytes(out)


async def read_body(request: web.Request, limit: int, too_large: ApiError) -> bytes:
    """The raw body, at most ``limit`` bytes (else ``too_large``, raised while streaming)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    out = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        out += chunk
        if len(out) > limit:
            raise too_large
    return bytes(out)

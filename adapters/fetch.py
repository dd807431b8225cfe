"""Fetch an attachment's bytes and prove they are the ones the gateway announced.

The rule: bytes reach an eOffice only after their size and sha256 match the message.
Inline bodies (``inline_base64``, small files) are decoded and checked; a corrupt inline
body can never heal, so it is a :class:`PermanentDeliveryError`. Other bodies are fetched
with ``GET url`` and ``Authorization: Bearer <gateway token>``, reading at most
``size + 1`` bytes; network errors, HTTP errors and mismatches are transient (a truncated
transfer or a gateway restart heals on the next attempt).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from urllib.parse import urljoin

import aiohttp

from adapters.errors import PermanentDeliveryError, TransientDeliveryError
from adapters.message import Attachment

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


def check_bytes(att: Attachment, data: bytes) -> str | None:
    """Return why ``data`` is not the attachment announced, or None when it is."""
    if len(data) != att.size:
        return f"size {len(data)} != announced {att.size}"
    digest = hashlib.sha256(data).hexdigest()
    if digest != att.sha256:
        return f"sha256 {digest[:12]}… != announced {att.sha256[:12]}…"
    return None


def decode_inline(att: Attachment) -> bytes:
    """The verified bytes of an inline attachment; PermanentDeliveryError if corrupt."""
    try:
        data = base64.b64decode(att.inline_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise PermanentDeliveryError(f"attachment {att.id}: inline_base64 is not base64",
                                     code="ATTACHMENT_INLINE_INVALID") from None
    problem = check_bytes(att, data)
    if problem:
        raise PermanentDeliveryError(f"attachment {att.id} (inline): {problem}",
                                     code="ATTACHMENT_INLINE_INVALID")
    return data


class AttachmentFetcher:
    """Gets attachment bytes from the message or the gateway's HTTP API, verified."""

    def __init__(self, session: aiohttp.ClientSession, *, token: str | None = None,
                 base_url: str | None = None, timeout: float = 60.0) -> None:
        self._session = session
        self._token = token
        self._base_url = base_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def fetch(self, att: Attachment) -> bytes:
        if att.inline_base64 is not None:
            return decode_inline(att)
        data = await self._download(att)
        problem = check_bytes(att, data)
        if problem:
            raise TransientDeliveryError(f"attachment {att.id}: {problem}",
                                         code="ATTACHMENT_MISMATCH")
        return data

    async def _download(self, att: Attachment) -> bytes:
        url = urljoin(self._base_url, att.url) if self._base_url else att.url
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            async with self._session.get(url, headers=headers, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise TransientDeliveryError(
                        f"attachment {att.id}: GET answered HTTP {resp.status}",
                        code="ATTACHMENT_FETCH_FAILED")
                chunks: list[bytes] = []
                total = 0
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    chunks.append(chunk)
                    total += len(chunk)
                    if total > att.size:
                        break  # more than announced: stop reading, report the mismatch
                return b"".join(chunks)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TransientDeliveryError(
                f"attachment {att.id}: fetch failed: {type(exc).__name__}: {exc}",
                code="ATTACHMENT_FETCH_FAILED") from None

"""What the signing API tests send: a client token's header and a multipart form with a PDF."""

from __future__ import annotations

import aiohttp

from gateway.api.auth import create_client


async def bearer(db, role: str, name: str, **kw) -> dict[str, str]:
    """The ``Authorization`` header of a new API client ``name`` with ``role``."""
    token = (await create_client(db, name=name, role=role, **kw)).token
    return {"Authorization": f"Bearer {token}"}


def pdf_form(pdf: bytes, **fields: str) -> aiohttp.FormData:
    """``fields`` and the PDF as the ``file`` part, as ``/v1/sign`` and ``/v1/verify`` take
    them."""
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", pdf, filename="cong-van.pdf", content_type="application/pdf")
    return form


async def error_code(resp) -> str:
    return (await resp.json())["error"]["code"]

"""Clients of the document-exchange axes (VDXP now, provincial LGSP later) and a VDXP simulator.

Callers depend on :class:`AxisClient` and the typed results/errors only; they obtain a client
with :func:`make_axis_client`.
"""

from __future__ import annotations

from typing import Any

from gateway.axis.base import (
    AckStatus,
    AxisAuthError,
    AxisClient,
    AxisError,
    AxisNotSupportedError,
    AxisProtocolError,
    AxisRejectedError,
    AxisTransientError,
    DirectoryEntry,
    MessageType,
    ReceivedItem,
    SendResult,
    SentReceipt,
    is_multipart,
)

__all__ = [
    "AXIS_KINDS",
    "AckStatus",
    "AxisAuthError",
    "AxisClient",
    "AxisError",
    "AxisNotSupportedError",
    "AxisProtocolError",
    "AxisRejectedError",
    "AxisTransientError",
    "DirectoryEntry",
    "MessageType",
    "ReceivedItem",
    "SendResult",
    "SentReceipt",
    "is_multipart",
    "make_axis_client",
]

#: Axis flavours the factory knows; ``lgsp`` is reserved for the provincial (Bkav-style) hubs.
AXIS_KINDS = ("vdxp", "lgsp")


def make_axis_client(kind: str, **settings: Any) -> AxisClient:
    """Build the client of one axis connection.

    ``kind="vdxp"``: ``settings`` are the arguments of :class:`gateway.axis.vdxp.VdxpClient`
    (``endpoint``, ``system_id``, ``secret``, optional ``organ_id``, ``timeout``, ``retries``,
    ``backoff``, ``session``...). ``kind="lgsp"`` raises :class:`AxisNotSupportedError`.
    """
    normalized = kind.strip().lower()
    if normalized == "vdxp":
        from gateway.axis.vdxp import VdxpClient

        try:
            return VdxpClient(**settings)
        except TypeError as exc:
            raise AxisError("bad_settings", f"vdxp client settings: {exc}") from exc
    if normalized == "lgsp":
        raise AxisNotSupportedError(
            "not_supported", "the provincial LGSP axis client is not implemented yet"
        )
    raise AxisNotSupportedError("unknown_axis", f"unknown axis kind {kind!r}; known: {AXIS_KINDS}")

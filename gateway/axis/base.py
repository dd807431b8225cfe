"""The one interface every axis client implements, and its typed results.

An *axis* (trục liên thông: the national VDXP or a provincial LGSP hub) moves edXML packages
between agencies by polling: the gateway sends packages (documents and status messages), lists what
waits for it, fetches each package, then acknowledges it at transport level so the axis stops
offering it. Business statuses (01 received, 03 accepted, 02 rejected...) are *not* acks: they
travel as edXML status messages through :meth:`AxisClient.send_status`.

Implementations: :class:`gateway.axis.vdxp.VdxpClient` (VDXP REST with ``XroadVnpt-*`` HMAC
headers). A provincial (Bkav-style SOAP/REST) client must implement the same abstract methods.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from types import TracebackType

from gateway.axis.errors import (
    AxisAuthError,
    AxisError,
    AxisNotSupportedError,
    AxisProtocolError,
    AxisRejectedError,
    AxisTransientError,
)

__all__ = [
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
]


def is_multipart(content_type: str | None) -> bool:
    """Whether a raw ``Content-Type`` header value names a multipart body (media type names
    are case-insensitive, RFC 9110 §8.3.1), as VDXP's ``sendEdoc`` sends its ``file_doc``.

    Read from the raw header on purpose: aiohttp's ``request.content_type`` runs the stdlib
    e-mail header parser (~0.2 ms), and its cache never helps a multipart body, whose boundary
    is new on every request.
    """
    return (content_type or "").lstrip().lower().startswith("multipart/")


class MessageType(enum.StrEnum):
    """VDXP ``messagetype``: a document package or a status (business reply) package."""

    EDOC = "edoc"
    STATUS = "status"


class AckStatus(enum.StrEnum):
    """VDXP ``updateStatus`` values: a TRANSPORT acknowledgement of a received package.

    ``done`` and ``fail`` take the package off the receiver's axis queue; ``processing`` only
    marks it as being handled (it is still listed).
    """

    DONE = "done"
    FAIL = "fail"
    PROCESSING = "processing"


@dataclass(frozen=True, slots=True)
class SendResult:
    """The axis accepted a package; ``doc_id`` is the axis' own id for it (VDXP ``DocId``)."""

    doc_id: str
    status: str = "OK"
    description: str = ""


@dataclass(frozen=True, slots=True)
class ReceivedItem:
    """One package waiting in our axis queue (VDXP ``getReceivedEdocList`` entry).

    Times are kept as the axis wrote them: their format is not documented.
    """

    doc_id: str
    message_type: MessageType
    from_: str = ""
    to: str = ""
    status: str = ""
    status_desc: str = ""
    service_type: str = "eDoc"
    created_time: str | None = None
    updated_time: str | None = None


@dataclass(frozen=True, slots=True)
class SentReceipt:
    """Delivery state of one sent package for one receiver (VDXP ``getSentEdocList`` entry)."""

    to_code: str
    send_status: str = ""
    send_status_desc: str = ""
    receive_status: str = ""
    receive_status_desc: str = ""
    sender_doc_id: str = ""
    receiver_doc_id: str = ""
    from_code: str = ""
    message_type: str = ""
    title: str = ""
    notation: str = ""
    sent_time: str | None = None
    received_time: str | None = None


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One agency of the axis directory (VDXP ``getAgenciesList``)."""

    id: str
    code: str
    name: str
    pid: str | None = None
    mail: str | None = None
    code102: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


class AxisClient(abc.ABC):
    """Transport to one axis for one connection (one system id / organ id).

    Every method raises a subclass of :class:`AxisError` on failure and never returns an empty
    success for an answer it could not understand. Use as ``async with client: ...``.
    """

    @property
    def longest_call(self) -> float:
        """Seconds one call may take at most, its own retries included (the outbox relay leases
        a row at least this long while sending it)."""
        return 300.0

    @abc.abstractmethod
    async def send_edoc(self, edxml: bytes, *, to: list[str] | None = None) -> SendResult:
        """Send a document package; ``to`` (organ ids) overrides the edXML ``To`` routing.

        Never repeated by the client once the request may have reached the axis (a timeout or
        a connection lost after the request was written raises
        :class:`AxisTransientError` with ``maybe_sent`` True): a second ``sendEdoc`` would
        make the axis hold a second copy. The caller reconciles (:meth:`find_sent`) before it
        sends again."""

    @abc.abstractmethod
    async def send_status(self, edxml: bytes, *, to: list[str] | None = None) -> SendResult:
        """Send a status message package (routed by the axis to ``ResponseFor/OrganId``)."""

    @abc.abstractmethod
    async def list_received(self, message_type: MessageType) -> list[ReceivedItem]:
        """Packages of ``message_type`` waiting for us (not yet acked done/fail)."""

    @abc.abstractmethod
    async def count_received(self, message_type: MessageType) -> int:
        """How many packages of ``message_type`` wait for us."""

    @abc.abstractmethod
    async def fetch(self, doc_id: str) -> bytes:
        """The .edxml bytes of a received package."""

    @abc.abstractmethod
    async def ack(
        self, doc_id: str, status: AckStatus, description: str | None = None
    ) -> None:
        """Transport acknowledgement (VDXP ``updateStatus``); not a business status."""

    @abc.abstractmethod
    async def list_sent(self, doc_id: str) -> list[SentReceipt]:
        """Per-receiver delivery state of a package we sent."""

    @abc.abstractmethod
    async def find_sent(self, sha256: str) -> list[SentReceipt]:
        """Per-receiver state of the packages we sent whose file had this SHA-256 (hex), newest
        last: how a sender that may have lost a ``sendEdoc`` answer finds the DocId the axis
        gave (reconciliation; an empty list means the axis holds no such package from us)."""

    @abc.abstractmethod
    async def directory(self) -> list[DirectoryEntry]:
        """The agency directory of the axis."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections (only those the client created itself)."""

    async def __aenter__(self) -> AxisClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

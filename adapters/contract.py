"""What an adapter is: one ``deliver`` coroutine that puts a document into an eOffice.

The rule for implementers: return (or return a :class:`DeliveryReceipt`) only when the
eOffice has the document; raise :class:`TransientDeliveryError` when trying later may
succeed and :class:`PermanentDeliveryError` when it cannot. ``deliver`` may be called
again for a message it already delivered (a crash between delivery and ack): send the
message id along (e.g. as an idempotency key) so the eOffice can recognise it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from adapters.errors import TransientDeliveryError
from adapters.message import Attachment, DeliveryMessage

if TYPE_CHECKING:
    from adapters.fetch import AttachmentFetcher


@dataclass(frozen=True)
class DeliveryReceipt:
    """The eOffice's answer to a successful delivery."""

    reference: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Delivery(DeliveryMessage):
    """A parsed delivery message plus the attempt number and a way to get attachment bytes."""

    attempt: int = 1
    fetcher: AttachmentFetcher | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, message: DeliveryMessage, *, attempt: int = 1,
           fetcher: AttachmentFetcher | None = None) -> Delivery:
        values = {f.name: getattr(message, f.name) for f in fields(DeliveryMessage)}
        return cls(**values, attempt=attempt, fetcher=fetcher)

    async def fetch_attachment(self, att: Attachment) -> bytes:
        """The attachment's bytes, size and sha256 verified (see :mod:`adapters.fetch`)."""
        if self.fetcher is None:
            from adapters.fetch import decode_inline

            if att.inline_base64 is not None:
                return decode_inline(att)
            raise TransientDeliveryError("no attachment fetcher configured",
                                         code="ATTACHMENT_FETCH_FAILED")
        return await self.fetcher.fetch(att)


@runtime_checkable
class Adapter(Protocol):
    #: Short name of the adapter kind, e.g. ``webhook``; used in outcome reports.
    kind: str

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt | None: ...

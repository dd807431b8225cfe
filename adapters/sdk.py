"""The adapter SDK in one import: the contract, the runner, dedup stores and errors.

Write an adapter as a class with ``kind`` and ``async deliver(delivery)``; run it with
:class:`AdapterRunner`. See :mod:`adapters.runner` for the delivery rules.
"""

from __future__ import annotations

from adapters.contract import Adapter, Delivery, DeliveryReceipt
from adapters.dedup import DedupStore, MemoryDedupStore, SqliteDedupStore
from adapters.errors import (
    DeliveryError,
    MessageFormatError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.fetch import AttachmentFetcher
from adapters.message import Attachment, DeliveryMessage, parse_delivery
from adapters.runner import AdapterRunner, RunnerError, RunnerStats

__all__ = [
    "Adapter",
    "AdapterRunner",
    "Attachment",
    "AttachmentFetcher",
    "DedupStore",
    "Delivery",
    "DeliveryError",
    "DeliveryMessage",
    "DeliveryReceipt",
    "MemoryDedupStore",
    "MessageFormatError",
    "PermanentDeliveryError",
    "RunnerError",
    "RunnerStats",
    "SqliteDedupStore",
    "TransientDeliveryError",
    "parse_delivery",
]

"""State of the VDXP simulator: agencies, packages and per-agency queues (no HTTP here).

Rules the simulated axis keeps, as the real one does:

- a sent package gets one sender ``DocId``; every receiver gets its own copy with its own
  ``docId`` (``getSentEdocList`` reports ``senderDocId``/``receiverDocId`` per receiver);
- a copy stays in the receiver's queue until the receiver acks it ``done`` or ``fail``
  (``updateStatus``); ``processing`` keeps it queued. Unacked copies are listed again on every
  poll - this is how redelivery happens on the real axis;
- the axis appends its own ``TraceHeader`` to every document copy it hands out.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime

from gateway import edxml
from gateway.axis.base import MessageType
from gateway.axis.edxml_peek import status_fields


@dataclass(frozen=True, slots=True)
class SimAgency:
    """One agency connected to the simulated axis."""

    system_id: str
    secret: str
    organ_id: str
    name: str
    mail: str = ""
    pid: str | None = None
    code102: str | None = None


@dataclass(frozen=True, slots=True)
class SimPackage:
    """One receiver's copy of a package, as the axis holds it."""

    doc_id: str
    sender_doc_id: str
    message_type: MessageType
    from_organ: str
    to_organ: str
    data: bytes
    created: datetime
    updated: datetime
    receive_status: str = "initial"
    receive_status_desc: str = ""

    def parsed(self) -> edxml.EdocMessage | edxml.StatusMessage:
        """The package through the project codec (raises its ``EdxmlError`` if refused)."""
        return edxml.parse(self.data)


@dataclass(frozen=True, slots=True)
class StatusSummary:
    """A status package seen by its receiver, reduced to what tests assert on."""

    doc_id: str
    from_organ: str
    status_code: str
    description: str
    response_for_document_id: str
    response_for_organ: str


@dataclass(frozen=True, slots=True)
class AckRecord:
    """One ``updateStatus`` call received by the axis."""

    organ_id: str
    doc_id: str
    status: str
    description: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Submission:
    """Result of a send: the sender's ``DocId`` and receiver organ -> receiver ``docId``."""

    doc_id: str
    deliveries: dict[str, str] = field(default_factory=dict)


class SimState:
    """In-memory axis: all copies ever delivered, and the pending queue of each organ."""

    def __init__(self, agencies: list[SimAgency]) -> None:
        self.agencies = list(agencies)
        self.by_system = {a.system_id: a for a in agencies}
        self.by_organ = {a.organ_id: a for a in agencies}
        self.packages: dict[str, SimPackage] = {}
        self.queues: dict[str, OrderedDict[str, None]] = {
            a.organ_id: OrderedDict() for a in agencies
        }
        self.sent: dict[str, list[str]] = {}  # sender DocId -> receiver copies
        self.senders: dict[str, str] = {}  # sender DocId -> sender organ
        self.hashes: dict[str, str] = {}  # sender DocId -> SHA-256 of the file as uploaded
        self.acks: list[AckRecord] = []
        self._ids = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    def submit(
        self,
        data_for: dict[str, bytes],
        *,
        from_organ: str,
        message_type: MessageType,
        now: datetime,
    ) -> Submission:
        """Queue one copy per receiver (``data_for``: receiver organ -> bytes for it)."""
        sender_doc_id = self.new_id("S")
        deliveries = {}
        for organ, data in data_for.items():
            copy = SimPackage(
                doc_id=self.new_id("R"),
                sender_doc_id=sender_doc_id,
                message_type=message_type,
                from_organ=from_organ,
                to_organ=organ,
                data=data,
                created=now,
                updated=now,
            )
            self.packages[copy.doc_id] = copy
            self.queues.setdefault(organ, OrderedDict())[copy.doc_id] = None
            deliveries[organ] = copy.doc_id
        self.sent[sender_doc_id] = list(deliveries.values())
        self.senders[sender_doc_id] = from_organ
        return Submission(sender_doc_id, deliveries)

    def pending(self, organ_id: str, message_type: MessageType | None = None) -> list[SimPackage]:
        """Copies waiting in ``organ_id``'s queue, oldest first."""
        copies = (self.packages[d] for d in self.queues.get(organ_id, ()))
        return [p for p in copies if message_type is None or p.message_type is message_type]

    def ack(
        self, organ_id: str, doc_id: str, status: str, description: str, now: datetime,
        *, keep_queued: bool = False,
    ) -> None:
        copy = self.packages[doc_id]
        self.packages[doc_id] = replace(
            copy, receive_status=status, receive_status_desc=description, updated=now
        )
        self.acks.append(AckRecord(organ_id, doc_id, status, description, now))
        if status in ("done", "fail") and not keep_queued:
            self.queues.get(organ_id, OrderedDict()).pop(doc_id, None)

    def sent_to(self, organ_id: str, message_type: MessageType | None = None) -> list[SimPackage]:
        return [
            p for p in self.packages.values()
            if p.to_organ == organ_id and (message_type is None or p.message_type is message_type)
        ]

    def statuses_for(self, organ_id: str) -> list[StatusSummary]:
        summaries = []
        for p in self.sent_to(organ_id, MessageType.STATUS):
            fields = status_fields(p.data)
            summaries.append(
                StatusSummary(
                    doc_id=p.doc_id,
                    from_organ=p.from_organ,
                    status_code=fields["status_code"],
                    description=fields["description"],
                    response_for_document_id=fields["document_id"],
                    response_for_organ=fields["response_for"],
                )
            )
        return summaries

"""Outcome reports (``edoc.outcome/1``) an adapter sends back to the gateway.

The rule: every attempt ends with exactly one report — ``delivered``, ``retrying`` (with
``next_at``) or ``dead`` (with the error) — published confirmed to ``P.work`` with routing
key ``outcomes``, AMQP ``message_id`` = a fresh ``outcome_id`` (the gateway deduplicates
on it) and the document's ``correlation_id``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

SCHEMA = "edoc.outcome/1"
OutcomeKind = Literal["delivered", "retrying", "dead"]


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Outcome:
    outcome_id: str
    message_id: str | None
    delivery_id: str
    document_id: str
    agency: str
    outcome: OutcomeKind
    attempt: int
    at: str
    adapter: str
    next_at: str | None = None
    error: str | None = None
    eoffice_reference: str | None = None

    def to_json(self) -> bytes:
        return json.dumps({"schema": SCHEMA, **asdict(self)}, ensure_ascii=False).encode()


def make_outcome(kind: OutcomeKind, *, message_id: str | None, delivery_id: str,
                 document_id: str, agency: str, attempt: int, adapter: str,
                 delay: float | None = None, error: str | None = None,
                 eoffice_reference: str | None = None) -> Outcome:
    now = datetime.now(UTC)
    return Outcome(
        outcome_id=str(uuid.uuid4()),
        message_id=message_id,
        delivery_id=delivery_id,
        document_id=document_id,
        agency=agency,
        outcome=kind,
        attempt=max(1, attempt),
        at=utc_iso(now),
        adapter=adapter,
        next_at=utc_iso(now + timedelta(seconds=delay)) if delay is not None else None,
        error=error,
        eoffice_reference=eoffice_reference,
    )

"""The axis receive state of sent copies, polled while it matters (issue 13, "Tracking").

VDXP ``getSentEdocList`` (``docId`` = the DocId the axis gave our copy) answers per receiver
``sendStatus`` and ``receiveStatus`` with their descriptions and times (spec §5). A copy is
asked about while it matters:

* it is ``SENT`` (it has an axis DocId) and ``axis_tracking = ACTIVE``;
* its receiver has reported no business status yet (any status ends the tracking:
  :mod:`gateway.outbound.status_back`) and the axis does not report it received: a
  ``receiveStatus`` of ``done`` or ``fail`` (the receiver's transport acknowledgement,
  ``updateStatus``) ends it (``DONE``); ``processing`` counts as received (the receiver's
  software took it) but is asked again until it is final;
* it was sent less than ``outbound.track_for`` hours ago; after that it is ``EXPIRED``
  (``axis.tracking_expired`` on the timeline);
* the axis refuses the question for good (:func:`gateway.axis.errors.is_permanent`, e.g. an
  unknown DocId): ``STOPPED`` (``axis.tracking_stopped`` with the axis's code).

The schedule: each round claims at most ``track_batch`` due copies per axis connection
(``axis_next_check_at`` moved ``track_interval`` seconds ahead in the same statement, rows
locked with ``SKIP LOCKED``: two gateway processes never ask about the same copy at once) and
asks about them one after another at most ``track_rate`` calls per second. A transient axis
error ends that connection's round (the axis is down: asking about the other copies would
only fail too); the copies are due again after ``track_interval``. A change of the send or
receive status is recorded on the copy (``axis_*`` columns; ``axis_received_at`` the first
time it is received) and put on the timeline (``axis.receive_status``); an unchanged answer
only counts the check. Every text the axis returns is bounded before it is stored.

:class:`ReceiveTracker` is the background worker; it receives its collaborators (pool, axis
clients by connection name, settings, metrics) from :mod:`gateway.app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import asyncpg

from gateway.axis import AxisClient, SentReceipt
from gateway.axis.errors import AxisError, AxisRejectedError, is_permanent
from gateway.business.status_rules import bound

if TYPE_CHECKING:
    from gateway.config import OutboundSettings
    from gateway.ops.metrics import Metrics

log = logging.getLogger(__name__)

#: ``receiveStatus`` values after which the axis has nothing more to tell: the receiver acked
#: the copy ``done`` or ``fail`` (``updateStatus``).
FINAL_RECEIVE = frozenset({"done", "fail"})
#: ``receiveStatus`` values that mean the receiver's software took the copy.
RECEIVED = frozenset({"done", "processing"})
_MAX_STATUS = 64
_MAX_DESC = 500
_MAX_TIME = 64

_EXPIRE = """
WITH gone AS (
    UPDATE outbound_sends SET axis_tracking = 'EXPIRED', updated_at = now()
    WHERE state = 'SENT' AND axis_tracking = 'ACTIVE' AND axis = $1
      AND sent_at <= now() - make_interval(secs => $2)
    RETURNING id, document_id, receiver_code, axis_checks
)
INSERT INTO document_events (document_id, event, agency_code, detail)
SELECT document_id, 'axis.tracking_expired', receiver_code,
       jsonb_build_object('send_id', id, 'checks', axis_checks, 'track_for_hours', $3::float8)
FROM gone
"""

_CLAIM = """
WITH due AS (
    SELECT id FROM outbound_sends
    WHERE state = 'SENT' AND axis_tracking = 'ACTIVE' AND axis = $1
      AND axis_doc_id IS NOT NULL
      AND coalesce(axis_next_check_at, '-infinity') <= now()
    ORDER BY axis_next_check_at NULLS FIRST, sent_at
    LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE outbound_sends o
SET axis_checks = o.axis_checks + 1, axis_checked_at = now(),
    axis_next_check_at = now() + make_interval(secs => $3)
FROM due WHERE o.id = due.id
RETURNING o.id, o.document_id, o.receiver_code, o.axis_doc_id, o.axis_send_status,
          o.axis_receive_status, o.axis_receive_status_desc
"""

#: The axis's answer on the copy ($8 received now, $9 final); the event only when it changed.
_RECORD = """
WITH copy AS (
    UPDATE outbound_sends
    SET axis_send_status = $2, axis_send_status_desc = $3, axis_receive_status = $4,
        axis_receive_status_desc = $5, axis_sent_time = $6, axis_received_time = $7,
        axis_received_at = CASE WHEN $8 AND axis_received_at IS NULL THEN now()
                                ELSE axis_received_at END,
        axis_tracking = CASE WHEN $9 AND axis_tracking = 'ACTIVE' THEN 'DONE'
                             ELSE axis_tracking END,
        updated_at = now()
    WHERE id = $1 AND state = 'SENT'
    RETURNING document_id, receiver_code, axis_tracking
)
INSERT INTO document_events (document_id, event, agency_code, detail)
SELECT document_id, 'axis.receive_status', receiver_code,
       $10::jsonb || jsonb_build_object('tracking', axis_tracking) FROM copy
"""

_STOP = """
WITH copy AS (
    UPDATE outbound_sends SET axis_tracking = 'STOPPED', updated_at = now()
    WHERE id = $1 AND axis_tracking = 'ACTIVE'
    RETURNING document_id, receiver_code
)
INSERT INTO document_events (document_id, event, agency_code, detail)
SELECT document_id, 'axis.tracking_stopped', receiver_code, $2::jsonb FROM copy
"""


class ReceiveTracker:
    """Polls ``getSentEdocList`` for the copies that need it (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, clients: Mapping[str, AxisClient],
                 settings: OutboundSettings, *, metrics: Metrics | None = None) -> None:
        self.pool = pool
        self.clients = dict(clients)
        self.settings = settings
        self.metrics = metrics

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop`` is set; the next round at once while a connection had a full
        batch, else after ``track_tick`` seconds."""
        while not stop.is_set():
            busy = await self.round(stop)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.track_tick)

    async def round(self, stop: asyncio.Event | None = None) -> bool:
        """One round over every connection; True when one had more due copies than a batch."""
        results = await asyncio.gather(*(self._connection(name, client, stop)
                                         for name, client in self.clients.items()))
        return any(n >= self.settings.track_batch for n in results)

    async def _connection(self, name: str, client: AxisClient,
                          stop: asyncio.Event | None) -> int:
        s = self.settings
        await self.pool.execute(_EXPIRE, name, s.track_for * 3600.0, s.track_for)
        copies = await self.pool.fetch(_CLAIM, name, s.track_batch, s.track_interval)
        gap = 1.0 / s.track_rate
        loop = asyncio.get_running_loop()
        next_call = loop.time()
        for row in copies:
            if stop is not None and stop.is_set():
                break
            wait = next_call - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            next_call = loop.time() + gap
            if not await self._check(name, client, row):
                break  # the axis is unreachable: the other copies are due again later
        return len(copies)

    async def _check(self, name: str, client: AxisClient, row: asyncpg.Record) -> bool:
        """Ask about one copy; False when the axis could not answer (transient)."""
        try:
            receipts = await client.list_sent(row["axis_doc_id"])
        except AxisError as exc:
            if not is_permanent(exc):
                self._count(name, "error")
                log.warning("axis receive state not available", extra={
                    "axis": name, "axis_doc_id": row["axis_doc_id"], "error": str(exc)[:300]})
                return False
            code = exc.axis_code if isinstance(exc, AxisRejectedError) else exc.code
            await self.pool.execute(_STOP, row["id"], {
                "send_id": str(row["id"]), "axis_doc_id": row["axis_doc_id"],
                "error_code": bound(str(code), _MAX_STATUS),
                "error": bound(str(exc), _MAX_DESC)})
            self._count(name, "stopped")
            return True
        mine = [r for r in receipts if r.to_code == row["receiver_code"]]
        if not mine:
            self._count(name, "missing")
            return True
        await self._record(name, row, mine[-1])
        return True

    async def _record(self, name: str, row: asyncpg.Record, receipt: SentReceipt) -> None:
        send = bound(receipt.send_status, _MAX_STATUS) or ""
        receive = bound(receipt.receive_status, _MAX_STATUS) or ""
        receive_desc = bound(receipt.receive_status_desc, _MAX_DESC) or ""
        if (send, receive, receive_desc) == (row["axis_send_status"] or "",
                                             row["axis_receive_status"] or "",
                                             row["axis_receive_status_desc"] or ""):
            self._count(name, "unchanged")
            return
        normal = receive.strip().lower()
        sent_time = bound(receipt.sent_time, _MAX_TIME)
        received_time = bound(receipt.received_time, _MAX_TIME)
        detail = {"send_id": str(row["id"]), "axis_doc_id": row["axis_doc_id"],
                  "send_status": send, "receive_status": receive,
                  "receive_status_desc": receive_desc, "sent_time": sent_time,
                  "received_time": received_time,
                  "previous_receive_status": row["axis_receive_status"]}
        await self.pool.execute(
            _RECORD, row["id"], send, bound(receipt.send_status_desc, _MAX_DESC) or "",
            receive, receive_desc, sent_time, received_time, normal in RECEIVED,
            normal in FINAL_RECEIVE, detail)
        self._count(name, "changed")
        log.info("axis receive state changed", extra={
            "axis": name, "receiver": row["receiver_code"], "receive_status": receive})

    def _count(self, name: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.tracking_checks.labels(name, outcome).inc()

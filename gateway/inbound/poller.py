"""Polling an axis connection for documents and status messages (VDXP has no push).

One poller per configured connection, every ``poll_interval`` seconds; with
``idle_poll_interval`` an idle connection backs off (doubling) up to that, and the first package
listed brings it back. It holds a PostgreSQL advisory lock for that connection
on a dedicated session, so among several gateway processes exactly one polls it; if that
process dies its session ends and another process takes the lock over.

Each round: ``getReceivedEdocList(edoc)`` → ``getEdoc`` per package → intake (stored and
committed) → ``updateStatus(done)``, or ``fail`` only for a package that can never be processed
(malformed); then the same for ``messagetype=status``. Up to ``concurrency`` packages are taken
in at once (default 8), so that verification keeps every worker of the signing pool busy while
other packages are being fetched, stored and acknowledged. A package whose
intake failed for a passing reason (database down…) is not acknowledged: the axis lists it
again next round; that item is retried with its own back-off (``poll_interval`` doubling up
to :data:`RETRY_CAP`), so one item that keeps failing costs a few requests, not one per round.

An item refused as malformed is remembered (:mod:`gateway.inbound.refused`): an axis that keeps
listing it after ``fail`` does not make the poller fetch and parse it again; such an item is
nothing new for the idle back-off, and only the ``fail`` acknowledgement is repeated until the
axis took one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import TYPE_CHECKING

import asyncpg

from gateway.axis import AckStatus, AxisClient, AxisError, MessageType
from gateway.config import AxisConnection
from gateway.inbound import refused
from gateway.inbound.intake import Arrival

if TYPE_CHECKING:
    from gateway.inbound.intake import Intake
    from gateway.ops.metrics import Metrics

log = logging.getLogger(__name__)

#: Longest wait (seconds) before an item whose fetch, intake or acknowledgement failed is tried
#: again.
RETRY_CAP = 300.0


def lock_key(connection: str) -> int:
    digest = hashlib.sha256(f"edoc-poller:{connection}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AxisPoller:
    """Polls one axis connection ``conn`` through ``client``: takes each package in with
    ``intake``, remembers refused items in the database ``pool``, counts rounds in ``metrics``
    and holds its advisory lock on a session of its own (``dsn``)."""

    def __init__(self, conn: AxisConnection, client: AxisClient, *, dsn: str,
                 pool: asyncpg.Pool, intake: Intake, metrics: Metrics) -> None:
        self.dsn = dsn
        self.pool = pool
        self.intake = intake
        self.metrics = metrics
        self.conn = conn
        self.client = client
        self.rounds = 0
        self.listed = 0  # packages the last round listed that were new work
        self._wait = conn.poll_interval
        self._slots = asyncio.Semaphore(conn.concurrency)
        #: axis docId -> (failed attempts, monotonic time before which it is not tried again)
        self._retry: dict[str, tuple[int, float]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            lock_conn = None
            try:
                lock_conn = await asyncpg.connect(self.dsn, timeout=10)
                while not stop.is_set():
                    if await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)",
                                                lock_key(self.conn.name)):
                        break
                    await _sleep(stop, self.conn.poll_interval)
                log.info("polling axis", extra={"axis": self.conn.name})
                while not stop.is_set() and not lock_conn.is_closed():
                    await self.poll_once()
                    await _sleep(stop, self.next_wait())
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.error("axis poller lost its database session",
                          extra={"axis": self.conn.name, "error": str(exc)})
                await _sleep(stop, 2.0)
            finally:
                if lock_conn is not None and not lock_conn.is_closed():
                    await lock_conn.close()

    def next_wait(self) -> float:
        """Seconds until the next round: ``poll_interval`` after a round that listed anything,
        else twice the last wait, at most ``idle_poll_interval`` (when configured)."""
        active, idle = self.conn.poll_interval, self.conn.idle_poll_interval
        if idle is None or self.listed:
            self._wait = active
        else:
            self._wait = min(idle, 2 * self._wait)
        return self._wait

    async def poll_once(self) -> int:
        """One round over both message types; returns how many packages were taken in."""
        taken = 0
        self.listed = 0
        listed_ids: set[str] = set()
        for kind in (MessageType.EDOC, MessageType.STATUS):
            try:
                items = await self.client.list_received(kind)
            except AxisError as exc:
                self.metrics.axis_polls.labels(self.conn.name, "error").inc()
                log.warning("axis list failed", extra={"axis": self.conn.name,
                                                       "error": str(exc)})
                continue
            self.metrics.axis_polls.labels(self.conn.name, "ok").inc()
            unique = {item.doc_id: item for item in items}  # the axis may list one twice
            listed_ids.update(unique)
            async with self.pool.acquire() as db:
                seen = await refused.known(db, self.conn.name, list(unique))
            now = time.monotonic()
            due = {d: i for d, i in unique.items() if self._retry.get(d, (0, now))[1] <= now}
            fresh = [i for d, i in due.items() if d not in seen]
            self.listed += len(fresh)
            jobs = [self._take_bounded(item.doc_id, item.from_, kind) for item in fresh]
            jobs += [self._ack_again(d, seen[d][1]) for d in due if d in seen and not seen[d][0]]
            results = await asyncio.gather(*jobs)
            taken += sum(results[:len(fresh)])
        for doc_id in [d for d in self._retry if d not in listed_ids]:
            del self._retry[doc_id]  # no longer listed: nothing to retry
        self.rounds += 1
        return taken

    def _failed(self, doc_id: str) -> None:
        """Put ``doc_id`` off: ``poll_interval`` doubled per failed attempt, at most RETRY_CAP."""
        attempts = self._retry.get(doc_id, (0, 0.0))[0] + 1
        delay = min(RETRY_CAP, self.conn.poll_interval * 2 ** min(attempts, 30))
        self._retry[doc_id] = (attempts, time.monotonic() + delay)

    async def _take_bounded(self, doc_id: str, sender: str | None, kind: MessageType) -> bool:
        async with self._slots:
            taken = await self._take(doc_id, sender, kind)
        if taken:
            self._retry.pop(doc_id, None)
        else:
            self._failed(doc_id)
        return taken

    async def _take(self, doc_id: str, sender: str | None, kind: MessageType) -> bool:
        try:
            raw = await self.client.fetch(doc_id)
        except AxisError as exc:
            log.warning("axis fetch failed", extra={"axis": self.conn.name,
                                                    "axis_doc_id": doc_id, "error": str(exc)})
            return False
        try:
            result = await self.intake.take(raw, Arrival(
                axis=self.conn.name, axis_doc_id=doc_id, receiver_hint=self.conn.organ_id,
                sender_hint=sender or None))
        except Exception:
            log.exception("intake failed; the axis will offer the package again",
                          extra={"axis": self.conn.name, "axis_doc_id": doc_id})
            return False
        status = AckStatus.FAIL if result.unprocessable else AckStatus.DONE
        description = result.reject_code if result.unprocessable else None
        acked = True
        try:
            await self.client.ack(doc_id, status, description)
        except AxisError as exc:  # stored already: the next round dedupes and acks again
            acked = False
            log.warning("axis ack failed", extra={"axis": self.conn.name,
                                                  "axis_doc_id": doc_id, "error": str(exc)})
        if result.unprocessable:
            sha = hashlib.sha256(raw).hexdigest() if len(raw) <= 1 << 20 \
                else await asyncio.to_thread(lambda: hashlib.sha256(raw).hexdigest())
            try:
                async with self.pool.acquire() as db:
                    await refused.remember(db, refused.Refusal(
                        self.conn.name, doc_id, kind.value, sha,
                        result.reject_code or "EDXML_ERROR", result.document_id, acked))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # not remembered: the next listing fetches it again and intake deduplicates
                log.warning("could not record a refused axis item",
                            extra={"axis": self.conn.name, "axis_doc_id": doc_id,
                                   "error": str(exc)})
                return True
            log.warning("axis item refused; it will not be fetched again",
                        extra={"axis": self.conn.name, "axis_doc_id": doc_id, "sha256": sha,
                               "reject_code": result.reject_code})
        return True

    async def _ack_again(self, doc_id: str, code: str) -> bool:
        """Repeat ``fail`` for a refused item whose acknowledgement the axis has not taken."""
        try:
            await self.client.ack(doc_id, AckStatus.FAIL, code)
        except AxisError as exc:
            self._failed(doc_id)
            log.warning("axis ack failed", extra={"axis": self.conn.name,
                                                  "axis_doc_id": doc_id, "error": str(exc)})
            return False
        self._retry.pop(doc_id, None)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            async with self.pool.acquire() as db:  # else: acknowledged once more later
                await refused.mark_acked(db, self.conn.name, doc_id)
        return False


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

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
again next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import TYPE_CHECKING

import asyncpg

from gateway.axis import AckStatus, AxisClient, AxisError, MessageType
from gateway.config import AxisConnection
from gateway.intake import Arrival

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)


def lock_key(connection: str) -> int:
    digest = hashlib.sha256(f"edoc-poller:{connection}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AxisPoller:
    def __init__(self, gateway: Gateway, conn: AxisConnection, client: AxisClient) -> None:
        self.gw = gateway
        self.conn = conn
        self.client = client
        self.rounds = 0
        self.listed = 0  # packages the last round listed
        self._wait = conn.poll_interval
        self._slots = asyncio.Semaphore(conn.concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            lock_conn = None
            try:
                lock_conn = await asyncpg.connect(self.gw.dsn, timeout=10)
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
        for kind in (MessageType.EDOC, MessageType.STATUS):
            try:
                items = await self.client.list_received(kind)
            except AxisError as exc:
                self.gw.metrics.axis_polls.labels(self.conn.name, "error").inc()
                log.warning("axis list failed", extra={"axis": self.conn.name,
                                                       "error": str(exc)})
                continue
            self.gw.metrics.axis_polls.labels(self.conn.name, "ok").inc()
            unique = {item.doc_id: item for item in items}  # the axis may list one twice
            self.listed += len(unique)
            results = await asyncio.gather(*(self._take_bounded(item.doc_id, item.from_)
                                             for item in unique.values()))
            taken += sum(results)
        self.rounds += 1
        return taken

    async def _take_bounded(self, doc_id: str, sender: str | None) -> bool:
        async with self._slots:
            return await self._take(doc_id, sender)

    async def _take(self, doc_id: str, sender: str | None) -> bool:
        try:
            raw = await self.client.fetch(doc_id)
        except AxisError as exc:
            log.warning("axis fetch failed", extra={"axis": self.conn.name,
                                                    "axis_doc_id": doc_id, "error": str(exc)})
            return False
        try:
            result = await self.gw.intake.take(raw, Arrival(
                axis=self.conn.name, axis_doc_id=doc_id, receiver_hint=self.conn.organ_id,
                sender_hint=sender or None))
        except Exception:
            log.exception("intake failed; the axis will offer the package again",
                          extra={"axis": self.conn.name, "axis_doc_id": doc_id})
            return False
        status = AckStatus.FAIL if result.unprocessable else AckStatus.DONE
        description = result.reject_code if result.unprocessable else None
        try:
            await self.client.ack(doc_id, status, description)
        except AxisError as exc:  # stored already: the next round dedupes and acks again
            log.warning("axis ack failed", extra={"axis": self.conn.name,
                                                  "axis_doc_id": doc_id, "error": str(exc)})
        return True


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

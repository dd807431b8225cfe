"""The outbox relay: moves committed outbox rows to where they must go.

One relay serves one ``destination``: ``amqp`` (RabbitMQ, through a confirmed
publisher, see :func:`amqp_sender`) or ``axis:<connection>`` (an axis client, see
:mod:`gateway.axis_outbox`). Each pass locks a batch of ready rows
(``FOR UPDATE SKIP LOCKED``, so several gateway processes relay side by side),
sends them concurrently, then in the same transaction deletes the confirmed rows,
marks their deliveries ``PUBLISHED`` and reschedules the failed ones with
backoff. If the process dies between the broker's confirm and the commit, the
rows are published again: consumers deduplicate on ``message_id``.

The relay polls every ``poll_interval`` seconds (a poll first asks, in one autocommit
statement, whether any row is due); a ``LISTEN edoc_outbox`` on a
dedicated connection (re-established after a disconnect) wakes it early. The notification's
payload is the row's destination: the listening relay wakes only the relays (itself and the
relays without a listener of their own that run on the same pool) whose destination it names.
While that listener is connected, :meth:`OutboxRelay.wake` on such a sibling relay is not
needed and is ignored (a broadcast wake would only cost it an empty pass); without a live
listener, ``wake()`` and the ``poll_interval`` work as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.bus.publisher import ConfirmedPublisher
from gateway.db.outbox import AMQP

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "edoc_outbox"

_CLAIM = """
SELECT id, message_id, exchange, routing_key, headers, content_type, body, correlation_id,
       delivery_id, document_id, attempts
FROM outbox
WHERE destination = $1 AND available_at <= now()
ORDER BY id
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

#: For destinations where order matters (status messages to an axis: 01 before 03 before 06),
#: only the oldest row of each document may be claimed; a later one waits until the earlier one
#: is sent (even while the earlier one waits for a retry).
_CLAIM_IN_DOCUMENT_ORDER = """
SELECT id, message_id, exchange, routing_key, headers, content_type, body, correlation_id,
       delivery_id, document_id, attempts
FROM outbox o
WHERE destination = $1 AND available_at <= now()
  AND (document_id IS NULL OR NOT EXISTS (
       SELECT 1 FROM outbox p
       WHERE p.destination = $1 AND p.document_id = o.document_id AND p.id < o.id))
ORDER BY id
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

_ANY_DUE = """
SELECT EXISTS (SELECT 1 FROM outbox WHERE destination = $1 AND available_at <= now())
"""

#: Confirmed rows leave the outbox and their deliveries become PUBLISHED (with a timeline
#: event), in one statement.
_DELETE_AND_MARK_PUBLISHED = """
WITH gone AS (
    DELETE FROM outbox WHERE id = ANY($1::bigint[])
), d AS (
    UPDATE deliveries SET state = 'PUBLISHED', published_at = now(), updated_at = now(),
                          last_error = NULL
    WHERE id = ANY($2::uuid[]) AND state = 'PENDING'
    RETURNING id, document_id, agency_code
)
INSERT INTO document_events (document_id, event, agency_code, detail)
SELECT document_id, 'delivery.published', agency_code, jsonb_build_object('delivery_id', id)
FROM d
"""

_RESCHEDULE = """
UPDATE outbox SET attempts = attempts + 1, last_error = $2,
       available_at = now() + make_interval(secs => least(60, 0.5 * power(2, attempts)))
WHERE id = ANY($1::bigint[])
"""


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0
    passes: int = 0


Sender = Callable[[asyncpg.Record], Awaitable[None]]

#: Running relays by id(pool), so a listening relay can wake its siblings on their destination.
_RUNNING: dict[int, set[OutboxRelay]] = {}
#: id(pool) -> number of connected listeners serving that pool.
_LISTENING: dict[int, int] = {}


def amqp_sender(publisher: ConfirmedPublisher) -> Sender:
    """Send an outbox row to RabbitMQ; returns when the broker confirmed it."""
    async def send(row: asyncpg.Record) -> None:
        await publisher.publish(
            row["exchange"], row["routing_key"], row["body"],
            message_id=str(row["message_id"]), headers=row["headers"],
            content_type=row["content_type"], correlation_id=row["correlation_id"],
        )
    return send


@dataclass
class _Batch:
    conn: asyncpg.Connection
    tx: Any
    rows: list[asyncpg.Record]
    sends: list[asyncio.Future]


async def _abandon(pool: asyncpg.Pool, conn: asyncpg.Connection, tx: Any) -> None:
    with contextlib.suppress(Exception):
        await tx.rollback()
    await pool.release(conn)


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, send: ConfirmedPublisher | Sender, *,
                 batch_size: int = 200, poll_interval: float = 0.25,
                 destination: str = AMQP, dsn: str | None = None, metrics=None,
                 in_document_order: bool = False) -> None:
        self._pool = pool
        self._claim_sql = _CLAIM_IN_DOCUMENT_ORDER if in_document_order else _CLAIM
        self._send = amqp_sender(send) if isinstance(send, ConfirmedPublisher) else send
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._destination = destination
        self._dsn = dsn
        self._metrics = metrics
        self._wake = asyncio.Event()
        self.stats = RelayStats()

    def wake(self) -> None:
        if self._dsn is None and _LISTENING.get(id(self._pool)):
            return  # a live listener wakes this relay when a row for it is committed
        self._wake.set()

    def _notified(self, payload: str) -> None:
        for relay in _RUNNING.get(id(self._pool), ()):
            if not payload or payload == relay._destination:
                relay._wake.set()

    async def _claim(self) -> _Batch | None:
        """Lock the next ready rows in a new transaction and start sending them (in row order);
        the transaction stays open until :meth:`_finish`."""
        conn = await self._pool.acquire()
        tx = conn.transaction()
        try:
            await tx.start()
            rows = await conn.fetch(self._claim_sql, self._destination, self._batch_size)
        except BaseException:
            await _abandon(self._pool, conn, tx)
            raise
        if not rows:
            await tx.rollback()
            await self._pool.release(conn)
            return None
        sends = [asyncio.ensure_future(self._send(r)) for r in rows]
        return _Batch(conn, tx, rows, sends)

    async def _finish(self, batch: _Batch) -> int:
        """Wait for the batch's confirms, delete what was confirmed, reschedule the rest,
        commit. Returns how many rows left the outbox."""
        conn, rows = batch.conn, batch.rows
        try:
            results = await asyncio.gather(*batch.sends, return_exceptions=True)
            done = [r for r, res in zip(rows, results, strict=True) if res is None]
            failed = [(r, res) for r, res in zip(rows, results, strict=True) if res is not None]
            for _, res in failed:
                if not isinstance(res, Exception):
                    raise res  # CancelledError and friends
            if done:
                ids = [r["id"] for r in done]
                deliveries = [r["delivery_id"] for r in done if r["delivery_id"] is not None]
                if deliveries:
                    await conn.execute(_DELETE_AND_MARK_PUBLISHED, ids, deliveries)
                else:
                    await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)
            if failed:
                await conn.execute(_RESCHEDULE, [r["id"] for r, _ in failed], str(failed[0][1]))
                log.warning("outbox rows not confirmed, rescheduled",
                            extra={"count": len(failed), "destination": self._destination,
                                   "error": str(failed[0][1])})
            await batch.tx.commit()
        except BaseException:
            for send in batch.sends:
                send.cancel()
            await _abandon(self._pool, conn, batch.tx)
            raise
        await self._pool.release(conn)
        self.stats.published += len(done)
        self.stats.failed += len(failed)
        self.stats.passes += 1
        if self._metrics is not None:
            self._metrics.outbox_published.inc(len(done))
            self._metrics.outbox_failures.inc(len(failed))
        return len(done)

    async def _anything_due(self) -> bool:
        """One autocommit round trip: is any row of this destination due? A pass started by
        the poll timer (mostly with nothing to do: inserts wake the relay themselves) asks
        this first instead of opening a transaction to find nothing (three round trips)."""
        return bool(await self._pool.fetchval(_ANY_DUE, self._destination))

    async def run_once(self) -> int:
        """Relay one batch; return how many rows were confirmed and removed."""
        batch = await self._claim()
        return 0 if batch is None else await self._finish(batch)

    async def _pass(self) -> int:
        """Relay until fewer than a full batch is ready, two batches in flight: the next batch
        is claimed (and its sends issued, after the previous batch's) while the broker is still
        confirming the previous one, so database and broker work overlap."""
        total = 0
        current = await self._claim()
        while current is not None:
            nxt = await self._claim() if len(current.rows) >= self._batch_size else None
            total += await self._finish(current)
            current = nxt
        return total

    async def drain(self) -> int:
        """Relay until no ready row is left (tests, shutdown)."""
        total = 0
        while n := await self._pass():
            total += n
        return total

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop)) if self._dsn else None
        _RUNNING.setdefault(id(self._pool), set()).add(self)
        timer = False  # this pass was started by the poll timer, not by a wake-up
        try:
            while not stop.is_set():
                try:
                    if not timer or await self._anything_due():
                        await self._pass()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.error("outbox relay pass failed", extra={"error": str(exc)})
                    await asyncio.sleep(1.0)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                    timer = False
                except TimeoutError:
                    timer = True
        finally:
            running = _RUNNING.get(id(self._pool))
            if running is not None:
                running.discard(self)
                if not running:
                    del _RUNNING[id(self._pool)]
            if listener:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN for inserts as a wake-up hint; reconnect after the connection drops."""
        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            self._notified(payload)

        key = id(self._pool)
        while not stop.is_set():
            conn = None
            live = False
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, on_notify)
                _LISTENING[key] = _LISTENING.get(key, 0) + 1
                live = True
                self._notified("")  # rows committed while nobody listened
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                await asyncio.sleep(2.0)
            finally:
                if live:
                    _LISTENING[key] -= 1
                    if not _LISTENING[key]:
                        del _LISTENING[key]
                    self._notified("")  # siblings fall back to wake() and polling
                if conn is not None and not conn.is_closed():
                    await conn.close()

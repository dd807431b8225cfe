"""The outbox relay: moves committed outbox rows to where they must go.

One relay serves one ``destination``: ``amqp`` (RabbitMQ, through a confirmed
publisher, see :func:`amqp_sender`) or ``axis:<connection>`` (an axis client, see
:mod:`gateway.outbound.axis_sender`).

Each pass **leases** a batch of ready rows in one statement: the rows are picked with
``FOR UPDATE SKIP LOCKED`` (several gateway processes relay side by side) and their
``leased_until`` is set ``lease`` seconds ahead, so no other relay takes them while they are
being sent. The sends run concurrently, each bounded so that it ends before its lease does;
then one statement deletes the confirmed rows and marks their deliveries ``PUBLISHED``, and
the failed ones are rescheduled with backoff. Two round trips a pass, and no database
connection held while the broker or the axis answers.

If the process dies after a send and before the delete, the row is sent again when its lease
ends (at-least-once: consumers deduplicate on ``message_id``, the axis statuses on their
content; an axis sender of documents reconciles with the axis first, see
:mod:`gateway.outbound.axis_sender`). A relay that is stopped or cancelled mid-pass gives its
unsent rows back at once.

A send that fails is rescheduled with backoff, unless the sender raises :class:`Undeliverable`:
the destination refused that row for good (the axis's permanent refusal). Such a row leaves
the outbox at once (the sender has recorded why, on the send or the document's timeline) and is
never tried again, so it never holds back the rows queued after it.

Order (``in_document_order``, the axis relays): only the oldest row of each *document and
receiver list* (``document_id`` and ``headers.to``) may be leased; a later one waits until the
earlier one has left the outbox. Status messages of one document all go to its sender (01
before 03 before 06); an outbound document's copies go one per receiver (``to = [receiver]``),
so one receiver's retries never hold back another's copy.

The relay polls every ``poll_interval`` seconds (an empty poll is the one lease statement
finding nothing); a ``LISTEN edoc_outbox`` on a dedicated connection (re-established after a
disconnect) wakes it early. The notification's payload is the row's destination: the listening
relay wakes only the relays (itself and the relays without a listener of their own that run on
the same pool) whose destination it names. While that listener is connected,
:meth:`OutboxRelay.wake` on such a sibling relay is not needed and is ignored (a broadcast wake
would only cost it an empty pass); without a live listener, ``wake()`` and the
``poll_interval`` work as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from gateway.bus.publisher import ConfirmedPublisher
from gateway.db.outbox import AMQP

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "edoc_outbox"

_COLUMNS = """o.id, o.message_id, o.exchange, o.routing_key, o.headers, o.content_type, o.body,
       o.correlation_id, o.delivery_id, o.document_id, o.attempts"""

#: Ready: due, and not leased by a live relay.
_READY = ("destination = $1 AND available_at <= now()"
          " AND (leased_until IS NULL OR leased_until <= now())")


def _lease_sql(only: str = "") -> str:
    """Lease the next ready rows (and ``only`` those): ``$3`` seconds during which no other
    relay takes them. The lease is written to ``leased_until``, which no index covers (a HOT
    update; migration 0005)."""
    return f"""
UPDATE outbox o SET leased_until = now() + make_interval(secs => $3)
FROM (SELECT id FROM outbox x WHERE {_READY}{only}
      ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) due
WHERE o.id = due.id
RETURNING {_COLUMNS}
"""


_LEASE = _lease_sql()

#: For destinations where order matters (status messages to an axis: 01 before 03 before 06),
#: only the oldest row of each document and receiver list may be leased; a later one waits
#: until the earlier one has left the outbox (even while the earlier one waits for a retry, or
#: is leased by another relay). Rows of one document to other receivers (an outbound
#: document's per-receiver copies) do not wait for each other.
_LEASE_IN_DOCUMENT_ORDER = _lease_sql("""
        AND (document_id IS NULL OR NOT EXISTS (
             SELECT 1 FROM outbox p
             WHERE p.destination = $1 AND p.document_id = x.document_id AND p.id < x.id
               AND p.headers -> 'to' IS NOT DISTINCT FROM x.headers -> 'to'))""")

#: A stopped relay gives back the rows it leased and did not send.
_RELEASE = "UPDATE outbox SET leased_until = NULL WHERE id = ANY($1::bigint[])"

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
UPDATE outbox SET attempts = attempts + 1, last_error = $2, leased_until = NULL,
       available_at = now() + make_interval(secs => least(60, 0.5 * power(2, attempts)))
WHERE id = ANY($1::bigint[])
"""


class Undeliverable(Exception):
    """Raised by a sender: the destination refused the row for good (``code``, ``message``).
    The sender has recorded the refusal where its owner looks (a send row, the document's
    timeline); the relay deletes the row without another try."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0
    #: Rows the destination refused for good (:class:`Undeliverable`), removed.
    dropped: int = 0
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer before the row's lease ran out"
    return str(exc) or type(exc).__name__


@dataclass
class _Batch:
    rows: list[asyncpg.Record]
    sends: list[asyncio.Future]


#: Seconds of a lease kept free at its end: a send is cut off this long before its row's lease
#: runs out (and the local clock may run a little differently from the database's).
LEASE_MARGIN = 2.0


class OutboxRelay:
    """``lease``: seconds a leased row stays invisible to other relays; it must outlast the
    longest send (a send still running ``lease - LEASE_MARGIN`` seconds after the lease is
    stopped and counted as failed), and it is how long a row of a killed process waits before
    another relay sends it again."""

    def __init__(self, pool: asyncpg.Pool, send: ConfirmedPublisher | Sender, *,
                 batch_size: int = 200, poll_interval: float = 0.25,
                 destination: str = AMQP, dsn: str | None = None, metrics=None,
                 in_document_order: bool = False, lease: float = 60.0) -> None:
        if lease <= LEASE_MARGIN:
            raise ValueError(f"lease must be longer than {LEASE_MARGIN} s")
        self._pool = pool
        self._lease_sql = _LEASE_IN_DOCUMENT_ORDER if in_document_order else _LEASE
        self._send = amqp_sender(send) if isinstance(send, ConfirmedPublisher) else send
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._destination = destination
        self._dsn = dsn
        self._metrics = metrics
        self._lease = lease
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
        """Lease the next ready rows (one statement) and start sending them, in row order."""
        rows = await self._pool.fetch(self._lease_sql, self._destination, self._batch_size,
                                      self._lease)
        if not rows:
            return None
        rows.sort(key=lambda r: r["id"])  # RETURNING does not keep the subquery's order
        return _Batch(rows, [asyncio.ensure_future(self._send_leased(r)) for r in rows])

    async def _send_leased(self, row: asyncpg.Record) -> None:
        """Send one row; stopped (TimeoutError) before its lease runs out."""
        await asyncio.wait_for(self._send(row), self._lease - LEASE_MARGIN)

    async def _finish(self, batch: _Batch) -> int:
        """Wait for the batch's confirms, delete what was confirmed, reschedule the rest.
        Returns how many rows left the outbox (confirmed, or refused for good)."""
        rows = batch.rows
        try:
            results = await asyncio.gather(*batch.sends, return_exceptions=True)
            for res in results:
                if isinstance(res, BaseException) and not isinstance(res, Exception):
                    raise res  # CancelledError and friends
            done = [r for r, res in zip(rows, results, strict=True) if res is None]
            dropped = [(r, res) for r, res in zip(rows, results, strict=True)
                       if isinstance(res, Undeliverable)]
            failed = [(r, res) for r, res in zip(rows, results, strict=True)
                      if res is not None and not isinstance(res, Undeliverable)]
            gone = [r["id"] for r in done] + [r["id"] for r, _ in dropped]
            if gone:
                deliveries = [r["delivery_id"] for r in done if r["delivery_id"] is not None]
                if deliveries:
                    await self._pool.execute(_DELETE_AND_MARK_PUBLISHED, gone, deliveries)
                else:
                    await self._pool.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                                             gone)
        except BaseException:
            await self._abandon(batch)
            raise
        if failed:
            error = _describe(failed[0][1])
            then = "rescheduled with backoff"
            try:
                await self._pool.execute(_RESCHEDULE, [r["id"] for r, _ in failed], error)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                then = "back when their lease ends (the database refused the reschedule)"
            log.warning(f"outbox rows not confirmed, {then}",
                        extra={"count": len(failed), "destination": self._destination,
                               "error": error})
        if dropped:
            log.warning("outbox rows refused for good by their destination, removed",
                        extra={"count": len(dropped), "destination": self._destination,
                               "error": _describe(dropped[0][1])})
        self.stats.published += len(done)
        self.stats.failed += len(failed)
        self.stats.dropped += len(dropped)
        self.stats.passes += 1
        if self._metrics is not None:
            self._metrics.outbox_published.inc(len(done))
            self._metrics.outbox_failures.inc(len(failed))
        return len(gone)

    async def _abandon(self, batch: _Batch) -> None:
        for send in batch.sends:
            send.cancel()
        await self._release([r["id"] for r in batch.rows])

    async def _release(self, ids: list[int]) -> None:
        """Give leased rows back (best effort: otherwise their lease runs out)."""
        with contextlib.suppress(Exception):
            await asyncio.shield(self._pool.execute(_RELEASE, ids))

    async def run_once(self) -> int:
        """Relay one batch; return how many rows left the outbox (confirmed, or refused for
        good)."""
        batch = await self._claim()
        return 0 if batch is None else await self._finish(batch)

    async def _pass(self) -> int:
        """Relay until fewer than a full batch is ready, two batches in flight: the next batch
        is claimed (and its sends issued, after the previous batch's) while the broker is still
        confirming the previous one, so database and broker work overlap."""
        total = 0
        current = await self._claim()
        while current is not None:
            try:
                nxt = await self._claim() if len(current.rows) >= self._batch_size else None
            except BaseException:
                await self._abandon(current)
                raise
            try:
                total += await self._finish(current)
            except BaseException:
                if nxt is not None:
                    await self._abandon(nxt)
                raise
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
        try:
            while not stop.is_set():
                try:
                    await self._pass()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.error("outbox relay pass failed", extra={"error": str(exc)})
                    await asyncio.sleep(1.0)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
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

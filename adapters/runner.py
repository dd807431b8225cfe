"""The adapter runner: consume one agency queue and deliver each message exactly once.

Per message, in this order (the order is what makes a crash safe):

1. parse; a message that is not ``edoc.delivery/1`` (or is for another agency) goes to the
   dead-letter queue with outcome ``dead`` and a clear error — never lost, never retried;
2. if the dedup store has seen the message id: report ``delivered`` again (the first report
   may have been lost), ack, and do not deliver a second time;
3. ``adapter.deliver``; on success ``dedup.remember`` → outcome ``delivered`` → ack;
4. on :class:`TransientDeliveryError` publish a copy (same message id, body, correlation id,
   headers + ``x-attempt``/``x-last-error``) to the next retry step of the ladder → outcome
   ``retrying`` → ack; after the last step the copy goes to the dead queue → ``dead`` → ack;
5. on :class:`PermanentDeliveryError` the copy goes to the dead queue at once → ``dead`` → ack.

Every publish is confirmed (:class:`ConfirmedPublisher`). If one cannot be confirmed
(broker down) the message is nacked with requeue — it comes back later, and the quorum
queue's ``x-delivery-limit`` stops a poison loop: on the last delivery it allows, a message
the runner still fails on is dead-lettered by the runner itself, with a ``dead`` outcome (code
``ADAPTER_RUNNER_FAILED``). A crash after step 3's delivery
redelivers the message; the dedup store (or the eOffice's idempotency key) suppresses the
second delivery. Two copies of one message id in flight at once are serialised in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)

from adapters.contract import Adapter, Delivery, DeliveryReceipt
from adapters.dedup import DedupStore
from adapters.errors import (
    DeliveryError,
    MessageFormatError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.fetch import AttachmentFetcher
from adapters.ladder import DeadEnd, copy_headers, next_step, previous_attempts
from adapters.message import DeliveryMessage, parse_delivery
from adapters.outcomes import OutcomeKind, make_outcome
from gateway.bus.publisher import BrokerUnavailable, ConfirmedPublisher, PublishError
from gateway.bus.topology import OUTCOMES_ROUTING_KEY, Topology
from gateway.logs import correlation

log = logging.getLogger(__name__)


class RunnerError(Exception):
    """The runner cannot start (queue missing, broker unreachable)."""

    code = "ADAPTER_START_FAILED"


@dataclass
class RunnerStats:
    delivered: int = 0
    duplicates: int = 0
    retried: int = 0
    dead: int = 0
    requeued: int = 0


@dataclass(frozen=True)
class _Ids:
    """Identifiers of a message, as far as they could be read (for dead letters/outcomes)."""

    message_id: str
    delivery_id: str | None
    document_id: str | None
    correlation_id: str | None


def _uuid_or_none(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _salvage_ids(message: AbstractIncomingMessage) -> _Ids:
    """Best-effort ids of an unparsable message: JSON fields, then the relay's headers."""
    headers = message.headers or {}
    data: dict[str, Any] = {}
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        loaded = json.loads(message.body)
        if isinstance(loaded, dict):
            data = loaded
    message_id = message.message_id or (data.get("message_id") if isinstance(
        data.get("message_id"), str) else None) or str(uuid.uuid4())
    return _Ids(
        message_id=message_id,
        delivery_id=_uuid_or_none(data.get("delivery_id")) or _uuid_or_none(
            headers.get("x-delivery-id")),
        document_id=_uuid_or_none(data.get("document_id")) or _uuid_or_none(
            headers.get("x-document-id")),
        correlation_id=message.correlation_id or (
            data.get("correlation_id") if isinstance(data.get("correlation_id"), str) else None),
    )


class AdapterRunner:
    """Consumes ``topology.agency_queue(agency)`` and hands each message to ``adapter``."""

    def __init__(self, adapter: Adapter, *, amqp_url: str, topology: Topology, agency: str,
                 gateway_token: str | None, dedup: DedupStore, prefetch: int = 8,
                 gateway_url: str | None = None, publish_deadline: float = 30.0,
                 stop_grace: float = 10.0, connection_name: str | None = None) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        self.adapter = adapter
        self.topology = topology
        self.agency = agency
        self.dedup = dedup
        self.prefetch = prefetch
        self.stats = RunnerStats()
        self.name = f"{adapter.kind}:{agency}"
        self.connection_name = connection_name or f"edoc-adapter {self.name}"
        self._amqp_url = amqp_url
        self._gateway_token = gateway_token
        self._gateway_url = gateway_url
        self._publish_deadline = publish_deadline
        self._stop_grace = stop_grace
        self._publisher: ConfirmedPublisher | None = None
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractRobustQueue | None = None  # strong reference, see design.md
        self._consumer_tag: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._fetcher: AttachmentFetcher | None = None
        self._busy: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (publisher and consumer, both robust) and start consuming."""
        self._session = aiohttp.ClientSession()
        self._fetcher = AttachmentFetcher(self._session, token=self._gateway_token,
                                          base_url=self._gateway_url)
        self._publisher = ConfirmedPublisher(self._amqp_url,
                                             name=f"{self.connection_name} publisher")
        try:
            await self._publisher.connect()
            self._connection = await aio_pika.connect_robust(
                self._amqp_url, timeout=10,
                client_properties={"connection_name": f"{self.connection_name} consumer"})
            self._channel = await self._connection.channel()
            await self._channel.set_qos(prefetch_count=self.prefetch)
            queue_name = self.topology.agency_queue(self.agency)
            try:
                self._queue = await self._channel.declare_queue(queue_name, passive=True)
            except aio_pika.exceptions.ChannelClosed as exc:
                raise RunnerError(f"queue {queue_name} does not exist (declare the topology "
                                  f"first): {exc}") from None
            self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)
        except (BrokerUnavailable, OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
            await self.stop()
            raise RunnerError(f"cannot start adapter {self.name}: {exc}") from None
        except BaseException:
            await self.stop()
            raise
        log.info("adapter consuming", extra={"adapter": self.name, "queue": queue_name,
                                             "prefetch": self.prefetch})

    async def stop(self) -> None:
        """Stop consuming, let messages in hand finish (up to ``stop_grace`` s), disconnect.

        Messages still unacked when the connection closes go back to the queue.
        """
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._queue.cancel(self._consumer_tag), 5)
        self._consumer_tag = None
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=self._stop_grace)
            for task in pending:
                task.cancel()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.close()
        if self._session is not None:
            await self._session.close()
        self._connection = self._channel = self._queue = None
        self._publisher = None
        self._session = None

    async def run_until(self, stop_event: asyncio.Event) -> None:
        await self.start()
        try:
            await stop_event.wait()
        finally:
            await self.stop()

    # -- per message -----------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            with correlation(message.correlation_id):
                await self._handle(message)
        except (PublishError, BrokerUnavailable) as exc:
            if await self._last_chance(message, exc):
                return
            log.warning("could not report, message requeued",
                        extra={"adapter": self.name, "message_id": message.message_id,
                               "error": str(exc)})
            self.stats.requeued += 1
            await self._settle(message, ack=False)
        except Exception as exc:
            if await self._last_chance(message, exc):
                return
            log.exception("adapter runner failed on a message, requeued",
                          extra={"adapter": self.name, "message_id": message.message_id})
            self.stats.requeued += 1
            await self._settle(message, ack=False)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        attempt = previous_attempts(message.headers) + 1
        try:
            parsed = parse_delivery(message.body)
            if parsed.agency != self.agency:
                raise MessageFormatError(
                    f"message for agency {parsed.agency!r} on the queue of {self.agency!r}",
                    code="MESSAGE_WRONG_AGENCY")
        except MessageFormatError as exc:
            await self._dead_letter_undelivered(message, attempt, exc)
            return
        async with self._claim(parsed.message_id):
            await self._process(message, parsed, attempt)

    async def _process(self, message: AbstractIncomingMessage, parsed: DeliveryMessage,
                       attempt: int) -> None:
        fields = {"adapter": self.name, "message_id": parsed.message_id,
                  "delivery_id": parsed.delivery_id, "attempt": attempt}
        if self.dedup.seen(parsed.message_id):  # a lookup: fine on the loop (DedupStore)
            log.info("duplicate suppressed", extra=fields)
            await self._report("delivered", parsed, attempt)
            self.stats.duplicates += 1
            await self._settle(message, ack=True)
            return
        delivery = Delivery.of(parsed, attempt=attempt, fetcher=self._fetcher)
        try:
            receipt = await self.adapter.deliver(delivery)
        except PermanentDeliveryError as exc:
            await self._give_up(message, parsed, attempt, exc)
            return
        except TransientDeliveryError as exc:
            await self._retry(message, parsed, attempt, exc)
            return
        except Exception as exc:  # an adapter bug: keep the message, walk the ladder
            log.exception("adapter raised an unexpected error", extra=fields)
            await self._retry(message, parsed, attempt, TransientDeliveryError(
                f"{type(exc).__name__}: {exc}", code="ADAPTER_ERROR"))
            return
        receipt = receipt or DeliveryReceipt()
        if getattr(self.dedup, "blocking", True):
            await asyncio.to_thread(self.dedup.remember, parsed.message_id)
        else:
            self.dedup.remember(parsed.message_id)
        await self._report("delivered", parsed, attempt, reference=receipt.reference)
        self.stats.delivered += 1
        log.info("delivered", extra={**fields, "eoffice_reference": receipt.reference})
        await self._settle(message, ack=True)

    async def _retry(self, message: AbstractIncomingMessage, parsed: DeliveryMessage,
                     attempt: int, exc: DeliveryError) -> None:
        step = next_step(attempt, self.topology.retry_delays)
        if isinstance(step, DeadEnd):
            await self._give_up(message, parsed, attempt, exc)
            return
        await self._publish_copy(message, self.topology.retry_exchange(step.step),
                                 self.topology.agency_routing_key(self.agency), parsed.message_id,
                                 attempt, exc)
        await self._report("retrying", parsed, attempt, delay=step.delay, error=str(exc))
        self.stats.retried += 1
        log.warning("delivery failed, will retry",
                    extra={"adapter": self.name, "message_id": parsed.message_id,
                           "attempt": attempt, "retry_in": step.delay, "error": str(exc),
                           "code": exc.code})
        await self._settle(message, ack=True)

    async def _give_up(self, message: AbstractIncomingMessage, parsed: DeliveryMessage,
                       attempt: int, exc: DeliveryError) -> None:
        await self._publish_copy(message, self.topology.dead_exchange,
                                 self.topology.dead_routing_key(self.agency), parsed.message_id,
                                 attempt, exc)
        await self._report("dead", parsed, attempt, error=f"{exc.code}: {exc}")
        self.stats.dead += 1
        log.error("delivery dead-lettered",
                  extra={"adapter": self.name, "message_id": parsed.message_id,
                         "attempt": attempt, "error": str(exc), "code": exc.code})
        await self._settle(message, ack=True)

    async def _last_chance(self, message: AbstractIncomingMessage, exc: Exception) -> bool:
        """On the last delivery the queue allows (``x-delivery-count`` at the quorum queue's
        ``x-delivery-limit``), a message the runner keeps failing on goes to the dead queue
        with a ``dead`` outcome now: requeued once more, the broker would dead-letter it
        silently and the gateway would never hear of it."""
        returned = (message.headers or {}).get("x-delivery-count") or 0
        if not isinstance(returned, int) or returned < self.topology.delivery_limit:
            return False
        failure = PermanentDeliveryError(
            f"the adapter runner failed on this message {returned + 1} times: "
            f"{type(exc).__name__}: {exc}", code="ADAPTER_RUNNER_FAILED")
        try:
            await self._dead_letter_undelivered(
                message, previous_attempts(message.headers) + 1, failure)
        except Exception:
            log.exception("could not dead-letter a message on its last delivery",
                          extra={"adapter": self.name, "message_id": message.message_id})
            return False
        return True

    async def _dead_letter_undelivered(self, message: AbstractIncomingMessage, attempt: int,
                                      exc: DeliveryError) -> None:
        ids = _salvage_ids(message)
        await self._publish_copy(message, self.topology.dead_exchange,
                                 self.topology.dead_routing_key(self.agency), ids.message_id,
                                 attempt, exc)
        if ids.delivery_id and ids.document_id:
            outcome = make_outcome("dead", message_id=ids.message_id,
                                   delivery_id=ids.delivery_id, document_id=ids.document_id,
                                   agency=self.agency, attempt=attempt, adapter=self.name,
                                   error=f"{exc.code}: {exc}")
            await self._publish_outcome(outcome.outcome_id, outcome.to_json(),
                                        ids.correlation_id)
        self.stats.dead += 1
        log.error("message dead-lettered undelivered",
                  extra={"adapter": self.name, "message_id": ids.message_id, "error": str(exc),
                         "code": exc.code, "outcome_reported": bool(ids.delivery_id and
                                                                    ids.document_id)})
        await self._settle(message, ack=True)

    # -- bus -------------------------------------------------------------------------------

    async def _publish_copy(self, message: AbstractIncomingMessage, exchange: str,
                            routing_key: str, message_id: str, attempt: int,
                            exc: DeliveryError) -> None:
        assert self._publisher is not None
        await self._publisher.publish_confirmed(
            exchange, routing_key, message.body, message_id=message_id,
            headers=copy_headers(message.headers, attempt=attempt, error=str(exc),
                                 code=exc.code),
            content_type=message.content_type or "application/json",
            correlation_id=message.correlation_id, deadline=self._publish_deadline)

    async def _report(self, kind: OutcomeKind, parsed: DeliveryMessage, attempt: int, *,
                      delay: float | None = None, error: str | None = None,
                      reference: str | None = None) -> None:
        outcome = make_outcome(kind, message_id=parsed.message_id,
                               delivery_id=parsed.delivery_id, document_id=parsed.document_id,
                               agency=self.agency, attempt=attempt, adapter=self.name,
                               delay=delay, error=error, eoffice_reference=reference)
        await self._publish_outcome(outcome.outcome_id, outcome.to_json(), parsed.correlation_id)

    async def _publish_outcome(self, outcome_id: str, body: bytes,
                               correlation_id: str | None) -> None:
        assert self._publisher is not None
        await self._publisher.publish_confirmed(
            self.topology.work_exchange, OUTCOMES_ROUTING_KEY, body, message_id=outcome_id,
            correlation_id=correlation_id, deadline=self._publish_deadline)

    async def _settle(self, message: AbstractIncomingMessage, *, ack: bool) -> None:
        """Ack, or nack with requeue; a closed channel means the broker requeues it anyway."""
        try:
            if ack:
                await message.ack()
            else:
                await message.nack(requeue=True)
        except Exception as exc:
            log.warning("could not settle message (it will be redelivered)",
                        extra={"adapter": self.name, "message_id": message.message_id,
                               "ack": ack, "error": f"{type(exc).__name__}: {exc}"})

    @contextlib.asynccontextmanager
    async def _claim(self, message_id: str) -> AsyncIterator[None]:
        """Serialise copies of one message id inside this process."""
        while (busy := self._busy.get(message_id)) is not None:
            await busy.wait()
        event = asyncio.Event()
        self._busy[message_id] = event
        try:
            yield
        finally:
            del self._busy[message_id]
            event.set()

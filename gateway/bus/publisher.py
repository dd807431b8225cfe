"""A confirmed publisher: a message counts as sent only when the broker confirmed it.

The channel runs with ``publisher_confirms=True`` and ``on_return_raises=True`` and
every publish is ``mandatory`` with a timeout, so an unroutable message, a nack
(e.g. ``x-overflow=reject-publish`` on a full queue), a closed connection or a
silent broker all surface as :class:`PublishError`. :meth:`publish_confirmed`
retries with backoff until the broker confirms or the deadline passes; the
connection is robust and reconnects by itself (e.g. after
``rabbitmqctl close_all_connections``). Retries can duplicate a message: every
consumer deduplicates on ``message_id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from aiormq import spec

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not confirm a message (nack, returned, timeout, connection lost)."""

    code = "BUS_PUBLISH_FAILED"


class BrokerUnavailable(Exception):
    code = "BUS_UNAVAILABLE"


class ConfirmedPublisher:
    def __init__(self, url: str, *, timeout: float = 10.0, name: str = "edoc-gateway") -> None:
        self._url = url
        self._timeout = timeout
        self._name = name
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._lock = asyncio.Lock()

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BrokerUnavailable("publisher is not connected")
        return self._connection

    async def connect(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(
                self._url, client_properties={"connection_name": self._name}, timeout=10
            )
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            raise BrokerUnavailable(f"cannot connect to RabbitMQ: {exc}") from exc
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = None
        self._exchanges.clear()

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed and (
            self._channel is not None and not self._channel.is_closed
        )

    async def channel(self) -> AbstractRobustChannel:
        if self._channel is None:
            raise BrokerUnavailable("publisher is not connected")
        return self._channel

    async def _exchange(self, name: str) -> AbstractExchange:
        if name == "":
            return (await self.channel()).default_exchange
        exchange = self._exchanges.get(name)
        if exchange is None:
            async with self._lock:
                exchange = self._exchanges.get(name)
                if exchange is None:
                    exchange = await (await self.channel()).get_exchange(name, ensure=False)
                    self._exchanges[name] = exchange
        return exchange

    async def publish(self, exchange: str, routing_key: str, body: bytes, *,
                      message_id: str, headers: dict[str, Any] | None = None,
                      content_type: str = "application/json",
                      correlation_id: str | None = None) -> None:
        """Publish once and wait for the broker's confirm; raise :class:`PublishError` otherwise."""
        message = aio_pika.Message(
            body,
            message_id=message_id,
            headers=headers or {},
            content_type=content_type,
            correlation_id=correlation_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            target = await self._exchange(exchange)
            confirmation = await target.publish(message, routing_key, mandatory=True,
                                                timeout=self._timeout)
        except PublishError:
            raise
        except TimeoutError as exc:
            raise PublishError(f"no confirm within {self._timeout}s") from exc
        except Exception as exc:  # aiormq/aio-pika raise many classes for one failure
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc
        # aiormq raises on Nack/Return; anything but an Ack here is a refusal too.
        if not isinstance(confirmation, spec.Basic.Ack):
            raise PublishError(f"broker did not acknowledge the message ({confirmation!r})")

    async def publish_confirmed(self, exchange: str, routing_key: str, body: bytes, *,
                                message_id: str, deadline: float | None = 60.0,
                                **kw: Any) -> int:
        """Publish until confirmed; return the number of attempts. Raise after ``deadline`` s."""
        loop = asyncio.get_running_loop()
        give_up = None if deadline is None else loop.time() + deadline
        attempt = 0
        delay = 0.05
        while True:
            attempt += 1
            try:
                await self.publish(exchange, routing_key, body, message_id=message_id, **kw)
                return attempt
            except (PublishError, BrokerUnavailable) as exc:
                if give_up is not None and loop.time() + delay > give_up:
                    raise PublishError(f"not confirmed after {attempt} attempts: {exc}") from exc
                log.warning("publish not confirmed, retrying",
                            extra={"attempt": attempt, "error": str(exc), "message_id": message_id})
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)

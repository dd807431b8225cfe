"""RabbitMQ topology, declared idempotently at start with explicit arguments.

Names (``P`` is the configured prefix, one per deployment or test run):

=========================  ==========================================================
``P.work``                 durable direct exchange for work
``P.agency.<code>``        quorum queue per served agency, bound with ``agency.<code>``
``P.dead``                 direct exchange for dead letters
``P.agency.<code>.dead``   quorum dead-letter queue per agency, bound with ``dead.<code>``
``P.retry.<ms>ms``         fanout exchange + quorum queue per retry delay (named by the
                           delay, so changing the ladder never conflicts with queues that
                           exist); the queue's ``x-message-ttl`` is that delay and it
                           dead-letters back to ``P.work`` keeping the routing key
``P.outcomes``             quorum queue of outcomes/statuses reported by adapters,
                           bound to ``P.work`` with ``outcomes``
=========================  ==========================================================

Agency queues carry ``x-delivery-limit`` (a message that keeps crashing its consumer is
dead-lettered), ``x-dead-letter-strategy=at-least-once`` (needs ``x-overflow=reject-publish``)
and ``x-max-length`` (a full queue refuses publishes instead of dropping: the publisher
gets a nack and the outbox keeps the row). Works on RabbitMQ 3.10 and 4.x.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel

OUTCOMES_ROUTING_KEY = "outcomes"


@dataclass(frozen=True)
class Topology:
    prefix: str
    agencies: tuple[str, ...] = ()
    delivery_limit: int = 5
    max_length: int = 100_000
    retry_delays: tuple[float, ...] = field(default=(5.0, 30.0, 300.0))

    @property
    def work_exchange(self) -> str:
        return f"{self.prefix}.work"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def outcomes_queue(self) -> str:
        return f"{self.prefix}.outcomes"

    def agency_queue(self, code: str) -> str:
        return f"{self.prefix}.agency.{code}"

    def dead_queue(self, code: str) -> str:
        return f"{self.prefix}.agency.{code}.dead"

    @staticmethod
    def agency_routing_key(code: str) -> str:
        return f"agency.{code}"

    @staticmethod
    def dead_routing_key(code: str) -> str:
        return f"dead.{code}"

    def retry_exchange(self, step: int) -> str:
        """Exchange of the ``step``-th retry (0-based), named after its delay."""
        return f"{self.prefix}.retry.{int(self.retry_delays[step] * 1000)}ms"

    def retry_queue(self, step: int) -> str:
        return self.retry_exchange(step)

    def agency_queue_arguments(self, code: str) -> dict[str, object]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-routing-key": self.dead_routing_key(code),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-max-length": self.max_length,
        }

    def retry_queue_arguments(self, step: int) -> dict[str, object]:
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": int(self.retry_delays[step] * 1000),
            "x-dead-letter-exchange": self.work_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def queue_names(self) -> list[str]:
        names = [self.outcomes_queue]
        for code in self.agencies:
            names += [self.agency_queue(code), self.dead_queue(code)]
        names += [self.retry_queue(i) for i in range(len(self.retry_delays))]
        return names

    def exchange_names(self) -> list[str]:
        return [self.work_exchange, self.dead_exchange] + [
            self.retry_exchange(i) for i in range(len(self.retry_delays))
        ]


_QUORUM = {"x-queue-type": "quorum"}


class TopologyConflict(Exception):
    """A queue or exchange exists on the broker with other arguments than configured."""

    code = "BUS_TOPOLOGY_CONFLICT"


async def declare(channel: AbstractChannel, topology: Topology) -> None:
    """Declare every exchange, queue and binding; safe to run again with the same arguments.

    Raises :class:`TopologyConflict` (one clear line) when the broker already has a queue of
    the same name with other arguments, e.g. after ``x-delivery-limit`` was changed.
    """
    try:
        await _declare(channel, topology)
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyConflict(
            f"RabbitMQ refused the topology ({exc.args[0] if exc.args else exc}): a queue "
            "exists with other arguments; drain and delete it, or restore the old setting"
        ) from None


async def _declare(channel: AbstractChannel, topology: Topology) -> None:
    durable = {"durable": True}
    work = await channel.declare_exchange(topology.work_exchange, aio_pika.ExchangeType.DIRECT,
                                          **durable)
    dead = await channel.declare_exchange(topology.dead_exchange, aio_pika.ExchangeType.DIRECT,
                                          **durable)
    outcomes = await channel.declare_queue(topology.outcomes_queue, arguments=dict(_QUORUM),
                                           **durable)
    await outcomes.bind(work, OUTCOMES_ROUTING_KEY)
    for step in range(len(topology.retry_delays)):
        exchange = await channel.declare_exchange(
            topology.retry_exchange(step), aio_pika.ExchangeType.FANOUT, **durable)
        queue = await channel.declare_queue(
            topology.retry_queue(step), arguments=topology.retry_queue_arguments(step), **durable)
        await queue.bind(exchange, "")
    for code in topology.agencies:
        await declare_agency(channel, topology, code, work=work, dead=dead)


async def declare_agency(channel: AbstractChannel, topology: Topology, code: str, *,
                         work=None, dead=None) -> None:
    work = work or await channel.get_exchange(topology.work_exchange)
    dead = dead or await channel.get_exchange(topology.dead_exchange)
    queue = await channel.declare_queue(topology.agency_queue(code),
                                        arguments=topology.agency_queue_arguments(code),
                                        durable=True)
    await queue.bind(work, topology.agency_routing_key(code))
    dlq = await channel.declare_queue(topology.dead_queue(code), arguments=dict(_QUORUM),
                                      durable=True)
    await dlq.bind(dead, topology.dead_routing_key(code))


async def delete(channel: AbstractChannel, topology: Topology) -> None:
    """Remove everything :func:`declare` made (test clean-up)."""
    for name in topology.queue_names():
        await channel.queue_delete(name)
    for name in topology.exchange_names():
        await channel.exchange_delete(name)

"""Fixtures for adapter tests: a fresh topology per test on the real RabbitMQ."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aio_pika.abc import AbstractChannel

from gateway.bus import topology as topo
from gateway.bus.publisher import ConfirmedPublisher
from tests.adapters.helpers import AGENCY, OutcomeLog
from tests.conftest import AMQP_URL

_counter = itertools.count(1)


@dataclass
class Bus:
    topology: topo.Topology
    channel: AbstractChannel
    publisher: ConfirmedPublisher
    outcomes: OutcomeLog


@pytest.fixture
async def bus(amqp, bus_prefix: str) -> AsyncIterator[Bus]:
    """Topology ``<run prefix>ad<n>`` with a 2-step ladder of 0.2 s, deleted afterwards."""
    t = topo.Topology(prefix=f"{bus_prefix}ad{next(_counter)}", agencies=(AGENCY,),
                      retry_delays=(0.2, 0.2), delivery_limit=5)
    channel = await amqp.channel()
    await topo.declare(channel, t)
    publisher = ConfirmedPublisher(AMQP_URL, name="adapter-tests", timeout=5.0)
    await publisher.connect()
    try:
        yield Bus(t, channel, publisher, OutcomeLog(channel, t.outcomes_queue))
    finally:
        await publisher.close()
        await topo.delete(channel, t)
        await channel.close()

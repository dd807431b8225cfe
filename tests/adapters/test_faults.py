"""Broker faults mid-stream: every document reaches the eOffice exactly once.

Connections are closed with ``rabbitmqctl close_connection`` — only this test's own
connections (found by name), so engineers sharing the broker are not disturbed.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid

import pytest

from adapters.eoffice_sim import EOfficeSimulator
from adapters.sdk import AdapterRunner, MemoryDedupStore
from adapters.webhook import WebhookAdapter
from gateway.bus.publisher import ConfirmedPublisher
from tests.adapters.helpers import AGENCY, delivery_message, publish_delivery
from tests.conftest import AMQP_URL, wait_for

SECRET = b"fault-secret"
pytestmark = pytest.mark.skipif(shutil.which("rabbitmqctl") is None,
                                reason="needs rabbitmqctl on this machine")


async def connections_named(tag: str) -> list[str]:
    """Pids of the broker connections whose client properties mention ``tag``."""
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "list_connections", "pid", "client_properties",
        "--no-table-headers", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    return [line.split("\t", 1)[0] for line in out.decode().splitlines() if tag in line]


async def close_connections_named(tag: str) -> int:
    """Close every broker connection whose client properties mention ``tag``."""
    pids = await connections_named(tag)
    for pid in pids:
        closer = await asyncio.create_subprocess_exec(
            "rabbitmqctl", "-q", "close_connection", pid, "adapter fault test",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await closer.wait()
    return len(pids)


async def _at_least(pids, n: int) -> bool:
    return len(await pids) >= n


async def test_closed_connections_mid_stream_deliver_everything_exactly_once(bus):
    tag = f"adfault-{uuid.uuid4().hex[:8]}"
    total = 60
    producer = ConfirmedPublisher(AMQP_URL, name=f"{tag} producer", timeout=5.0)
    await producer.connect()
    async with EOfficeSimulator(SECRET, answer=None, latency=0.2) as sim:
        adapter = WebhookAdapter(sim.url, SECRET, timeout=5)
        runner = AdapterRunner(adapter, amqp_url=AMQP_URL, topology=bus.topology, agency=AGENCY,
                               gateway_token=None, dedup=MemoryDedupStore(), prefetch=4,
                               publish_deadline=30.0, connection_name=f"{tag} adapter")
        await runner.start()
        messages = [delivery_message(files={"vb.pdf": f"%PDF {i}".encode()}, inline=True)
                    for i in range(total)]

        async def produce() -> None:
            for msg in messages:
                await publish_delivery(producer, bus.topology, msg)
                await asyncio.sleep(0.02)

        producing = asyncio.create_task(produce())
        try:
            await wait_for(lambda: sim.accepted >= 5, timeout=20)
            closed = await close_connections_named(tag)
            assert closed >= 3  # producer, adapter consumer, adapter publisher
            await wait_for(lambda: sim.accepted >= total // 2, timeout=30)
            # all three reconnected (robust connections retry every few seconds)
            await wait_for(lambda: _at_least(connections_named(tag), 3), timeout=30,
                           interval=0.5)
            assert await close_connections_named(tag) >= 3
            await producing
            await wait_for(lambda: sim.accepted == total, timeout=60, interval=0.2)
            await wait_for(lambda: runner.stats.delivered + runner.stats.duplicates >= total,
                           timeout=30)
        finally:
            producing.cancel()
            await runner.stop()
            await adapter.close()
            await producer.close()
    assert sim.accepted == total
    assert set(sim.documents) == {m["message_id"] for m in messages}
    await bus.outcomes.poll()
    delivered = {o["message_id"] for o in bus.outcomes.items if o["outcome"] == "delivered"}
    assert delivered == {m["message_id"] for m in messages}

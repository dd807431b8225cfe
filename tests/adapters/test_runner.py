"""The runner against the real RabbitMQ: ack, dedup, retry ladder, dead letters."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import pytest

from adapters.eoffice_sim import EOfficeSimulator
from adapters.sdk import (
    AdapterRunner,
    Delivery,
    DeliveryReceipt,
    MemoryDedupStore,
    PermanentDeliveryError,
)
from adapters.webhook import WebhookAdapter
from tests.adapters.helpers import AGENCY, FileServer, delivery_message, drain, publish_delivery
from tests.conftest import AMQP_URL, wait_for

SECRET = b"test-webhook-secret"


class Recorder:
    """An adapter that records deliveries; ``fail`` decides per delivery."""

    kind = "recorder"

    def __init__(self, fail=None) -> None:
        self.seen: list[Delivery] = []
        self.fail = fail

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt | None:
        self.seen.append(delivery)
        if self.fail is not None:
            self.fail(delivery)
        return DeliveryReceipt(reference=f"R-{len(self.seen)}")


@asynccontextmanager
async def running(adapter, bus, *, dedup=None, token=None, prefetch=8):
    dedup = MemoryDedupStore() if dedup is None else dedup  # an empty store is falsy
    runner = AdapterRunner(adapter, amqp_url=AMQP_URL, topology=bus.topology, agency=AGENCY,
                           gateway_token=token, dedup=dedup,
                           prefetch=prefetch, publish_deadline=20.0)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def queue_depth(bus, name: str) -> int:
    q = await bus.channel.declare_queue(name, passive=True)
    return q.declaration_result.message_count


async def test_delivered_once_acked_and_reported(bus):
    adapter = Recorder()
    msg = delivery_message(files={"a.pdf": b"%PDF-1 a"}, inline=True)
    async with running(adapter, bus) as runner:
        await publish_delivery(bus.publisher, bus.topology, msg)
        await wait_for(lambda: runner.stats.delivered == 1)
        outcomes = await wait_for(bus.outcomes.poll)
    assert len(adapter.seen) == 1
    got = adapter.seen[0]
    assert got.message_id == msg["message_id"] and got.attempt == 1
    assert await got.fetch_attachment(got.attachments[0]) == b"%PDF-1 a"
    [outcome] = outcomes
    assert outcome["schema"] == "edoc.outcome/1" and outcome["outcome"] == "delivered"
    assert outcome["delivery_id"] == msg["delivery_id"]
    assert outcome["document_id"] == msg["document_id"]
    assert outcome["eoffice_reference"] == "R-1" and outcome["attempt"] == 1
    assert outcome["adapter"] == f"recorder:{AGENCY}"
    assert outcome["_correlation_id"] == msg["correlation_id"]
    assert await queue_depth(bus, bus.topology.agency_queue(AGENCY)) == 0  # acked


async def test_same_message_id_twice_delivered_once(bus):
    adapter = Recorder()
    msg = delivery_message()
    async with running(adapter, bus) as runner:
        await publish_delivery(bus.publisher, bus.topology, msg)
        await publish_delivery(bus.publisher, bus.topology, msg)
        await wait_for(lambda: runner.stats.delivered + runner.stats.duplicates == 2)
    assert len(adapter.seen) == 1
    assert runner.stats.duplicates == 1


async def test_dedup_survives_a_runner_restart(bus, tmp_path):
    from adapters.dedup import SqliteDedupStore

    adapter = Recorder()
    msg = delivery_message()
    store = SqliteDedupStore(tmp_path / "dedup.sqlite3")
    async with running(adapter, bus, dedup=store) as runner:
        await publish_delivery(bus.publisher, bus.topology, msg)
        await wait_for(lambda: runner.stats.delivered == 1)
    store.close()
    store = SqliteDedupStore(tmp_path / "dedup.sqlite3")
    async with running(adapter, bus, dedup=store) as runner:
        await publish_delivery(bus.publisher, bus.topology, msg)
        await wait_for(lambda: runner.stats.duplicates == 1)
    store.close()
    assert len(adapter.seen) == 1


async def test_eoffice_failing_first_requests_walks_the_ladder_then_delivers(bus):
    async with EOfficeSimulator(SECRET, answer=None, fail_first=2) as sim:
        adapter = WebhookAdapter(sim.url, SECRET, timeout=5)
        msg = delivery_message(files={"cv.pdf": b"%PDF-1.7 body"}, inline=True)
        async with running(adapter, bus) as runner:
            await publish_delivery(bus.publisher, bus.topology, msg)
            await wait_for(lambda: runner.stats.delivered == 1, timeout=20)
        await adapter.close()
        await bus.outcomes.poll()
        assert sim.accepted == 1 and sim.received == 3 and sim.duplicates == 0
    outcomes = [o for o in bus.outcomes.items if o["message_id"] == msg["message_id"]]
    assert [o["outcome"] for o in outcomes] == ["retrying", "retrying", "delivered"]
    assert [o["attempt"] for o in outcomes] == [1, 2, 3]
    assert outcomes[0]["next_at"] and "503" in outcomes[0]["error"]
    assert outcomes[2]["eoffice_reference"] == "EO-000001"
    doc = sim.documents[msg["message_id"]]
    assert doc.document_id == msg["document_id"] and doc.agency == AGENCY
    assert doc.attachments[0].sha256_ok


async def test_always_failing_goes_to_the_dead_queue(bus):
    async with EOfficeSimulator(SECRET, answer=None) as sim:
        sim.down = True
        adapter = WebhookAdapter(sim.url, SECRET, timeout=5)
        msg = delivery_message()
        async with running(adapter, bus) as runner:
            await publish_delivery(bus.publisher, bus.topology, msg)
            await wait_for(lambda: runner.stats.dead == 1, timeout=20)
        await adapter.close()
    await bus.outcomes.poll()
    assert bus.outcomes.of(msg["message_id"]) == ["retrying", "retrying", "dead"]
    dead = await wait_for(lambda: drain(bus.channel, bus.topology.dead_queue(AGENCY)))
    assert len(dead) == 1
    assert dead[0].message_id == msg["message_id"]
    assert dead[0].correlation_id == msg["correlation_id"]
    assert json.loads(dead[0].body) == msg
    assert dead[0].headers["x-attempt"] == 3 and "503" in dead[0].headers["x-last-error"]
    assert dead[0].headers["x-delivery-id"] == msg["delivery_id"]


async def test_permanent_error_dead_letters_at_once(bus):
    def refuse(_delivery):
        raise PermanentDeliveryError("eOffice refused", code="TEST_REFUSED")

    adapter = Recorder(fail=refuse)
    msg = delivery_message()
    async with running(adapter, bus) as runner:
        await publish_delivery(bus.publisher, bus.topology, msg)
        await wait_for(lambda: runner.stats.dead == 1)
    await bus.outcomes.poll()
    [outcome] = bus.outcomes.items
    assert outcome["outcome"] == "dead" and "TEST_REFUSED" in outcome["error"]
    assert len(adapter.seen) == 1
    dead = await wait_for(lambda: drain(bus.channel, bus.topology.dead_queue(AGENCY)))
    assert dead[0].headers["x-error-code"] == "TEST_REFUSED"


async def test_unparsable_messages_go_to_the_dead_queue_with_a_clear_error(bus):
    adapter = Recorder()
    good_ids = delivery_message()
    async with running(adapter, bus) as runner:
        await bus.publisher.publish_confirmed(
            bus.topology.work_exchange, bus.topology.agency_routing_key(AGENCY), b"{not json",
            message_id="m-not-json",
            headers={"x-delivery-id": good_ids["delivery_id"],
                     "x-document-id": good_ids["document_id"]})
        bad_schema = delivery_message()
        del bad_schema["attachments"]
        await publish_delivery(bus.publisher, bus.topology, bad_schema)
        other_agency = delivery_message(agency="000.00.99.H99")
        await publish_delivery(bus.publisher, bus.topology, other_agency)
        await wait_for(lambda: runner.stats.dead == 3)
    assert adapter.seen == []
    dead = {m.message_id: m for m in await drain(bus.channel, bus.topology.dead_queue(AGENCY))}
    assert set(dead) == {"m-not-json", bad_schema["message_id"], other_agency["message_id"]}
    assert dead["m-not-json"].body == b"{not json"
    assert "not JSON" in dead["m-not-json"].headers["x-last-error"]
    assert dead["m-not-json"].headers["x-error-code"] == "MESSAGE_INVALID"
    assert "attachments" in dead[bad_schema["message_id"]].headers["x-last-error"]
    assert dead[other_agency["message_id"]].headers["x-error-code"] == "MESSAGE_WRONG_AGENCY"
    await bus.outcomes.poll()
    by_delivery = {o["delivery_id"]: o for o in bus.outcomes.items}
    assert by_delivery[good_ids["delivery_id"]]["outcome"] == "dead"  # ids from the headers
    assert by_delivery[bad_schema["delivery_id"]]["outcome"] == "dead"


async def test_attachment_sha256_mismatch_is_transient(bus):
    async with FileServer({"a.pdf": b"the real bytes"}) as files:

        async def fetch_all(delivery):
            for att in delivery.attachments:
                await delivery.fetch_attachment(att)

        class Fetching(Recorder):
            async def deliver(self, delivery):
                await fetch_all(delivery)
                return await super().deliver(delivery)

        adapter = Fetching()
        msg = delivery_message(files={"a.pdf": b"the real bytes"}, base_url=files.base_url,
                               announce={"a.pdf": b"other bytes!!!"})
        good = delivery_message(files={"a.pdf": b"the real bytes"}, base_url=files.base_url)
        async with running(adapter, bus, token="tok-123") as runner:
            await publish_delivery(bus.publisher, bus.topology, msg)
            await publish_delivery(bus.publisher, bus.topology, good)
            await wait_for(lambda: runner.stats.dead == 1 and runner.stats.delivered == 1,
                           timeout=20)
        assert set(files.auth) == {"Bearer tok-123"}
    await bus.outcomes.poll()
    assert bus.outcomes.of(msg["message_id"]) == ["retrying", "retrying", "dead"]
    assert "sha256" in next(o for o in bus.outcomes.items if o["outcome"] == "dead")["error"]
    assert bus.outcomes.of(good["message_id"]) == ["delivered"]


async def test_concurrent_duplicates_are_serialised(bus):
    """Two copies of one id in hand at once: the second waits and is suppressed."""
    gate = asyncio.Event()

    class Slow(Recorder):
        async def deliver(self, delivery):
            await gate.wait()
            return await super().deliver(delivery)

    adapter = Slow()
    msg = delivery_message()
    async with running(adapter, bus) as runner:
        await publish_delivery(bus.publisher, bus.topology, msg)
        await publish_delivery(bus.publisher, bus.topology, msg)
        await asyncio.sleep(0.3)
        gate.set()
        await wait_for(lambda: runner.stats.delivered + runner.stats.duplicates == 2)
    assert len(adapter.seen) == 1


async def test_runner_failing_on_a_message_dead_letters_it_on_the_last_delivery(bus):
    """Not an adapter error (those walk the ladder) but the runner itself failing (here its
    dedup store): requeued until the queue's delivery limit, then dead-lettered by the runner
    with a ``dead`` outcome, not silently by the broker."""

    class BrokenStore(MemoryDedupStore):
        def seen(self, message_id: str) -> bool:
            raise RuntimeError("dedup database unreadable")

    adapter = Recorder()
    msg = delivery_message()
    async with running(adapter, bus, dedup=BrokenStore()) as runner:
        await publish_delivery(bus.publisher, bus.topology, msg)
        await wait_for(lambda: runner.stats.dead == 1, timeout=20)
        assert runner.stats.requeued == bus.topology.delivery_limit
    await bus.outcomes.poll()
    assert bus.outcomes.of(msg["message_id"]) == ["dead"]
    [outcome] = bus.outcomes.items
    assert "ADAPTER_RUNNER_FAILED" in outcome["error"] and "unreadable" in outcome["error"]
    dead = await wait_for(lambda: drain(bus.channel, bus.topology.dead_queue(AGENCY)))
    assert len(dead) == 1 and dead[0].message_id == msg["message_id"]
    assert dead[0].headers["x-error-code"] == "ADAPTER_RUNNER_FAILED"
    assert adapter.seen == []


@pytest.mark.parametrize("blocking", [False, True])
async def test_remember_leaves_the_loop_only_for_a_blocking_store(bus, blocking):
    """A store whose ``remember`` waits for a disk is called in a thread; an in-memory one on
    the event loop (a thread hop per message for a set insertion would be pure cost)."""
    import threading

    class Recording(MemoryDedupStore):
        def __init__(self) -> None:
            super().__init__()
            self.blocking = blocking
            self.threads: list[int] = []

        def remember(self, message_id: str) -> None:
            self.threads.append(threading.get_ident())
            super().remember(message_id)

    store = Recording()
    async with running(Recorder(), bus, dedup=store) as runner:
        await publish_delivery(bus.publisher, bus.topology, delivery_message())
        await wait_for(lambda: runner.stats.delivered == 1)
    on_loop = store.threads == [threading.get_ident()]
    assert len(store.threads) == 1 and on_loop is not blocking

import asyncio
import json
import subprocess
import uuid

import aio_pika
import pytest

from gateway.bus import topology as topo
from gateway.bus.publisher import ConfirmedPublisher, PublishError
from gateway.bus.relay import OutboxRelay
from gateway.db.outbox import AMQP, OutboxMessage, enqueue
from gateway.db.pool import create_pool
from tests.conftest import AMQP_URL, wait_for


@pytest.fixture
async def bus(settings):
    t = topo.Topology(prefix=settings.bus.prefix + "b", agencies=("A1", "A2"),
                      delivery_limit=2, retry_delays=(0.2,))
    pub = ConfirmedPublisher(AMQP_URL, timeout=5)
    await pub.connect()
    channel = await pub.channel()
    await topo.declare(channel, t)
    yield t, pub
    await topo.delete(await pub.channel(), t)
    await pub.close()


async def drain(connection, queue_name: str, expect: int, within: float = 10) -> list:
    channel = await connection.channel()
    queue = await channel.get_queue(queue_name, ensure=False)
    got: list = []

    async def take():
        while len(got) < expect:
            msg = await queue.get(no_ack=False, fail=False, timeout=5)
            if msg is None:
                await asyncio.sleep(0.05)
                continue
            got.append(msg)
            await msg.ack()

    await asyncio.wait_for(take(), within)
    await asyncio.sleep(0.2)
    extra = await queue.get(no_ack=True, fail=False)
    assert extra is None, "more messages than expected"
    await channel.close()
    return got


async def test_topology_redeclare_is_idempotent(bus, amqp):
    t, pub = bus
    await topo.declare(await pub.channel(), t)  # same arguments: no error
    channel = await amqp.channel()
    q = await channel.declare_queue(t.agency_queue("A1"), passive=True)
    assert q.name == t.agency_queue("A1")
    # an unroutable message is refused, not lost silently
    with pytest.raises(PublishError):
        await pub.publish(t.work_exchange, "agency.unknown", b"{}", message_id="x")
    await channel.close()


async def test_retry_queue_dead_letters_back_to_agency_queue(bus, amqp):
    t, pub = bus
    await pub.publish(t.retry_exchange(0), t.agency_routing_key("A2"), b'{"n":1}',
                      message_id="retry-1")
    got = await drain(amqp, t.agency_queue("A2"), 1)
    assert got[0].message_id == "retry-1"
    assert got[0].routing_key == t.agency_routing_key("A2")


async def test_delivery_limit_dead_letters(bus, amqp):
    t, pub = bus
    await pub.publish(t.work_exchange, t.agency_routing_key("A1"), b"{}", message_id="poison")
    channel = await amqp.channel()
    queue = await channel.get_queue(t.agency_queue("A1"), ensure=False)
    for _ in range(3):  # delivery limit 2: the third return dead-letters it
        msg = await wait_for(lambda: queue.get(no_ack=False, fail=False))
        await msg.reject(requeue=True)
        await asyncio.sleep(0.1)
    dead = await drain(amqp, t.dead_queue("A1"), 1)
    assert dead[0].message_id == "poison"
    await channel.close()


async def test_relay_publishes_exactly_the_committed_rows(bus, amqp, db, database_url):
    t, pub = bus
    committed = [uuid.uuid4() for _ in range(25)]
    async with db.transaction():
        await enqueue(db, *[OutboxMessage.json(AMQP, {"i": i}, exchange=t.work_exchange,
                                               routing_key=t.agency_routing_key("A1"),
                                               message_id=m)
                            for i, m in enumerate(committed)])
    rolled_back = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await enqueue(db, OutboxMessage.json(AMQP, {"i": -1}, exchange=t.work_exchange,
                                                 routing_key=t.agency_routing_key("A1"),
                                                 message_id=rolled_back))
            raise RuntimeError("business failure after writing the outbox row")
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        relay = OutboxRelay(pool, pub, batch_size=10)
        assert await relay.drain() == 25
    finally:
        await pool.close()
    got = await drain(amqp, t.agency_queue("A1"), 25)
    assert sorted(m.message_id for m in got) == sorted(str(m) for m in committed)
    assert [json.loads(m.body)["i"] for m in got] == list(range(25))  # in commit order
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_polling_relay_sends_rows_nobody_woke_it_for(bus, amqp, db, database_url):
    """Without a listener or a wake-up, the poll timer's pass (which first asks whether
    anything is due) still sends what is committed, and a row rescheduled for later once it
    falls due."""
    t, pub = bus
    pool = await create_pool(database_url, min_size=1, max_size=2)
    stop = asyncio.Event()
    relay = OutboxRelay(pool, pub, poll_interval=0.05)
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.2)  # a few empty timer passes first
        first, later = uuid.uuid4(), uuid.uuid4()
        async with db.transaction():
            await enqueue(db, OutboxMessage.json(AMQP, {"i": 1}, exchange=t.work_exchange,
                                                 routing_key=t.agency_routing_key("A1"),
                                                 message_id=first))
            await enqueue(db, OutboxMessage.json(AMQP, {"i": 2}, exchange=t.work_exchange,
                                                 routing_key=t.agency_routing_key("A1"),
                                                 message_id=later))
            await db.execute("UPDATE outbox SET available_at = now() + interval '0.4 s'"
                             " WHERE message_id = $1", later)
        got = await drain(amqp, t.agency_queue("A1"), 2)
        assert [m.message_id for m in got] == [str(first), str(later)]
        assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        stop.set()
        await task
        await pool.close()


async def test_unconfirmed_rows_stay_in_outbox(bus, db, database_url):
    t, pub = bus
    async with db.transaction():
        await enqueue(db, OutboxMessage.json(AMQP, {}, exchange=t.work_exchange,
                                             routing_key="agency.nobody"))
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        relay = OutboxRelay(pool, pub)
        assert await relay.run_once() == 0
    finally:
        await pool.close()
    row = await db.fetchrow(
        "SELECT attempts, last_error, available_at > now() AS later FROM outbox")
    assert row["attempts"] == 1 and row["later"] and row["last_error"]


async def test_publish_retries_until_confirmed_after_connections_closed(bus, amqp):
    t, pub = bus
    await pub.publish_confirmed(t.work_exchange, t.agency_routing_key("A2"), b"{}",
                                message_id="before")
    await asyncio.to_thread(
        subprocess.run, ["rabbitmqctl", "close_all_connections", "test: simulated network cut"],
        check=True, capture_output=True, timeout=60)
    attempts = await pub.publish_confirmed(t.work_exchange, t.agency_routing_key("A2"), b"{}",
                                           message_id="after", deadline=60)
    assert attempts >= 1
    conn = await aio_pika.connect_robust(AMQP_URL)
    try:
        got = await drain(conn, t.agency_queue("A2"), 2, within=20)
    finally:
        await conn.close()
    assert {m.message_id for m in got} == {"before", "after"}


async def test_changed_queue_arguments_give_one_clear_error(bus):
    t, _pub = bus
    changed = topo.Topology(prefix=t.prefix, agencies=t.agencies, delivery_limit=9,
                            retry_delays=t.retry_delays)
    async with await aio_pika.connect(AMQP_URL) as conn:
        with pytest.raises(topo.TopologyConflict, match="x-delivery-limit"):
            await topo.declare(await conn.channel(), changed)
    # a new retry ladder gets new queues instead of a conflict
    relaxed = topo.Topology(prefix=t.prefix, agencies=t.agencies, delivery_limit=2,
                            retry_delays=(0.2, 7.0))
    async with await aio_pika.connect(AMQP_URL) as conn:
        channel = await conn.channel()
        await topo.declare(channel, relaxed)
        await channel.queue_delete(relaxed.retry_queue(1))
        await channel.exchange_delete(relaxed.retry_exchange(1))


async def test_axis_rows_of_one_document_leave_in_order_even_after_a_failure(db, database_url):
    doc, other = uuid.uuid4(), uuid.uuid4()
    for body, document in ((b"01", doc), (b"03", doc), (b"E01", other), (b"05", doc)):
        async with db.transaction():
            await enqueue(db, OutboxMessage("axis:t", body, document_id=document))
    sent: list[bytes] = []
    failures = {b"01": 1}

    async def send(row) -> None:
        body = bytes(row["body"])
        if failures.get(body):
            failures[body] -= 1
            raise RuntimeError("axis timeout")
        sent.append(body)

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        relay = OutboxRelay(pool, send, destination="axis:t", in_document_order=True)
        await relay.run_once()
        assert sent == [b"E01"]  # 01 failed: 03 and 05 of the same document must wait
        await relay.run_once()
        assert sent == [b"E01"]
        await wait_for(lambda: _drained(relay, sent, 4), timeout=15, interval=0.2)
    finally:
        await pool.close()
    assert [b for b in sent if not b.startswith(b"E")] == [b"01", b"03", b"05"]


async def _drained(relay, sent, n) -> bool:
    await relay.run_once()
    return len(sent) >= n

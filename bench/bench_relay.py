"""Outbox relay throughput against a bare confirmed-publish loop (issue 2 target: >= 80%).

Both runs publish the same number of 10 KB persistent messages to the same quorum queue
through the same ConfirmedPublisher, in batches of the same size. The relay also reads the
committed rows from PostgreSQL and deletes them after the broker's confirms.

    .venv/bin/python bench/bench_relay.py [--messages 5000] [--batch 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import aio_pika

from gateway.bus import topology as topo
from gateway.bus.publisher import ConfirmedPublisher
from gateway.bus.relay import OutboxRelay
from gateway.db.migrate import migrate
from gateway.db.outbox import AMQP, OutboxMessage, enqueue
from gateway.db.pool import connect, create_pool, drop_database, ensure_database, with_database

PG = os.environ.get("EDOC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("EDOC_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


async def purge(t: topo.Topology) -> None:
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel()
    q = await ch.get_queue(t.agency_queue("BENCH"), ensure=False)
    await q.purge()
    await conn.close()


async def bare_loop(pub: ConfirmedPublisher, t: topo.Topology, n: int, batch: int,
                    body: bytes) -> float:
    start = time.perf_counter()
    for i in range(0, n, batch):
        await asyncio.gather(*(
            pub.publish(t.work_exchange, t.agency_routing_key("BENCH"), body,
                        message_id=str(uuid.uuid4()), headers={})
            for _ in range(min(batch, n - i))))
    return time.perf_counter() - start


async def relay_run(pool, pub, t, n, batch, body, dsn) -> float:
    conn = await connect(dsn)
    msgs = [OutboxMessage(AMQP, body, exchange=t.work_exchange,
                          routing_key=t.agency_routing_key("BENCH")) for _ in range(n)]
    for i in range(0, n, 1000):
        async with conn.transaction():
            await enqueue(conn, *msgs[i:i + 1000])
    await conn.close()
    relay = OutboxRelay(pool, pub, batch_size=batch)
    start = time.perf_counter()
    moved = await relay.drain()
    elapsed = time.perf_counter() - start
    assert moved == n, (moved, n)
    return elapsed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    dsn = with_database(PG, f"edoc_bench_{uuid.uuid4().hex[:6]}")
    await ensure_database(dsn)
    conn = await connect(dsn)
    await migrate(conn)
    await conn.close()
    t = topo.Topology(prefix=f"bench{uuid.uuid4().hex[:6]}", agencies=("BENCH",),
                      max_length=10_000_000)
    pub = ConfirmedPublisher(AMQP_URL, timeout=30)
    await pub.connect()
    await topo.declare(await pub.channel(), t)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    body = os.urandom(7500).hex().encode()[:10_240]
    try:
        bare, relay = [], []
        for _ in range(args.rounds):  # interleave to share the machine's noise
            bare.append(await bare_loop(pub, t, args.messages, args.batch, body))
            await purge(t)
            relay.append(await relay_run(pool, pub, t, args.messages, args.batch, body, dsn))
            await purge(t)
        b, r = min(bare), min(relay)
        print(f"messages={args.messages} size=10KB batch={args.batch} rounds={args.rounds}")
        print(f"bare confirmed publish : {args.messages / b:8.0f} msg/s")
        print(f"outbox relay           : {args.messages / r:8.0f} msg/s")
        print(f"ratio relay/bare       : {b / r:8.2f}  (target >= 0.80)")
    finally:
        await pool.close()
        await topo.delete(await pub.channel(), t)
        await pub.close()
        await drop_database(dsn)


if __name__ == "__main__":
    asyncio.run(main())

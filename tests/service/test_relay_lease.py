"""The outbox relay's leases: a row being sent is invisible to every other relay; a row of a
relay that died is sent again when its lease ends; a send that would outlive its lease is cut
off and rescheduled; a cancelled relay gives its rows back at once."""

from __future__ import annotations

import asyncio

import pytest

from gateway.bus.relay import LEASE_MARGIN, OutboxRelay
from gateway.db.outbox import OutboxMessage, enqueue
from gateway.db.pool import create_pool
from tests.conftest import wait_for

DEST = "axis:lease"


@pytest.fixture
async def pool(database_url):
    p = await create_pool(database_url, min_size=1, max_size=4)
    yield p
    await p.close()


async def _forever(row) -> None:
    await asyncio.sleep(3600)


async def _rows(db, n: int) -> list[bytes]:
    bodies = [f"m{i}".encode() for i in range(n)]
    async with db.transaction():
        await enqueue(db, *[OutboxMessage(DEST, b) for b in bodies])
    return bodies


async def test_two_relays_never_send_the_same_row(db, pool):
    bodies = await _rows(db, 30)
    sent: list[bytes] = []

    async def slow(row) -> None:
        await asyncio.sleep(0.05)  # both relays are mid-send at once
        sent.append(bytes(row["body"]))

    a = OutboxRelay(pool, slow, destination=DEST, batch_size=5, lease=30)
    b = OutboxRelay(pool, slow, destination=DEST, batch_size=5, lease=30)
    await asyncio.gather(a.drain(), b.drain())
    assert sorted(sent) == sorted(bodies)  # each exactly once
    assert a.stats.published and b.stats.published  # both did part of the work
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_rows_of_a_dead_relay_come_back_when_the_lease_ends(db, pool):
    await _rows(db, 2)
    lease = LEASE_MARGIN + 1.0
    dead = OutboxRelay(pool, _forever, destination=DEST, lease=lease)
    batch = await dead._claim()  # leased, sends in flight ...
    assert batch is not None and len(batch.rows) == 2
    for send in batch.sends:  # ... and the process dies: nothing is given back
        send.cancel()
    sent: list[bytes] = []

    async def send(row) -> None:
        sent.append(bytes(row["body"]))

    alive = OutboxRelay(pool, send, destination=DEST, lease=30)
    assert await alive.run_once() == 0  # still leased
    await wait_for(lambda: _relayed(alive, sent, 2), timeout=lease + 10, interval=0.2)
    assert sent == [b"m0", b"m1"]  # in row order
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_send_that_would_outlive_its_lease_is_cut_off_and_rescheduled(db, pool):
    await _rows(db, 1)
    lease = LEASE_MARGIN + 0.5
    relay = OutboxRelay(pool, _forever, destination=DEST, lease=lease)
    assert await asyncio.wait_for(relay.run_once(), lease + 5) == 0
    row = await db.fetchrow("SELECT attempts, last_error, available_at > now() AS later,"
                            " leased_until FROM outbox")
    assert row["attempts"] == 1 and row["later"] and row["leased_until"] is None
    assert "lease" in row["last_error"]
    assert relay.stats.failed == 1


async def test_a_cancelled_relay_gives_its_rows_back(db, pool):
    await _rows(db, 3)
    started = asyncio.Event()

    async def hang(row) -> None:
        started.set()
        await asyncio.sleep(3600)

    relay = OutboxRelay(pool, hang, destination=DEST, lease=600)
    task = asyncio.create_task(relay.run_once())
    await asyncio.wait_for(started.wait(), 10)
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE leased_until > now()") == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE leased_until IS NULL") == 3


async def test_a_lease_must_be_longer_than_its_margin(pool):
    with pytest.raises(ValueError, match="lease"):
        OutboxRelay(pool, _forever, destination=DEST, lease=LEASE_MARGIN)


async def _relayed(relay: OutboxRelay, sent: list, n: int) -> bool:
    await relay.run_once()
    return len(sent) >= n


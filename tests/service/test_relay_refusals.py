"""The axis relay and refusals (issue 13, "Send"): a row the axis refused for good leaves the
outbox at once and never holds back the rows after it; rows of one document to other receivers
never wait for each other. Before: every failure was rescheduled forever, and the relay's
document order (migration 0002) made the oldest row of a document block every later one.

Real PostgreSQL and the VDXP simulator over HTTP."""

from __future__ import annotations

import uuid

import pytest

from gateway.axis import make_axis_client
from gateway.axis.errors import AxisRejectedError, is_permanent
from gateway.axis.simulator import AxisSimulator
from gateway.bus.relay import OutboxRelay
from gateway.db.outbox import OutboxMessage, axis_destination, enqueue
from gateway.db.pool import create_pool
from gateway.demo.exchange import CITY, DISTRICT1, DISTRICT2
from gateway.outbound.axis_sender import axis_sender
from tests.axis import samples

DEST = axis_destination("refusals")


@pytest.fixture
async def pool(database_url):
    p = await create_pool(database_url, min_size=1, max_size=4)
    yield p
    await p.close()


@pytest.fixture
async def sim():
    async with AxisSimulator([CITY, DISTRICT1, DISTRICT2]) as s:
        yield s


@pytest.fixture
async def client(sim):
    c = make_axis_client("vdxp", endpoint=sim.base_url, system_id=DISTRICT1.system_id,
                         secret=DISTRICT1.secret, organ_id=DISTRICT1.organ_id, timeout=5,
                         retries=0)
    yield c
    await c.close()


async def _document(db) -> uuid.UUID:
    doc_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO documents (id, direction, dedup_key, state, correlation_id)"
        " VALUES ($1, 'inbound', $2, 'ROUTED', 'c')", doc_id, f"inbound:{doc_id}")
    return doc_id


def _status(doc_id: uuid.UUID, to: str, code: str) -> OutboxMessage:
    body = samples.status(from_organ=DISTRICT1.organ_id, response_for=to, code=code)
    return OutboxMessage(DEST, body, content_type="application/xml", document_id=doc_id,
                         headers={"message_type": "status", "to": [to]})


def test_only_a_non_retryable_error_code_is_permanent():
    """[I] ErrorCodes of an overloaded axis are retried; any other refusal is final; auth and
    transport errors are never final."""
    assert is_permanent(AxisRejectedError("422", "unknown receiver"))
    assert is_permanent(AxisRejectedError("400", "bad request"))
    for code in ("503", "500", "429", "-1", " 503 "):
        assert not is_permanent(AxisRejectedError(code, "busy")), code
    assert not is_permanent(RuntimeError("x"))


async def test_a_status_refused_for_good_leaves_the_outbox_and_later_rows_go(db, pool, sim,
                                                                             client):
    """Migration 0002 orders a document's axis rows; a refused first row used to be retried
    forever and block the second one."""
    doc_id = await _document(db)
    async with db.transaction():
        await enqueue(db, _status(doc_id, "999.99.99.X99", "01"),  # unknown receiver: 422
                      _status(doc_id, "999.99.99.X99", "03"))
    other = await _document(db)
    async with db.transaction():
        await enqueue(db, _status(other, CITY.organ_id, "01"))
    relay = OutboxRelay(pool, axis_sender(client, "refusals", pool), destination=DEST,
                        in_document_order=True, lease=30)
    await relay.drain()
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    assert relay.stats.dropped == 2 and relay.stats.published == 1
    assert sim.call_count("sendEdoc") == 3  # each refused row tried once, never again
    events = await db.fetch("SELECT detail FROM document_events WHERE document_id = $1"
                            " AND event = 'axis.refused' ORDER BY id", doc_id)
    assert [e["detail"]["error_code"] for e in events] == ["422", "422"]
    assert "unknown receiver" in events[0]["detail"]["error_desc"]
    assert len(sim.statuses_for(CITY.organ_id)) == 1


async def test_a_transient_failure_waits_but_holds_back_only_its_own_receiver(db, pool, sim,
                                                                               client):
    """Rows of one document to another receiver are not held back by a row being retried."""
    doc_id = await _document(db)
    async with db.transaction():
        await enqueue(db, _status(doc_id, CITY.organ_id, "01"),
                      _status(doc_id, CITY.organ_id, "03"),
                      _status(doc_id, DISTRICT2.organ_id, "01"))
    sim.faults.fail_next(1, status=503, operation="sendEdoc")  # the first row: retried later
    relay = OutboxRelay(pool, axis_sender(client, "refusals", pool), destination=DEST,
                        in_document_order=True, lease=30)
    await relay.run_once()
    left = await db.fetch("SELECT headers FROM outbox ORDER BY id")
    assert [h["headers"]["to"] for h in left] == [[CITY.organ_id], [CITY.organ_id]]
    assert len(sim.statuses_for(DISTRICT2.organ_id)) == 1
    await db.execute("UPDATE outbox SET available_at = now()")
    await relay.drain()
    assert [s.status_code for s in sim.statuses_for(CITY.organ_id)] == ["01", "03"]

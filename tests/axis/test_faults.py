"""Each injected fault of the simulator, seen through VdxpClient over real HTTP."""

from __future__ import annotations

import hashlib

import pytest

from gateway.axis import (
    AckStatus,
    AxisProtocolError,
    AxisRejectedError,
    AxisTransientError,
    MessageType,
)
from tests.axis import samples
from tests.axis.conftest import AGENCY_A, AGENCY_B


async def test_5xx_is_retried_until_it_passes(sim, connect):
    sim.faults.fail_next(2, status=503, operation="sendEdoc")
    sent = await connect(AGENCY_A, retries=2).send_edoc(samples.edoc())
    assert [o for op, o in sim.calls if op == "sendEdoc"] == ["http_503", "http_503", "ok"]
    assert [p.sender_doc_id for p in sim.sent_to(samples.PROVINCE)] == [sent.doc_id]


async def test_5xx_beyond_the_retry_budget_raises_transient(sim, connect):
    sim.faults.fail_next(10, status=502)
    with pytest.raises(AxisTransientError) as info:
        await connect(AGENCY_B, retries=2).list_received(MessageType.EDOC)
    assert info.value.code == "http_502" and info.value.http_status == 502
    assert info.value.attempts == 3 and sim.call_count("getReceivedEdocList") == 3


async def test_slow_answer_times_out_then_the_retry_succeeds(sim, connect):
    sim.post_document(samples.edoc())
    sim.faults.slow_next(1, 0.6)
    items = await connect(AGENCY_B, timeout=0.2, retries=1).list_received(MessageType.EDOC)
    assert len(items) == 1
    assert sim.faults.injected["slow"] == 1 and sim.call_count("getReceivedEdocList") == 1


async def test_always_slow_axis_raises_timeout(sim, connect):
    sim.faults.delay = 0.5
    with pytest.raises(AxisTransientError) as info:
        await connect(AGENCY_B, timeout=0.1, retries=1).count_received(MessageType.EDOC)
    assert info.value.code == "timeout" and info.value.attempts == 2


async def test_dropped_connection_is_retried(sim, connect):
    sim.faults.drop_next(1, operation="getAgenciesList")
    entries = await connect(AGENCY_B, retries=1).directory()
    assert len(entries) == 3
    assert [o for op, o in sim.calls if op == "getAgenciesList"] == ["dropped", "ok"]


async def test_connection_dropped_every_time_raises_transient(sim, connect):
    sim.faults.drop_next(10)
    with pytest.raises(AxisTransientError) as info:
        await connect(AGENCY_B, retries=2).directory()  # POST: aiohttp adds no retry of its own
    assert info.value.code == "connection" and info.value.attempts == 3
    assert sim.call_count("getAgenciesList") == 3
    with pytest.raises(AxisTransientError) as info:
        await connect(AGENCY_B, retries=0).count_received(MessageType.STATUS)
    assert info.value.code == "connection"


async def test_lost_answer_of_a_document_is_not_sent_again_by_the_client(sim, connect):
    """The send took effect but the answer was lost: the client does not send the document
    again (the axis would hold a second copy); it raises a transient error that says the
    package may have been sent, and the sender finds it by its hash (``find_sent``)."""
    sim.faults.drop_next(1, after_processing=True, operation="sendEdoc")
    package = samples.edoc()
    client = connect(AGENCY_A, retries=2)
    with pytest.raises(AxisTransientError) as info:
        await client.send_edoc(package)
    assert info.value.maybe_sent and info.value.attempts == 1
    copies = sim.sent_to(samples.PROVINCE)
    assert len(copies) == 1
    found = await client.find_sent(hashlib.sha256(package).hexdigest())
    assert [(r.sender_doc_id, r.to_code) for r in found] == [
        (copies[0].sender_doc_id, samples.PROVINCE)]


async def test_lost_answer_of_a_status_is_still_retried(sim, connect):
    """Status messages keep the client's retry (receivers deduplicate them on content)."""
    sim.faults.drop_next(1, after_processing=True, operation="sendEdoc")
    await connect(AGENCY_B, retries=1).send_status(samples.status(code="03"))
    assert len(sim.sent_to(samples.VPCP)) == 2


async def test_a_refused_connection_is_retried_even_for_a_document(connect, sim):
    """Nothing reached the axis when the connection was refused: retrying is safe."""
    sim.faults.fail_next(1, status=503, operation="sendEdoc")
    await connect(AGENCY_A, retries=1).send_edoc(samples.edoc())
    assert [o for op, o in sim.calls if op == "sendEdoc"] == ["http_503", "ok"]


async def test_find_sent_lists_only_the_callers_packages_with_that_hash(sim, connect):
    package = samples.edoc()
    digest = hashlib.sha256(package).hexdigest()
    a = connect(AGENCY_A)
    sent = await a.send_edoc(package, to=[samples.PROVINCE, samples.PARTY])
    await a.send_edoc(samples.edoc(number="99"))
    found = await a.find_sent(digest)
    assert sorted((r.sender_doc_id, r.to_code) for r in found) == sorted(
        [(sent.doc_id, samples.PROVINCE), (sent.doc_id, samples.PARTY)])
    assert await connect(AGENCY_B).find_sent(digest) == []  # not the sender
    assert await a.find_sent("0" * 64) == []
    with pytest.raises(ValueError):
        await a.find_sent("not-a-hash")


async def test_duplicate_listing_returns_the_same_doc_id_twice(sim, connect):
    delivered = sim.post_document(samples.edoc()).deliveries[samples.PROVINCE]
    sim.faults.duplicate_next(1)
    province = connect(AGENCY_B)
    assert [i.doc_id for i in await province.list_received(MessageType.EDOC)] == [
        delivered, delivered
    ]
    assert [i.doc_id for i in await province.list_received(MessageType.EDOC)] == [delivered]


async def test_redelivery_after_ack(sim, connect):
    delivered = sim.post_document(samples.edoc()).deliveries[samples.PROVINCE]
    sim.faults.redeliver_after_ack(1)
    province = connect(AGENCY_B)
    await province.ack(delivered, AckStatus.DONE)
    assert [i.doc_id for i in await province.list_received(MessageType.EDOC)] == [delivered]
    await province.ack(delivered, AckStatus.DONE)
    assert await province.list_received(MessageType.EDOC) == []
    assert [a.status for a in sim.acks] == ["done", "done"]


async def test_garbled_answer_is_a_protocol_error_never_success(sim, connect):
    sim.post_document(samples.edoc())
    sim.faults.garble_next(1)
    with pytest.raises(AxisProtocolError) as info:
        await connect(AGENCY_B, retries=3).list_received(MessageType.EDOC)
    assert info.value.code == "invalid_json"
    assert sim.call_count("getReceivedEdocList") == 1  # not retried


async def test_client_error_status_with_envelope_is_a_rejection(sim, connect):
    sim.faults.fail_next(1, status=400)
    with pytest.raises(AxisRejectedError) as info:
        await connect(AGENCY_B).directory()
    assert info.value.axis_code == "400"

"""The whole journey under load and faults: axis → gateway → RabbitMQ → adapter → eOffice → back.

Counted at the eOffice simulators: every good document is delivered exactly once per receiving
agency; the sender hears 01 then 03 (or 02 with the reason); nothing stays in the outbox.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from gateway.demo.exchange import CITY, DISTRICT1, DISTRICT2, Exchange, ExchangeOptions, organ
from gateway.demo.samples import edoc, malformed_package, package, signed_pdf, tamper
from gateway.edxml import parse
from tests.conftest import AMQP_URL, wait_for

D1, D2, SENDER = organ(DISTRICT1), organ(DISTRICT2), organ(CITY)


@pytest.fixture
async def exchange(database_url, bus_prefix, db, pki):
    ex = Exchange(ExchangeOptions(
        database_url=database_url, amqp_url=AMQP_URL, prefix=bus_prefix + "x",
        trust_bundle=pki.trust_bundle_path, retry_delays=(0.3, 0.6, 1.2, 2.4),
        create_database=False, drop_database=False, poll_interval=0.1))
    await ex.start()
    yield ex
    await ex.stop()


@pytest.fixture(scope="module")
async def pdfs(pki):
    good = [await signed_pdf(pki, f"Cong van so {i}") for i in range(4)]
    bad = tamper(await signed_pdf(pki, "Van ban sua"), "Van ban sua")
    return good, bad


async def send_batch(ex: Exchange, pdfs, start: int) -> dict[str, tuple[list[str], str]]:
    """Send a mixed batch; returns DocumentId → (receivers, expected final status)."""
    good, bad = pdfs
    plan: dict[str, tuple[list[str], str]] = {}
    receivers_cycle = [[D1], [D2], [D1, D2]]
    for i in range(8):
        receivers = receivers_cycle[i % 3]
        raw = package(edoc(SENDER, receivers, good[i % len(good)], number=start + i))
        await ex.city.send_edoc(raw)
        if i % 4 == 0:
            await ex.city.send_edoc(raw)  # the sender's software sends it twice
        plan[parse(raw).document_id] = ([r.organ_id for r in receivers], "03")
    raw = package(edoc(SENDER, [D1, D2], bad, number=start + 8))
    await ex.city.send_edoc(raw)
    plan[parse(raw).document_id] = ([D1.organ_id, D2.organ_id], "02")
    await ex.city.send_edoc(malformed_package(SENDER, D2, start + 9), to=[D2.organ_id])
    return plan


def missing(ex: Exchange, plan) -> list[str]:
    out = []
    seen = {}
    for s in ex.statuses_at_city():
        seen.setdefault(s.response_for_document_id, set()).add((s.from_organ, s.status_code))
    for doc_id, (receivers, final) in plan.items():
        for agency in receivers:
            for code in ("01", final):
                if (agency, code) not in seen.get(doc_id, set()):
                    out.append(f"{doc_id} {agency} {code}")
    return out


async def assert_exactly_once(ex: Exchange, plan, db, batches: int = 1) -> None:
    for agency, district in ex.districts.items():
        got = [d.payload["edxml_document_id"] for d in district.eoffice.documents.values()]
        expected = [doc for doc, (receivers, final) in plan.items()
                    if agency in receivers and final == "03"]
        assert sorted(got) == sorted(expected), agency  # each good one, once
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE state <> 'DELIVERED'") == 0
    rejected = await db.fetch("SELECT reject_code, reject_reason FROM documents"
                              " WHERE state = 'REJECTED'")
    assert sorted(r["reject_code"] for r in rejected) == \
        ["EDXML_MISSING_ELEMENT"] * batches + ["SIGNATURE_INVALID"] * batches
    assert all(r["reject_reason"] for r in rejected)
    # no status was sent twice for the same document, agency and code
    statuses = [(s.response_for_document_id, s.from_organ, s.status_code)
                for s in ex.statuses_at_city()]
    assert len(statuses) == len(set(statuses))


async def test_mixed_batch_exactly_once(exchange, pdfs, db):
    plan = await send_batch(exchange, pdfs, 1000)
    exchange.axis.faults.duplicate_next(3)  # the axis lists packages twice for a while
    exchange.axis.faults.redeliver_after_ack(2)  # and offers two acked packages again
    await wait_for(lambda: not missing(exchange, plan), timeout=60, interval=0.2)
    await wait_for(exchange.settled, timeout=30, interval=0.2)
    await assert_exactly_once(exchange, plan, db)


async def _retried(db) -> bool:
    return await db.fetchval("SELECT count(*) FROM document_events"
                             " WHERE event = 'delivery.retrying'") > 0


async def _rabbit(*args: str) -> None:
    await asyncio.to_thread(subprocess.run, ["rabbitmqctl", *args], check=True,
                            capture_output=True, timeout=120)


async def test_faults_lose_nothing_and_deliver_nothing_twice(exchange, pdfs, db):
    d1 = exchange.districts[D1.organ_id].eoffice
    d1.down = True  # the eOffice of district 1 is failing for a while
    plan = await send_batch(exchange, pdfs, 2000)
    await asyncio.sleep(0.5)
    await _rabbit("close_all_connections", "test: network cut")
    plan |= await send_batch(exchange, pdfs, 3000)
    await asyncio.sleep(0.5)
    await _rabbit("stop_app")
    plan |= await send_batch(exchange, pdfs, 4000)  # intake goes on: the outbox holds the rest
    await asyncio.sleep(1.0)
    await _rabbit("start_app")
    # district 1 stays down until its adapter has really walked the ladder (a refusal alone is
    # not enough: right after the restart, the retry copy may not be publishable yet, and the
    # message is then requeued without a retry outcome; fixed sleeps made this timing-dependent)
    await wait_for(lambda: _retried(db), timeout=60, interval=0.2)
    d1.down = False
    await wait_for(lambda: not missing(exchange, plan), timeout=120, interval=0.3)
    await wait_for(exchange.settled, timeout=60, interval=0.3)
    await assert_exactly_once(exchange, plan, db, batches=3)
    # the faults really happened: district 1's eOffice refused, the ladder retried
    assert d1.failed > 0
    assert await db.fetchval("SELECT count(*) FROM document_events"
                             " WHERE event = 'delivery.retrying'") > 0

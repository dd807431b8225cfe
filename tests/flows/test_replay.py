"""A delivery the eOffice refused until the ladder ran out is DEAD; the operator replays it."""

from __future__ import annotations

import pytest

from gateway.demo.exchange import CITY, DISTRICT1, Exchange, ExchangeOptions, organ
from gateway.demo.samples import edoc, package, signed_pdf
from tests.conftest import AMQP_URL, wait_for


@pytest.fixture
async def exchange(database_url, bus_prefix, db, pki):
    ex = Exchange(ExchangeOptions(
        database_url=database_url, amqp_url=AMQP_URL, prefix=bus_prefix + "r",
        trust_bundle=pki.trust_bundle_path, retry_delays=(0.2, 0.2),
        create_database=False, drop_database=False, poll_interval=0.1))
    await ex.start()
    yield ex
    await ex.stop()


async def test_dead_delivery_replayed_by_an_operator(exchange, db, aiohttp_client, pki):
    eoffice = exchange.districts[DISTRICT1.organ_id].eoffice
    eoffice.down = True
    pdf = await signed_pdf(pki, "Cong van that lac")
    await exchange.city.send_edoc(package(edoc(organ(CITY), [organ(DISTRICT1)], pdf, number=9)))
    dead = await wait_for(lambda: _dead(db), timeout=30, interval=0.2)
    assert eoffice.accepted == 0

    client = await aiohttp_client(exchange.gateway.web_app())
    auth = {"Authorization": f"Bearer {exchange.operator_token}"}
    listed = await (await client.get("/v1/deliveries?state=DEAD", headers=auth)).json()
    assert [d["id"] for d in listed["deliveries"]] == [str(dead)]

    eoffice.down = False
    resp = await client.post(f"/v1/deliveries/{dead}/replay", headers=auth)
    assert resp.status == 202, await resp.text()
    again = await client.post(f"/v1/deliveries/{dead}/replay", headers=auth)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "DELIVERY_NOT_DEAD"
    await wait_for(lambda: eoffice.accepted == 1, timeout=30)
    await wait_for(lambda: _state(db, dead, "DELIVERED"), timeout=30)
    assert eoffice.accepted == 1
    events = [r["event"] for r in await db.fetch(
        "SELECT event FROM document_events ORDER BY at, id")]
    assert "delivery.dead" in events and "delivery.replayed" in events
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'delivery.replay'") == 1


async def _dead(db):
    return await db.fetchval("SELECT id FROM deliveries WHERE state = 'DEAD'")


async def _state(db, delivery_id, state) -> bool:
    return await db.fetchval("SELECT state FROM deliveries WHERE id = $1", delivery_id) == state

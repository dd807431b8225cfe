"""Business flows received, end to end through an adapter: the gateway, its HTTP API, the
webhook adapter runner and the eOffice simulator for D1 (issue 13; Decree 30/2020 Art. 18).

The eOffice gets each flow as a typed message (``kind``), acts on the document it names (cancel
on revoke, hand back on take back) and answers 15 through the status API; the 15 reaches the
sender at the axis and the document's state follows.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from aiohttp import web

from adapters.dedup import MemoryDedupStore
from adapters.eoffice_sim import EOfficeSimulator
from adapters.runner import AdapterRunner
from adapters.webhook import WebhookAdapter
from gateway.api.auth import create_client
from gateway.app import Gateway
from gateway.demo.exchange import free_port
from gateway.demo.samples import edoc, package, signed_pdf
from gateway.edxml import Bussiness, BussinessDocType, ResponseFor, StatusMessage, build
from tests.conftest import AMQP_URL, wait_for
from tests.flows.conftest import CITY, D1, SENDER, flow_settings, purge_agency_queues


def _at_city(axis, code: str, n: int):
    got = [s for s in axis.statuses_for(CITY.organ_id) if s.status_code == code]
    return got if len(got) >= n else None


async def test_take_back_and_revoke_reach_the_eoffice_simulator(database_url, bus_prefix, pki,
                                                               axis, db, city_client, amqp):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gw = Gateway(flow_settings(database_url, bus_prefix, pki, axis, http_port=port,
                               public_url=url))
    await gw.start()
    await purge_agency_queues(amqp, gw.topology, (D1.organ_id,))
    site = web.AppRunner(gw.web_app(), access_log=None)
    await site.setup()
    await web.TCPSite(site, "127.0.0.1", port).start()
    token = (await create_client(db, name="eo-d1", role="eoffice",
                                 agencies=[D1.organ_id])).token
    secret = uuid.uuid4().hex.encode()
    sim = EOfficeSimulator(secret, gateway_url=url, gateway_token=token, answer="03",
                           business_answer="15")
    await sim.start()
    runner = AdapterRunner(WebhookAdapter(sim.url, secret), amqp_url=AMQP_URL,
                           topology=gw.topology, agency=D1.organ_id, gateway_token=token,
                           gateway_url=url, dedup=MemoryDedupStore())
    await runner.start()
    try:
        # a document, taken back: 13 -> take_back message -> the eOffice agrees (15)
        first = edoc(SENDER, [D1], await signed_pdf(pki, "Lay lai"), number=1801)
        axis.post_document(package(first))
        await wait_for(lambda: _at_city(axis, "03", 1), timeout=30)
        doc_id = await db.fetchval("SELECT id FROM documents WHERE edxml_document_id = $1",
                                   first.document_id)
        ask = StatusMessage(from_organ=SENDER, response_for=ResponseFor(
            SENDER.organ_id, str(first.code), first.promulgation_info.promulgation_date,
            first.document_id), status_code="13", description="Gửi nhầm",
            timestamp=datetime.now(UTC))
        await city_client.send_status(build(ask), to=[D1.organ_id])
        await wait_for(lambda: str(doc_id) in sim.taken_back, timeout=30)
        await wait_for(lambda: _at_city(axis, "15", 1), timeout=30)

        async def taken_back():
            return await db.fetchval("SELECT state FROM documents WHERE id = $1",
                                     doc_id) == "TAKEN_BACK"

        await wait_for(taken_back, timeout=15)
        assert [d.kind for d in sim.business] == ["take_back"]

        # another document, revoked: cancelled in the eOffice, 15 back to the sender
        second = edoc(SENDER, [D1], await signed_pdf(pki, "Thu hoi"), number=1802)
        axis.post_document(package(second))
        await wait_for(lambda: _at_city(axis, "03", 2), timeout=30)
        revoke = replace(second, bussiness=Bussiness(BussinessDocType.REVOKE,
                                                     second.document_id, "Ban hành nhầm"))
        axis.post_document(package(revoke))
        orig = await db.fetchval("SELECT id FROM documents WHERE edxml_document_id = $1"
                                 " AND bussiness_doc_type = 0", second.document_id)
        await wait_for(lambda: str(orig) in sim.revoked, timeout=30)
        await wait_for(lambda: _at_city(axis, "15", 2), timeout=30)
        assert await db.fetchval("SELECT state FROM documents WHERE id = $1", orig) == "REVOKED"
        # the eOffice holds two documents and two typed messages, no third document
        assert sorted(d.kind for d in sim.documents.values()) == [
            "document", "document", "revoke", "take_back"]
        await sim.wait_reports()
        assert all(r.ok for r in sim.status_reports), sim.status_reports
    finally:
        await runner.stop()
        await sim.stop()
        await site.cleanup()
        await gw.stop()

"""The eOffice simulator: signature check, idempotency counters, status reports."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from adapters.contract import Delivery
from adapters.eoffice_sim import EOfficeSimulator
from adapters.message import parse_delivery
from adapters.webhook import WebhookAdapter
from tests.adapters.helpers import AGENCY, delivery_message
from tests.conftest import wait_for

SECRET = b"sim-secret"


class FakeGateway:
    """Records status reports; answers 503 to the first ``fail_first`` of them."""

    def __init__(self, fail_first: int = 0) -> None:
        self.reports: list[tuple[str, str | None, dict]] = []
        self.fail_first = fail_first
        self.calls = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _status(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.calls <= self.fail_first:
            return web.Response(status=503)
        self.reports.append((request.match_info["doc"], request.headers.get("Authorization"),
                             await request.json()))
        return web.json_response({"ok": True}, status=202)

    async def __aenter__(self) -> FakeGateway:
        app = web.Application()
        app.router.add_post("/v1/documents/{doc}/status", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def _delivery(files=None) -> Delivery:
    msg = delivery_message(files=files or {"a.pdf": b"%PDF-1 x"}, inline=True)
    return Delivery.of(parse_delivery(json.dumps(msg).encode()))


async def test_counts_and_idempotency_and_accepted_status():
    async with FakeGateway(fail_first=1) as gw, EOfficeSimulator(
            SECRET, gateway_url=gw.url, gateway_token="gw-token", answer="03") as sim:
        adapter = WebhookAdapter(sim.url, SECRET)
        first, second = _delivery(), _delivery()
        r1 = await adapter.deliver(first)
        r1_again = await adapter.deliver(first)  # the eOffice answers 409 with its reference
        await adapter.deliver(second)
        await adapter.close()
        assert r1 is not None and r1_again is not None and r1.reference == r1_again.reference
        assert (sim.received, sim.accepted, sim.duplicates) == (3, 2, 1)
        await sim.wait_reports()
        await wait_for(lambda: len(sim.status_reports) == 2)
    assert {r.document_id for r in sim.status_reports} == {first.document_id, second.document_id}
    assert all(r.ok and r.status == "03" for r in sim.status_reports)
    assert max(r.attempts for r in sim.status_reports) == 2  # the gateway failed once
    doc, auth, body = gw.reports[0]
    assert auth == "Bearer gw-token" and doc in (first.document_id, second.document_id)
    assert body["agency"] == AGENCY and body["status"] == "03"
    assert body["staff"] == {"Department": "Văn phòng", "Staff": "Văn thư"}
    assert sim.documents[first.message_id].attachments[0].sha256_ok


async def test_returned_status_carries_a_reason():
    async with FakeGateway() as gw, EOfficeSimulator(SECRET, gateway_url=gw.url,
                                                      answer="02") as sim:
        adapter = WebhookAdapter(sim.url, SECRET)
        await adapter.deliver(_delivery())
        await adapter.close()
        await sim.wait_reports()
    [(_doc, _auth, body)] = gw.reports
    assert body["status"] == "02" and "Từ chối" in body["description"]


async def test_bad_signature_is_401_and_not_counted_as_accepted():
    async with EOfficeSimulator(SECRET, answer=None) as sim:
        async with aiohttp.ClientSession() as session:
            async with session.post(sim.url, data=b"{}", headers={
                    "X-Edoc-Timestamp": "1", "X-Edoc-Signature": "sha256=00",
                    "Idempotency-Key": "k"}) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == "WEBHOOK_TIMESTAMP_STALE"
        assert (sim.received, sim.accepted, sim.rejected) == (1, 0, 1)


async def test_unreachable_gateway_is_recorded_as_a_failed_report():
    async with EOfficeSimulator(SECRET, gateway_url="http://127.0.0.1:9", answer="03",
                                report_attempts=2, report_delay=0.05) as sim:
        adapter = WebhookAdapter(sim.url, SECRET)
        await adapter.deliver(_delivery())
        await adapter.close()
        await sim.wait_reports()
    [report] = sim.status_reports
    assert not report.ok and report.attempts == 2 and report.error

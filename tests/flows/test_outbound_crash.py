"""No double send (issue 13): a gateway process killed after ``sendEdoc`` took effect at the
axis and before it recorded the DocId. The axis holds its answer; the ``edoc-gateway serve``
process is killed with SIGKILL while it waits. The next gateway reconciles with the axis
(``find_sent`` by the package's hash), adopts the DocId and sends nothing again: the simulator
holds exactly one copy per receiver.

Real processes, PostgreSQL, RabbitMQ and the simulator over HTTP (RabbitMQ is not stopped)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import aiohttp

from gateway.api.auth import create_client
from gateway.app import Gateway
from gateway.axis import MessageType
from gateway.axis.simulator import AxisSimulator
from gateway.demo.exchange import CITY, DISTRICT1, DISTRICT2, free_port
from signing.testpki.pdfs import make_pdf
from signing.testpki.samples import sign_sample
from tests.conftest import AMQP_URL, wait_for
from tests.flows.outbound_kit import form, metadata, sender_settings


def _toml(database_url: str, prefix: str, port: int, pki, axis_url: str) -> str:
    return "\n".join([
        f'database_url = "{database_url}"', f'amqp_url = "{AMQP_URL}"', f"http_port = {port}",
        'log_level = "WARNING"', "[bus]", f'prefix = "{prefix}"', "retry_delays = [0.3, 0.6]",
        "[signing]", f'trust_bundles = ["{pki.trust_bundle_path}"]', "offline = true",
        "workers = 1", f'revocation_cache_dir = "{pki.crl_cache()}"', "crl_refresh_interval = 0",
        "key_check_interval = 0",
        "[[agencies]]", f'code = "{CITY.organ_id}"', 'axis = "city"',
        "[[axis]]", 'name = "city"', f'endpoint = "{axis_url}"',
        f'system_id = "{CITY.system_id}"', f'secret = "{CITY.secret}"',
        f'organ_id = "{CITY.organ_id}"', "poll_interval = 0.2", "timeout = 30"]) + "\n"


async def _copies_at_axis(axis: AxisSimulator, n: int) -> bool:
    return sum(len(axis.sent_to(r, MessageType.EDOC))
               for r in (DISTRICT1.organ_id, DISTRICT2.organ_id)) >= n


async def _state(db, doc_id: uuid.UUID) -> str | None:
    state = await db.fetchval("SELECT state FROM documents WHERE id = $1", doc_id)
    return state if state != "QUEUED" else None


async def test_killed_between_send_edoc_and_its_commit_sends_one_copy(database_url, bus_prefix,
                                                                      db, pki, tmp_path):
    prefix = f"{bus_prefix}o{uuid.uuid4().hex[:4]}"
    async with AxisSimulator([CITY, DISTRICT1, DISTRICT2]) as axis:
        port = free_port()
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(_toml(database_url, prefix, port, pki, axis.base_url), encoding="utf-8")
        # the first copy's sendEdoc takes effect, then its answer waits: the process dies then
        axis.faults.hold_next(1, 60, operation="sendEdoc")
        token = (await create_client(db, name="city", role="eoffice",
                                     agencies=[CITY.organ_id])).token
        main = await sign_sample(make_pdf(1, "Van ban truoc su co"), pki, "officer")
        proc = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, "-m", "gateway", "--config", str(cfg), "serve"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("EDOC_")})
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{port}/v1/outbound"
                for _ in range(200):  # until it listens
                    try:
                        resp = await http.post(url, headers={
                            "Authorization": f"Bearer {token}"}, data=form(
                                metadata([DISTRICT1.organ_id, DISTRICT2.organ_id], 201,
                                         seal=False), [("cv.pdf", main, "application/pdf")]))
                        break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)
                assert resp.status == 202, await resp.text()
                doc_id = uuid.UUID((await resp.json())["id"])
            # sendEdoc took effect at the axis for both receivers; one answer is held
            await wait_for(lambda: _copies_at_axis(axis, 2), timeout=30, interval=0.05)
            await asyncio.sleep(0.3)
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 30)
        assert proc.returncode == -signal.SIGKILL
        # both copies are at the axis; the held one (at least) has no DocId recorded
        rows = await db.fetch("SELECT receiver_code, state, attempts, axis_doc_id"
                              " FROM outbound_sends WHERE document_id = $1 AND state = 'QUEUED'",
                              doc_id)
        assert rows and all((r["attempts"], r["axis_doc_id"]) == (1, None) for r in rows)
        held = [r["receiver_code"] for r in rows]
        # the killed process's lease runs out (shortened here instead of waiting for it)
        await db.execute("UPDATE outbox SET leased_until = NULL")

        gw = Gateway(sender_settings(database_url, prefix, pki, axis.base_url, None))
        await gw.start()
        try:
            assert await wait_for(lambda: _state(db, doc_id), timeout=30) == "SENT"
        finally:
            await gw.stop()
        for receiver in (DISTRICT1.organ_id, DISTRICT2.organ_id):
            assert len(axis.sent_to(receiver, MessageType.EDOC)) == 1, receiver
        rows = {r["receiver_code"]: r for r in await db.fetch(
            "SELECT receiver_code, state, axis_doc_id FROM outbound_sends WHERE document_id = $1",
            doc_id)}
        for receiver in held:
            copy = axis.sent_to(receiver, MessageType.EDOC)[0]
            assert rows[receiver]["axis_doc_id"] == copy.sender_doc_id
            assert await db.fetchval(
                "SELECT count(*) FROM document_events WHERE document_id = $1"
                " AND event = 'send.reconciled' AND agency_code = $2", doc_id, receiver) == 1

"""The gateway process killed between storing a document and acknowledging the axis.

A real ``edoc-gateway serve`` process polls the axis; the axis holds its ``updateStatus``
answer, and the process is killed with SIGKILL while the document is committed but not yet
acknowledged. The axis therefore offers the package again; the next gateway stores nothing new,
acknowledges it, and the eOffice receives the document exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from adapters.dedup import MemoryDedupStore
from adapters.eoffice_sim import EOfficeSimulator
from adapters.runner import AdapterRunner
from adapters.webhook import WebhookAdapter
from gateway.api.auth import create_client
from gateway.app import Gateway
from gateway.axis import make_axis_client
from gateway.axis.simulator import AxisSimulator
from gateway.bus import topology as topo
from gateway.demo.exchange import CITY, DISTRICT1, DISTRICT2, free_port, organ
from gateway.demo.samples import edoc, package, signed_pdf
from tests.conftest import AMQP_URL, make_settings, wait_for


def _toml(settings: dict) -> str:
    lines = [f'database_url = "{settings["database_url"]}"', f'amqp_url = "{AMQP_URL}"',
             f'http_port = {settings["port"]}', 'log_level = "WARNING"',
             f'public_url = "http://127.0.0.1:{settings["port"]}"',
             "[bus]", f'prefix = "{settings["prefix"]}"',
             "retry_delays = [0.3, 0.6]",  # as make_settings: one topology to clean up
             "[signing]", f'trust_bundles = ["{settings["trust"]}"]', "offline = true",
             "workers = 1"]
    for i, a in enumerate((DISTRICT1, DISTRICT2), 1):
        lines += ["[[agencies]]", f'code = "{a.organ_id}"', f'axis = "q{i}"',
                  "[[axis]]", f'name = "q{i}"', f'endpoint = "{settings["axis"]}"',
                  f'system_id = "{a.system_id}"', f'secret = "{a.secret}"',
                  f'organ_id = "{a.organ_id}"', "poll_interval = 0.1"]
    return "\n".join(lines) + "\n"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_killed_after_commit_before_ack(database_url, bus_prefix, db, pki, tmp_path):
    prefix = f"{bus_prefix}k{uuid.uuid4().hex[:4]}"
    async with AxisSimulator([CITY, DISTRICT1, DISTRICT2]) as axis:
        port = free_port()
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(_toml({"database_url": database_url, "port": port, "prefix": prefix,
                              "trust": pki.trust_bundle_path, "axis": axis.base_url}),
                       encoding="utf-8")
        axis.faults.slow_next(1, 60, operation="updateStatus")  # hold the first ack
        proc = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, "-m", "gateway", "--config", str(cfg), "serve"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("EDOC_")})
        try:
            city = make_axis_client("vdxp", endpoint=axis.base_url, system_id=CITY.system_id,
                                    secret=CITY.secret, organ_id=CITY.organ_id)
            async with city:
                pdf = await signed_pdf(pki, "Cong van truoc su co")
                await city.send_edoc(package(edoc(organ(CITY), [organ(DISTRICT1)], pdf,
                                                  number=77)))
            await wait_for(lambda: _stored(db), timeout=60, interval=0.1)
            await asyncio.sleep(0.5)  # the ack request is now held by the axis
            workers = _children(proc.pid)  # its signing pool (verified the PDF)
            assert workers
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 30)
        assert proc.returncode == -signal.SIGKILL
        # the killed gateway's pool workers do not linger as orphans
        await wait_for(lambda: not [p for p in workers if _alive(p)], timeout=10, interval=0.2)
        assert not [a for a in axis.acks if a.status == "done"]
        assert len(axis.pending(DISTRICT1.organ_id)) == 1  # the axis will offer it again

        settings = make_settings(database_url, prefix, **{
            "agencies": [{"code": DISTRICT1.organ_id, "axis": "q1"},
                         {"code": DISTRICT2.organ_id, "axis": "q2"}],
            "axis": [{"name": f"q{i}", "endpoint": axis.base_url, "system_id": a.system_id,
                      "secret": a.secret, "organ_id": a.organ_id, "poll_interval": 0.1}
                     for i, a in ((1, DISTRICT1), (2, DISTRICT2))],
            "signing": {"trust_bundles": [str(pki.trust_bundle_path)], "offline": True,
                        "workers": 1},
            "http_port": port, "public_url": f"http://127.0.0.1:{port}"})
        gw = Gateway(settings)
        await gw.start()
        token = (await create_client(db, name="d1", role="eoffice",
                                     agencies=[DISTRICT1.organ_id])).token
        secret = b"crash-test"
        async with EOfficeSimulator(secret, gateway_url=None, answer=None) as eoffice:
            runner = AdapterRunner(WebhookAdapter(eoffice.url, secret), amqp_url=AMQP_URL,
                                   topology=gw.topology, agency=DISTRICT1.organ_id,
                                   gateway_token=token, dedup=MemoryDedupStore())
            await runner.start()
            try:
                await wait_for(lambda: [a for a in axis.acks if a.status == "done"],
                               timeout=30)
                await wait_for(lambda: eoffice.accepted >= 1, timeout=30)
                await wait_for(lambda: _delivered(db), timeout=30)
                await asyncio.sleep(0.5)
            finally:
                await runner.stop()
                await topo.delete(await gw.publisher.channel(), gw.topology)
                await gw.stop()
        assert await db.fetchval("SELECT count(*) FROM documents") == 1
        assert await db.fetchval("SELECT count(*) FROM deliveries") == 1
        assert eoffice.accepted == 1
        assert axis.pending(DISTRICT1.organ_id) == []
        statuses = [s.status_code for s in axis.statuses_for(CITY.organ_id)]
        assert statuses.count("01") == 1


async def _stored(db) -> bool:
    return await db.fetchval("SELECT count(*) FROM documents") == 1


async def _delivered(db) -> bool:
    return await db.fetchval(
        "SELECT count(*) FROM deliveries WHERE state = 'DELIVERED'") == 1

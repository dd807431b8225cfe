"""A whole exchange on one machine: the axis simulator, the gateway, adapters, eOffices.

Used by ``edoc-gateway demo``, the end-to-end tests and the end-to-end benchmark. Agencies:
the city committee (``CITY``, the sender, not served by the gateway) and two district
committees (``DISTRICT1``, ``DISTRICT2``) whose eOffice systems the gateway serves through
webhook adapters into eOffice simulators that answer ``03`` (or ``02``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
from aiohttp import web

from adapters.dedup import MemoryDedupStore
from adapters.eoffice_sim import EOfficeSimulator
from adapters.runner import AdapterRunner
from adapters.webhook import WebhookAdapter
from gateway.app import Gateway
from gateway.axis import AxisClient, make_axis_client
from gateway.axis.simulator import AxisSimulator, SimAgency
from gateway.bus import topology as topo
from gateway.config import Settings, load_settings
from gateway.db.migrate import migrate
from gateway.db.pool import connect, drop_database, ensure_database
from gateway.edxml import Organ

CITY = SimAgency("sys-city", "secret-city", "000.00.00.H99", "UBND thành phố Thử Nghiệm")
DISTRICT1 = SimAgency("sys-q1", "secret-q1", "000.00.01.H99", "UBND quận Một")
DISTRICT2 = SimAgency("sys-q2", "secret-q2", "000.00.02.H99", "UBND quận Hai")
SERVED = (DISTRICT1, DISTRICT2)


def organ(agency: SimAgency) -> Organ:
    return Organ(agency.organ_id, agency.name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ExchangeOptions:
    database_url: str
    amqp_url: str
    prefix: str
    trust_bundle: Path
    workers: int = 2
    retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0)
    eoffice_answer: str | None = "03"
    poll_interval: float = 0.2
    create_database: bool = True
    drop_database: bool = True
    delete_topology: bool = True
    log_level: str = "WARNING"
    #: A CRL cache folder to verify with (hard-fail revocation; the demo's CRLs do not change,
    #: so the refresher is off when one is given).
    revocation_cache: Path | None = None
    #: ``[[senders]]``: seal certificates of the sending agencies.
    senders: list[dict] = field(default_factory=list)
    #: ``signing.keys_file``: key aliases the gateway signs with (``/v1/sign``, agency seals).
    keys_file: Path | None = None
    #: Served agency code → key alias of its agency seal (``seal_key``, with ``seal = true``)
    #: for documents it sends up through ``POST /v1/outbound``.
    seal_keys: dict[str, str] = field(default_factory=dict)


@dataclass
class District:
    agency: SimAgency
    eoffice: EOfficeSimulator
    runner: AdapterRunner
    token: str


@dataclass
class Exchange:
    options: ExchangeOptions
    axis: AxisSimulator = field(init=False)
    gateway: Gateway = field(init=False)
    city: AxisClient = field(init=False)
    districts: dict[str, District] = field(default_factory=dict)
    gateway_url: str = ""
    _runner: web.AppRunner | None = None
    operator_token: str = ""

    def settings(self) -> Settings:
        port = free_port()
        revocation = {"revocation_cache_dir": str(self.options.revocation_cache),
                      "crl_refresh_interval": 0} if self.options.revocation_cache else {}
        keys = {"keys_file": str(self.options.keys_file), "key_check_interval": 0} \
            if self.options.keys_file else {}
        conns = [{"name": f"q{i}", "endpoint": self.axis.base_url, "system_id": a.system_id,
                  "secret": a.secret, "organ_id": a.organ_id,
                  "poll_interval": self.options.poll_interval, "timeout": 10}
                 for i, a in enumerate(SERVED, 1)]
        return load_settings(None, **{
            "database_url": self.options.database_url, "amqp_url": self.options.amqp_url,
            "http_host": "127.0.0.1", "http_port": port,
            "public_url": f"http://127.0.0.1:{port}", "organ_id": "gateway.demo",
            "log_level": self.options.log_level,
            "bus": {"prefix": self.options.prefix,
                    "retry_delays": list(self.options.retry_delays)},
            "relay": {"poll_interval": 0.05},
            "axis": conns,
            "agencies": [{"code": a.organ_id, "name": a.name, "axis": f"q{i}",
                          **({"seal_key": self.options.seal_keys[a.organ_id], "seal": True}
                             if a.organ_id in self.options.seal_keys else {})}
                         for i, a in enumerate(SERVED, 1)],
            "signing": {"trust_bundles": [str(self.options.trust_bundle)], "offline": True,
                        "workers": self.options.workers, **revocation, **keys},
            "senders": self.options.senders,
        })

    async def start(self) -> None:
        opts = self.options
        if opts.create_database:
            await ensure_database(opts.database_url)
        conn = await connect(opts.database_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        self.axis = AxisSimulator([CITY, *SERVED])
        await self.axis.start()
        settings = self.settings()
        self.gateway = Gateway(settings)
        await self.gateway.start()
        self._runner = web.AppRunner(self.gateway.web_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, settings.http_host, settings.http_port).start()
        self.gateway_url = settings.public_url or ""
        from gateway.api.auth import create_client

        async with self.gateway.pool.acquire() as db:
            self.operator_token = (await create_client(db, name="demo-operator",
                                                       role="operator")).token
            for agency in SERVED:
                token = (await create_client(db, name=f"eoffice {agency.name}", role="eoffice",
                                             agencies=[agency.organ_id])).token
                secret = uuid.uuid4().hex.encode()
                eoffice = EOfficeSimulator(secret, gateway_url=self.gateway_url,
                                           gateway_token=token, answer=opts.eoffice_answer)
                await eoffice.start()
                runner = AdapterRunner(
                    WebhookAdapter(eoffice.url, secret), amqp_url=opts.amqp_url,
                    topology=self.gateway.topology, agency=agency.organ_id,
                    gateway_token=token, gateway_url=self.gateway_url,
                    dedup=MemoryDedupStore())
                await runner.start()
                self.districts[agency.organ_id] = District(agency, eoffice, runner, token)
        self.city = make_axis_client("vdxp", endpoint=self.axis.base_url,
                                     system_id=CITY.system_id, secret=CITY.secret,
                                     organ_id=CITY.organ_id, timeout=10)

    async def stop(self) -> None:
        for district in self.districts.values():
            with contextlib.suppress(Exception):
                await district.runner.stop()
                await district.runner.adapter.close()
            with contextlib.suppress(Exception):
                await district.eoffice.stop(grace=1.0)
        with contextlib.suppress(Exception):
            await self.city.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.gateway.stop()
        await self.axis.stop()
        if self.options.delete_topology:
            with contextlib.suppress(Exception):
                connection = await aio_pika.connect(self.options.amqp_url)
                async with connection:
                    await topo.delete(await connection.channel(), self.gateway.topology)
        if self.options.drop_database:
            await drop_database(self.options.database_url)

    async def __aenter__(self) -> Exchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- observing ------------------------------------------------------------------------
    def accepted_at(self, agency: str) -> dict[str, int]:
        """Documents the eOffice of ``agency`` accepted, by gateway document id → count."""
        eoffice = self.districts[agency].eoffice
        counts: dict[str, int] = {}
        for doc in eoffice.documents.values():
            counts[doc.document_id] = counts.get(doc.document_id, 0) + 1
        return counts

    def statuses_at_city(self) -> list:
        return self.axis.statuses_for(CITY.organ_id)

    async def settled(self) -> bool:
        async with self.gateway.pool.acquire() as db:
            outbox = await db.fetchval("SELECT count(*) FROM outbox")
            open_deliveries = await db.fetchval(
                "SELECT count(*) FROM deliveries WHERE state <> 'DELIVERED'")
        reports_pending = any(d.eoffice._reports for d in self.districts.values())
        return outbox == 0 and open_deliveries == 0 and not reports_pending


async def wait_until(predicate, within: float, interval: float = 0.1):
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            return None
        await asyncio.sleep(interval)

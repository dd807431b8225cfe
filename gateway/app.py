"""Wiring of one gateway process: database, broker, relay, HTTP application.

:class:`Gateway` owns the long-lived resources. ``start()`` fails fast with a
:class:`StartupError` (one clear line) when PostgreSQL or RabbitMQ cannot be
reached or migrations are pending; background tasks (outbox relay, axis pollers,
outcome consumer) are started by ``start()`` and stopped by ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from gateway.api import health
from gateway.api.middleware import make_middlewares
from gateway.axis import AxisClient, make_axis_client
from gateway.bus import topology as topo
from gateway.bus.publisher import BrokerUnavailable, ConfirmedPublisher
from gateway.bus.relay import LEASE_MARGIN, OutboxRelay
from gateway.config import Settings
from gateway.db.migrate import pending_migrations
from gateway.db.outbox import axis_destination
from gateway.db.pool import create_pool
from gateway.inbound.intake import Intake
from gateway.inbound.outcomes import consume_outcomes
from gateway.inbound.poller import AxisPoller
from gateway.inbound.routing import Router
from gateway.inbound.verification import PdfJudge
from gateway.ops.metrics import Metrics
from gateway.outbound.axis_sender import axis_sender
from gateway.pki.keyhealth import check_keys
from gateway.pki.revocation import LearnedCrlUrls, refresh_crls

log = logging.getLogger(__name__)

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")

#: Modules adding routes: each has ``setup(app)``. Missing ones are skipped.
ROUTE_MODULES = ("gateway.api.documents", "gateway.api.statuses", "gateway.api.signing",
                 "gateway.api.axis_inbox", "gateway.api.deliveries", "gateway.api.axis_refused",
                 "gateway.api.holds", "gateway.api.keys",
                 "gateway.ops.console")


def _lease(longest_send: float) -> float:
    """An outbox row's lease: the longest send of its destination, with room to spare (a row of
    a killed process is sent again this long after it was leased)."""
    return max(30.0, longest_send + 2 * LEASE_MARGIN)


class StartupError(Exception):
    code = "STARTUP_FAILED"


class Gateway:
    def __init__(self, settings: Settings, *, run_background: bool = True) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.run_background = run_background
        self.pool: asyncpg.Pool = None  # type: ignore[assignment]
        self.publisher = ConfirmedPublisher(settings.amqp_url.get_secret_value(),
                                            timeout=settings.bus.publish_timeout)
        self.topology = topo.Topology(
            prefix=settings.bus.prefix,
            agencies=tuple(settings.served_codes),
            delivery_limit=settings.bus.delivery_limit,
            max_length=settings.bus.max_length,
            retry_delays=tuple(settings.bus.retry_delays),
        )
        self.relay: OutboxRelay | None = None
        self.axis_clients: dict[str, AxisClient] = {}
        self.axis_relays: dict[str, OutboxRelay] = {}
        self.pollers: dict[str, AxisPoller] = {}
        self.judge: PdfJudge | None = None
        #: CRL distribution points learned from verified signers (fed by intake, read by the
        #: CRL refresher).
        self.learned_crl_urls = LearnedCrlUrls()
        self.router = Router(self.topology, self.public_url, settings.bus.inline_threshold)
        self.intake: Intake = None  # type: ignore[assignment]
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        #: Background workers other modules register: ``async def worker(gateway, stop)``.
        self.workers: list[Callable[[Gateway, asyncio.Event], Awaitable[None]]] = []
        self.workers.append(refresh_crls)  # keeps the CRL cache of signing.revocation_*
        self.workers.append(check_keys)  # health of the signing keys (signing.key_check_*)
        self.extensions: dict[str, object] = {}

    @property
    def dsn(self) -> str:
        return self.settings.database_url.get_secret_value()

    async def start(self) -> None:
        try:
            self.pool = await create_pool(self.dsn, min_size=self.settings.db_pool_min,
                                          max_size=self.settings.db_pool_max)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise StartupError(f"cannot connect to PostgreSQL: {exc}") from None
        async with self.pool.acquire() as conn:
            pending = await pending_migrations(conn)
        if pending:
            await self.pool.close()
            raise StartupError("database migrations pending (" + ", ".join(
                m.version for m in pending) + "): run `edoc-gateway migrate`")
        try:
            await self.publisher.connect()
            await topo.declare(await self.publisher.channel(), self.topology)
        except (BrokerUnavailable, topo.TopologyConflict) as exc:
            await self.publisher.close()
            await self.pool.close()
            raise StartupError(str(exc)) from None
        await self._sync_directory()
        self.relay = OutboxRelay(self.pool, self.publisher,
                                 batch_size=self.settings.relay.batch_size,
                                 poll_interval=self.settings.relay.poll_interval,
                                 dsn=self.dsn, metrics=self.metrics,
                                 lease=_lease(self.settings.bus.publish_timeout))
        self.judge = PdfJudge(self.settings.signing)
        self.intake = Intake(self, self.judge)
        for conn in self.settings.axis:
            client = make_axis_client(
                conn.kind, endpoint=conn.endpoint, system_id=conn.system_id,
                secret=conn.secret.get_secret_value(), organ_id=conn.organ_id,
                timeout=conn.timeout)
            self.axis_clients[conn.name] = client
            self.axis_relays[conn.name] = OutboxRelay(
                self.pool, axis_sender(client, conn.name), batch_size=20,
                poll_interval=max(0.2, self.settings.relay.poll_interval),
                destination=axis_destination(conn.name), metrics=self.metrics,
                in_document_order=True, lease=_lease(client.longest_call))
            if conn.enabled:
                self.pollers[conn.name] = AxisPoller(self, conn, client)
        if self.run_background:
            stop = self.stopping
            self.spawn(lambda: self.relay.run(stop), "outbox-relay")
            for name, relay in self.axis_relays.items():
                self.spawn(lambda r=relay: r.run(stop), f"axis-relay-{name}")
            for name, poller in self.pollers.items():
                self.spawn(lambda p=poller: p.run(stop), f"axis-poller-{name}")
            self.spawn(lambda: consume_outcomes(self, stop), "outcomes")
            for worker in self.workers:
                self.spawn(lambda w=worker: w(self, stop), getattr(worker, "__name__", "worker"))

    @property
    def public_url(self) -> str:
        """Base URL adapters use to reach this gateway's API (attachments, statuses)."""
        s = self.settings
        return s.public_url or f"http://{s.http_host}:{s.http_port}"

    def axis_for(self, agency: str, arrival: str | None = None) -> str | None:
        """The axis connection that carries ``agency``'s messages (its configured one, else the
        one the document arrived on, else the only one configured)."""
        for served in self.settings.agencies:
            if served.code == agency and served.axis:
                return served.axis
        if arrival:
            return arrival
        return self.settings.axis[0].name if len(self.settings.axis) == 1 else None

    def wake_relays(self) -> None:
        if self.relay is not None:
            self.relay.wake()
        for relay in self.axis_relays.values():
            relay.wake()

    def spawn(self, factory: Callable[[], Awaitable[None]], name: str) -> asyncio.Task:
        """Run ``factory()`` in the background until the gateway stops, restarting it with
        backoff (1 s doubling to 60 s) whenever it crashes or returns early."""
        task = asyncio.create_task(self._guard(factory, name), name=name)
        self._tasks.append(task)
        return task

    async def _guard(self, factory: Callable[[], Awaitable[None]], name: str) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            try:
                await factory()
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task crashed; restarting", extra={
                    "task": name, "in_seconds": delay})
                self.metrics.task_restarts.labels(name).inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            delay = min(delay * 2, 60.0)

    async def _sync_directory(self) -> None:
        """Record the served agencies from configuration in the directory table."""
        async with self.pool.acquire() as conn:
            await conn.execute("UPDATE agencies SET served = false WHERE served")
            for agency in self.settings.agencies:
                await conn.execute(
                    "INSERT INTO agencies (code, name, served, axis) VALUES ($1, $2, true, $3)"
                    " ON CONFLICT (code) DO UPDATE SET served = true, axis = EXCLUDED.axis,"
                    " name = CASE WHEN EXCLUDED.name = '' THEN agencies.name"
                    " ELSE EXCLUDED.name END, updated_at = now()",
                    agency.code, agency.name, agency.axis)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop background tasks, then close clients, pool and connections. Each step gets
        ``grace`` seconds; a step that overruns is logged by name and forced, never awaited
        forever (a stuck shutdown would keep a replacement process from taking over)."""
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                log.error("background task did not stop", extra={
                    "task": task.get_name(),
                    "at": [f"{f.f_code.co_filename}:{f.f_lineno}" for f in task.get_stack()]})
        self._tasks.clear()
        for client in self.axis_clients.values():
            await self._bounded(client.close(), "axis client", grace)
        if self.judge is not None:
            self.judge.close()
        await self._bounded(self.publisher.close(), "publisher", grace)
        if self.pool is not None:
            if not await self._bounded(self.pool.close(), "database pool", grace):
                self.pool.terminate()

    @staticmethod
    async def _bounded(step: Awaitable[None], what: str, grace: float) -> bool:
        try:
            await asyncio.wait_for(step, grace)
            return True
        except TimeoutError:
            log.error("shutdown step overran; forced", extra={"step": what, "seconds": grace})
            return False

    def web_app(self) -> web.Application:
        app = web.Application(
            middlewares=make_middlewares(lambda: self.pool, self.metrics),
            client_max_size=self.settings.max_document_bytes,
        )
        app[GATEWAY] = self
        health.setup(app)
        import importlib

        for name in ROUTE_MODULES:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:
                    continue
                raise
            module.setup(app)
        return app


async def serve(settings: Settings) -> None:
    """Run the gateway until SIGINT/SIGTERM."""
    import signal

    gateway = Gateway(settings)
    await gateway.start()
    runner = web.AppRunner(gateway.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    log.info("gateway listening", extra={"host": settings.http_host, "port": settings.http_port})
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("gateway stopping")
    await runner.cleanup()
    await gateway.stop()

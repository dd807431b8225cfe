"""Wiring of one gateway process: database, broker, relays, flows, HTTP application, workers.

This module only wires. :class:`Gateway` builds the collaborators
(:class:`gateway.services.Services`: settings, metrics, publisher, topology, router, database
pool, PDF judge …), hands each flow the ones it uses (intake, axis pollers, outcome consumer,
outbound tracking, CRL refresher, key checks), builds the web application from
:data:`ROUTE_MODULES` and owns the background tasks. Nothing below it imports it (only the
CLI and the demo do; ``tests/service/test_layout.py`` keeps it so).

``start()`` fails fast with a :class:`StartupError` (one clear line) when a route module is
missing, PostgreSQL or RabbitMQ cannot be reached or migrations are pending; background tasks
(outbox relays, axis pollers, outcome consumer, outbound tracking, CRL refresher, key checks)
are started by ``start()`` and stopped by ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable
from types import ModuleType

import asyncpg
from aiohttp import web

from gateway.api import health
from gateway.api.middleware import make_middlewares
from gateway.api.signing import release_backend, signing_backend
from gateway.axis import AxisClient, make_axis_client
from gateway.bus import topology as topo
from gateway.bus.publisher import BrokerUnavailable, ConfirmedPublisher
from gateway.bus.relay import LEASE_MARGIN, OutboxRelay
from gateway.config import Settings
from gateway.db.directory import record_served
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
from gateway.outbound.tracking import ReceiveTracker
from gateway.pki.keyhealth import check_keys
from gateway.pki.keyhealth import monitor as key_monitor
from gateway.pki.revocation import HTTP_SESSION, LearnedCrlUrls, refresh_crls
from gateway.services import SERVICES, Services

log = logging.getLogger(__name__)

#: Modules adding routes: each has ``setup(app)``. Every one must exist: a missing one stops
#: the gateway at start (:class:`StartupError`), it is never skipped.
ROUTE_MODULES = ("gateway.api.documents", "gateway.api.statuses", "gateway.api.signing",
                 "gateway.api.axis_inbox", "gateway.api.deliveries", "gateway.api.axis_refused",
                 "gateway.api.holds", "gateway.api.keys", "gateway.api.outbound",
                 "gateway.api.outbound_flows")


def _lease(longest_send: float) -> float:
    """An outbox row's lease: the longest send of its destination, with room to spare (a row of
    a killed process is sent again this long after it was leased)."""
    return max(30.0, longest_send + 2 * LEASE_MARGIN)


class StartupError(Exception):
    code = "STARTUP_FAILED"


def route_modules(names: tuple[str, ...] | None = None) -> list[ModuleType]:
    """The route modules (``names``, default :data:`ROUTE_MODULES`), imported;
    :class:`StartupError` (one line) when one is missing or has no ``setup(app)``. A module that
    exists but fails to import raises its own error."""
    modules = []
    for name in ROUTE_MODULES if names is None else names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                raise StartupError(f"route module {name} not found (listed in"
                                   " gateway.app.ROUTE_MODULES)") from None
            raise
        if not callable(getattr(module, "setup", None)):
            raise StartupError(f"route module {name} has no setup(app)")
        modules.append(module)
    return modules


def public_url(settings: Settings) -> str:
    """Base URL adapters use to reach this gateway's API (attachments, statuses)."""
    return settings.public_url or f"http://{settings.http_host}:{settings.http_port}"


def build_topology(settings: Settings) -> topo.Topology:
    return topo.Topology(
        prefix=settings.bus.prefix,
        agencies=tuple(settings.served_codes),
        delivery_limit=settings.bus.delivery_limit,
        max_length=settings.bus.max_length,
        retry_delays=tuple(settings.bus.retry_delays),
    )


def build_router(settings: Settings, topology: topo.Topology | None = None) -> Router:
    """The delivery messages' router (no I/O: names and URLs from the configuration)."""
    return Router(topology or build_topology(settings), public_url(settings),
                  settings.bus.inline_threshold)


class Gateway:
    """One gateway process: builds the collaborators (:class:`gateway.services.Services`), the
    flows with the collaborators each uses, the web application and the background workers."""

    def __init__(self, settings: Settings, *, run_background: bool = True) -> None:
        self.settings = settings
        self.run_background = run_background
        topology = build_topology(settings)
        self.services = services = Services(
            settings=settings,
            metrics=Metrics(),
            publisher=ConfirmedPublisher(settings.amqp_url.get_secret_value(),
                                         timeout=settings.bus.publish_timeout),
            topology=topology,
            router=build_router(settings, topology),
            learned_crl_urls=LearnedCrlUrls(),
        )
        services.signing_pool = lambda: signing_backend(services).pool
        # the collaborators that never change, by name
        self.metrics = services.metrics
        self.publisher = services.publisher
        self.topology = services.topology
        self.router = services.router
        self.learned_crl_urls = services.learned_crl_urls
        self.extensions = services.extensions
        self.stopping = services.stopping
        self.relay: OutboxRelay | None = None
        self.axis_clients: dict[str, AxisClient] = {}
        self.axis_relays: dict[str, OutboxRelay] = {}
        self.pollers: dict[str, AxisPoller] = {}
        self._tasks: list[asyncio.Task] = []

    @property
    def pool(self) -> asyncpg.Pool:
        return self.services.pool

    @property
    def judge(self) -> PdfJudge | None:
        return self.services.judge

    @property
    def intake(self) -> Intake:
        return self.services.intake

    @property
    def dsn(self) -> str:
        return self.settings.database_url.get_secret_value()

    async def start(self) -> None:
        """Connect, build the flows with their collaborators and start the workers."""
        route_modules()  # a missing route module stops the start before anything connects
        s = self.services
        try:
            s.pool = await create_pool(self.dsn, min_size=self.settings.db_pool_min,
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
        await record_served(s.pool, self.settings.agencies)
        self.relay = OutboxRelay(self.pool, self.publisher,
                                 batch_size=self.settings.relay.batch_size,
                                 poll_interval=self.settings.relay.poll_interval,
                                 dsn=self.dsn, metrics=self.metrics,
                                 lease=_lease(self.settings.bus.publish_timeout))
        s.judge = PdfJudge(self.settings.signing)
        s.intake = Intake(self.settings, pool=s.pool, judge=s.judge, metrics=s.metrics,
                          router=s.router, learned_crl_urls=s.learned_crl_urls,
                          status_axis=s.axis_for, wake_relays=s.wake_relays)
        for conn in self.settings.axis:
            client = make_axis_client(
                conn.kind, endpoint=conn.endpoint, system_id=conn.system_id,
                secret=conn.secret.get_secret_value(), organ_id=conn.organ_id,
                timeout=conn.timeout)
            self.axis_clients[conn.name] = client
            self.axis_relays[conn.name] = OutboxRelay(
                self.pool, axis_sender(client, conn.name, s.pool), batch_size=20,
                poll_interval=max(0.2, self.settings.relay.poll_interval),
                destination=axis_destination(conn.name), metrics=self.metrics,
                in_document_order=True, lease=_lease(client.longest_call))
            if conn.enabled:
                self.pollers[conn.name] = AxisPoller(conn, client, dsn=self.dsn, pool=s.pool,
                                                     intake=s.intake, metrics=s.metrics)
        s.relays[:] = [self.relay, *self.axis_relays.values()]
        if self.run_background:
            stop = self.stopping
            self.spawn(lambda: self.relay.run(stop), "outbox-relay")
            for name, relay in self.axis_relays.items():
                self.spawn(lambda r=relay: r.run(stop), f"axis-relay-{name}")
            for name, poller in self.pollers.items():
                self.spawn(lambda p=poller: p.run(stop), f"axis-poller-{name}")
            # the axis receive state of sent copies (getSentEdocList, outbound.track_*)
            tracker = ReceiveTracker(s.pool, self.axis_clients, self.settings.outbound,
                                     metrics=s.metrics)
            self.spawn(lambda: tracker.run(stop), "outbound-tracking")
            self.spawn(lambda: consume_outcomes(stop, publisher=s.publisher,
                                                queue=s.topology.outcomes_queue, pool=s.pool),
                       "outcomes")
            signing = self.settings.signing
            # keeps the CRL cache of signing.revocation_* fresh
            self.spawn(lambda: refresh_crls(
                stop, settings=signing,
                cache=s.judge.policy.revocation_cache if s.judge is not None else None,
                session=s.extensions.get(HTTP_SESSION), metrics=s.metrics,
                learned=s.learned_crl_urls), "refresh_crls")
            # health of the signing keys (signing.key_check_*)
            self.spawn(lambda: check_keys(key_monitor(s), signing.key_check_interval, stop,
                                          release_pool=lambda: release_backend(s)),
                       "check_keys")

    @property
    def public_url(self) -> str:
        """Base URL adapters use to reach this gateway's API (attachments, statuses)."""
        return public_url(self.settings)

    def wake_relays(self) -> None:
        self.services.wake_relays()

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
        app[SERVICES] = self.services
        health.setup(app)
        for module in route_modules():
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

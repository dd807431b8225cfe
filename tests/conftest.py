"""Test harness: real PostgreSQL and RabbitMQ, isolated per test run.

Each run gets its own database ``edoc_t_<hex>`` (created, migrated, dropped at the end)
and its own RabbitMQ name prefix ``t<hex>`` (queues and exchanges deleted at the end).
Services come from ``EDOC_TEST_PG`` (admin DSN, default the local trust-auth server)
and ``EDOC_TEST_AMQP``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from gateway.bus import topology as topo
from gateway.config import Settings, load_settings
from gateway.db import audit
from gateway.db.migrate import migrate
from gateway.db.pool import connect, drop_database, ensure_database, with_database
from gateway.demo.exchange import wait_until

PG_ADMIN = os.environ.get("EDOC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("EDOC_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
RUN_ID = uuid.uuid4().hex[:8]

#: Agencies the test gateway serves (a city committee and a district committee).
SERVED = ("000.00.01.H99", "000.00.02.H99")

DATA_TABLES = ("audit_log", "status_events", "document_events", "signature_reports", "deliveries",
               "attachments", "documents", "outbox", "processed_messages", "api_clients",
               "agencies", "axis_refused")


_LOOP: list[asyncio.AbstractEventLoop] = []
STUCK_AFTER = float(os.environ.get("EDOC_TEST_STUCK_AFTER", "150"))  # slowest test: ~30 s


@pytest.fixture(scope="session", autouse=True)
async def _session_loop() -> AsyncIterator[None]:
    _LOOP.append(asyncio.get_running_loop())
    yield


def _real_stderr(config):
    """The terminal's stderr, past pytest's fd-level capture (diagnostics only)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    err = getattr(getattr(capman, "_global_capturing", None), "err", None)
    saved = getattr(err, "targetfd_save", None)
    return os.fdopen(os.dup(saved), "w") if saved is not None else sys.__stderr__


def _dump_tasks(nodeid: str, config) -> None:
    """Print where every task of the session loop waits (a test or teardown that hangs)."""
    out = _real_stderr(config)
    print(f"\n=== {nodeid} has not finished after {STUCK_AFTER:.0f} s; asyncio tasks:", file=out)
    for loop in _LOOP:
        for task in list(asyncio.all_tasks(loop)):
            print(f"--- {task.get_name()}", file=out)
            task.print_stack(limit=12, file=out)
    out.flush()
    if out is not sys.__stderr__:
        out.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    timer = threading.Timer(STUCK_AFTER, _dump_tasks, args=(item.nodeid, item.config))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture(scope="session")
def run_id() -> str:
    return RUN_ID


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    dsn = with_database(PG_ADMIN, f"edoc_t_{RUN_ID}")
    await ensure_database(dsn)
    conn = await connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield dsn
    await drop_database(dsn)


def make_settings(database_url: str, prefix: str, **overrides) -> Settings:
    data = {
        "database_url": database_url,
        "amqp_url": AMQP_URL,
        "bus": {"prefix": prefix, "retry_delays": [0.3, 0.6], "publish_timeout": 5.0},
        "relay": {"poll_interval": 0.05},
        "agencies": [{"code": c, "name": f"Agency {c}"} for c in SERVED],
        "db_pool_min": 1,
        "db_pool_max": 6,
    }
    data.update(overrides)
    return load_settings(None, **data)


@pytest.fixture(scope="session")
def bus_prefix() -> str:
    return f"t{RUN_ID}"


@pytest.fixture
async def settings(database_url: str, bus_prefix: str) -> Settings:
    return make_settings(database_url, bus_prefix)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the run's database, emptied before the test."""
    conn = await connect(database_url)
    await conn.execute("TRUNCATE " + ", ".join(DATA_TABLES) + " RESTART IDENTITY CASCADE")
    await conn.execute("UPDATE audit_head SET prev_hash = $1, hash = $1", audit.GENESIS)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
async def amqp() -> AsyncIterator[aio_pika.abc.AbstractRobustConnection]:
    conn = await aio_pika.connect_robust(AMQP_URL)
    yield conn
    await conn.close()


@pytest.fixture(scope="session", autouse=True)
async def _cleanup_bus(bus_prefix: str) -> AsyncIterator[None]:
    yield
    conn = await aio_pika.connect(AMQP_URL)
    try:
        channel = await conn.channel()
        t = topo.Topology(prefix=bus_prefix, agencies=SERVED, retry_delays=(0.3, 0.6))
        await topo.delete(channel, t)
    finally:
        await conn.close()


@pytest.fixture
async def gateway(settings: Settings, db: asyncpg.Connection):
    """A started gateway (background relay running) on the run's database and prefix."""
    from gateway.app import Gateway

    gw = Gateway(settings)
    await gw.start()
    yield gw
    await gw.stop()


@pytest.fixture
async def client(gateway, aiohttp_client):
    return await aiohttp_client(gateway.web_app())


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):  # noqa: ASYNC109
    """Poll an (async or sync) predicate until it returns a truthy value; fail the test after
    ``timeout`` seconds."""
    value = await wait_until(predicate, within=timeout, interval=interval)
    if not value:
        raise AssertionError(f"condition not met within {timeout}s")
    return value

"""An exchange in miniature: the VDXP simulator with a city committee (the sender) and the two
district committees this gateway serves, the gateway polling both, the test PKI it trusts."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.axis import make_axis_client
from gateway.axis.simulator import AxisSimulator, SimAgency
from gateway.demo.exchange import CITY, DISTRICT1, DISTRICT2, organ
from signing.testpki import build_test_pki
from tests.conftest import make_settings, wait_for

OTHER = SimAgency("sys-other", "secret-other", "000.00.09.H99", "UBND huyện Khác")
SENDER, D1, D2 = organ(CITY), organ(DISTRICT1), organ(DISTRICT2)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return build_test_pki(tmp_path_factory.mktemp("flows-pki"))


def crl_cache(pki) -> Path:
    """The test PKI's CRL cache (see :meth:`signing.testpki.TestPki.crl_cache`)."""
    return pki.crl_cache()


@pytest.fixture
async def axis():
    async with AxisSimulator([CITY, DISTRICT1, DISTRICT2, OTHER]) as sim:
        yield sim


def flow_settings(database_url, bus_prefix, pki, axis, **extra):
    conns = [
        {"name": f"d{i}", "endpoint": axis.base_url, "system_id": a.system_id,
         "secret": a.secret, "organ_id": a.organ_id, "poll_interval": 0.1, "timeout": 5}
        for i, a in ((1, DISTRICT1), (2, DISTRICT2))
    ]
    data = {
        "axis": conns,
        "agencies": [{"code": DISTRICT1.organ_id, "name": DISTRICT1.name, "axis": "d1"},
                     {"code": DISTRICT2.organ_id, "name": DISTRICT2.name, "axis": "d2"}],
        "signing": {"trust_bundles": [str(pki.trust_bundle_path)], "offline": True,
                    "workers": 2, "revocation_cache_dir": str(crl_cache(pki)),
                    "crl_refresh_interval": 0},
        "http_port": 0,
    }
    data.update(extra)
    return make_settings(database_url, bus_prefix, **data)


@pytest.fixture
async def flow_gateway(database_url, bus_prefix, pki, axis, db):
    gw = Gateway(flow_settings(database_url, bus_prefix, pki, axis))
    await gw.start()
    yield gw
    await gw.stop()


@pytest.fixture
async def city_client(axis):
    client = make_axis_client("vdxp", endpoint=axis.base_url, system_id=CITY.system_id,
                              secret=CITY.secret, organ_id=CITY.organ_id, timeout=5)
    yield client
    await client.close()


async def outbox_empty(db) -> bool:
    return await db.fetchval("SELECT count(*) FROM outbox") == 0


@pytest.fixture
async def drained_agency_queues(flow_gateway, amqp, db):
    """Leave the run's agency queues empty (they outlive a test; nothing consumes them here),
    once the relay has published everything the test queued."""
    yield
    await wait_for(lambda: outbox_empty(db), timeout=15)
    channel = await amqp.channel()
    for agency in (D1.organ_id, D2.organ_id):
        queue = await channel.get_queue(flow_gateway.topology.agency_queue(agency), ensure=False)
        await queue.purge()
    await channel.close()


async def purge_agency_queues(amqp, topology, agencies) -> None:
    """Empty the run's queues of ``agencies``: tests of other modules may leave messages there
    (a test that counts what an eOffice received starts from nothing)."""
    channel = await amqp.channel()
    try:
        for agency in agencies:
            queue = await channel.get_queue(topology.agency_queue(agency), ensure=False)
            await queue.purge()
    finally:
        await channel.close()

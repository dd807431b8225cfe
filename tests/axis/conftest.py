"""Fixtures: a VDXP simulator on an ephemeral 127.0.0.1 port and clients bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from gateway.axis.simulator import AxisSimulator, SimAgency
from gateway.axis.vdxp import VdxpClient
from tests.axis.samples import PARTY, PROVINCE, VPCP

AGENCY_A = SimAgency(
    "sys-vpcp", "secret-vpcp", VPCP, "Văn phòng Chính phủ", mail="vpcp@chinhphu.vn"
)
AGENCY_B = SimAgency("sys-h53", "secret-h53", PROVINCE, "UBND tỉnh Tây Ninh")
AGENCY_C = SimAgency("sys-a53", "secret-a53", PARTY, "Tỉnh ủy Tây Ninh")


@pytest.fixture
async def sim() -> AsyncIterator[AxisSimulator]:
    async with AxisSimulator([AGENCY_A, AGENCY_B, AGENCY_C]) as simulator:
        yield simulator


@pytest.fixture
async def connect(sim: AxisSimulator) -> AsyncIterator[Callable[..., VdxpClient]]:
    clients: list[VdxpClient] = []

    def factory(agency: SimAgency, **overrides) -> VdxpClient:
        settings = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "backoff_cap": 0.05}
        settings.update(overrides)
        secret = settings.pop("secret", agency.secret)
        client = VdxpClient(sim.base_url, agency.system_id, secret, **settings)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()

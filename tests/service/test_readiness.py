"""/readyz is 503 when signing cannot work (issue 11, item 13): a trust bundle gone, a closed or
broken verification pool — a load balancer must stop sending documents there."""

from __future__ import annotations

import pytest

from gateway.api.auth import create_client
from gateway.app import Gateway
from signing.pool import PoolUnavailable
from signing.testpki.pdfs import make_pdf
from tests.conftest import make_settings


async def _ready(gw, aiohttp_client) -> tuple[int, dict]:
    client = await aiohttp_client(gw.web_app())
    resp = await client.get("/readyz")
    return resp.status, await resp.json()


async def test_missing_trust_bundle_and_closed_pool_are_not_ready(
        database_url, bus_prefix, db, aiohttp_client, tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    gw = Gateway(make_settings(database_url, bus_prefix,
                               signing={"trust_bundles": [str(bundle)]}), run_background=False)
    await gw.start()
    try:
        status, body = await _ready(gw, aiohttp_client)
        assert status == 200 and body["checks"]["signing"] == "ok"
        bundle.unlink()
        status, body = await _ready(gw, aiohttp_client)
        assert status == 503
        assert body["checks"]["signing"].startswith("trust bundle unreadable")
        assert body["error"]["code"] == "NOT_READY"
        # the gateway's fault, not the caller's: 503 with Retry-After, not a 422
        token = (await create_client(db, name="eo", role="eoffice",
                                     agencies=["000.00.01.H99"])).token
        client = await aiohttp_client(gw.web_app())
        resp = await client.post("/v1/verify", data=make_pdf(1, "x"), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/pdf"})
        assert resp.status == 503, await resp.text()
        assert (await resp.json())["error"]["code"] == "TRUST_CONFIG"
        assert resp.headers["Retry-After"]
        bundle.write_text("-----BEGIN CERTIFICATE-----\n")
        gw.judge.pool.close(wait=False)
        status, body = await _ready(gw, aiohttp_client)
        assert status == 503 and body["checks"]["signing"] == "verification pool: closed"
    finally:
        await gw.stop()


def never_starts():  # pragma: no cover - runs in the worker, which never gets here
    return None


async def test_pool_whose_workers_cannot_start_is_not_ready(
        database_url, bus_prefix, db, aiohttp_client, tmp_path):
    broken = tmp_path / "keys.json"
    broken.write_text("{not json")
    gw = Gateway(make_settings(database_url, bus_prefix), run_background=False)
    await gw.start()
    try:
        pool = gw.judge.pool
        pool._initargs = (str(broken), None)  # every new worker fails in its initializer
        with pytest.raises(PoolUnavailable):
            await pool.call(never_starts)
        status, body = await _ready(gw, aiohttp_client)
        assert status == 503
        assert body["checks"]["signing"] == "verification pool: workers cannot start"
    finally:
        await gw.stop()

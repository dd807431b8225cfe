"""Authenticated tokens are cached per process for a bounded time (gateway.api.auth)."""

import asyncio
from datetime import UTC, datetime, timedelta

from gateway.api import auth
from gateway.api.auth import create_client


async def _get(client, token: str) -> int:
    resp = await client.get("/v1/documents", headers={"Authorization": f"Bearer {token}"})
    return resp.status


async def test_revoked_token_refused_after_the_cache_ttl(gateway, aiohttp_client, db,
                                                         monkeypatch):
    monkeypatch.setattr(auth, "AUTH_CACHE_TTL", 0.5)
    client = await aiohttp_client(gateway.web_app())
    token = (await create_client(db, name="op", role="operator")).token
    assert await _get(client, token) == 200  # now cached
    await db.execute("UPDATE api_clients SET revoked_at = now()")
    await asyncio.sleep(0.6)
    assert await _get(client, token) == 401


async def test_cached_token_never_outlives_its_expiry(client, db):
    expires = datetime.now(UTC) + timedelta(seconds=0.6)
    token = (await create_client(db, name="op", role="operator", expires_at=expires)).token
    assert await _get(client, token) == 200  # cached, but only until expires_at
    await asyncio.sleep(0.8)
    assert await _get(client, token) == 401


async def test_unknown_token_is_not_cached(client, db):
    created = await create_client(db, name="op", role="operator")
    await db.execute("UPDATE api_clients SET revoked_at = now()")
    assert await _get(client, created.token) == 401
    await db.execute("UPDATE api_clients SET revoked_at = NULL")
    assert await _get(client, created.token) == 200


async def test_last_used_at_written_at_most_once_per_resolution(gateway, aiohttp_client, db,
                                                                monkeypatch):
    monkeypatch.setattr(auth, "AUTH_CACHE_TTL", 0.0)  # every request asks the database
    client = await aiohttp_client(gateway.web_app())
    token = (await create_client(db, name="op", role="operator")).token
    assert await db.fetchval("SELECT last_used_at FROM api_clients") is None
    assert await _get(client, token) == 200
    first = await db.fetchval("SELECT last_used_at FROM api_clients")
    assert first is not None
    for _ in range(3):
        assert await _get(client, token) == 200
    assert await db.fetchval("SELECT last_used_at FROM api_clients") == first
    await db.execute("UPDATE api_clients SET last_used_at = now() - interval '2 minutes'")
    assert await _get(client, token) == 200
    assert await db.fetchval("SELECT last_used_at FROM api_clients") > first

"""The asyncpg connection pool and database bootstrap helpers."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without the default reset round trip (``RESET ALL; UNLISTEN *; …``).

    Safe because no code sets session state on pooled connections: LISTEN and session-level
    advisory locks (relay wake-up, poller lock, migrations) use dedicated connections, and the
    audit lock is transaction-scoped. asyncpg still rolls back an open transaction first.
    """


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, timeout=10,
        command_timeout=60, reset=_keep_session,
    )


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, timeout=10)
    await _init_connection(conn)
    return conn


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/") or "postgres"


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` if it does not exist; True if created."""
    name = database_name(dsn)
    admin = await asyncpg.connect(with_database(dsn, "postgres"), timeout=10)
    try:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await admin.close()


async def drop_database(dsn: str) -> None:
    name = database_name(dsn)
    admin = await asyncpg.connect(with_database(dsn, "postgres"), timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()

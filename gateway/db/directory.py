"""The agencies directory (``agencies``): which agencies this deployment serves."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from gateway.config import ServedAgency


async def record_served(pool: asyncpg.Pool, agencies: Iterable[ServedAgency]) -> None:
    """Record the served agencies from configuration in the directory table: every other
    agency is no longer served; a served agency's name is kept when the configuration gives
    none."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE agencies SET served = false WHERE served")
        for agency in agencies:
            await conn.execute(
                "INSERT INTO agencies (code, name, served, axis) VALUES ($1, $2, true, $3)"
                " ON CONFLICT (code) DO UPDATE SET served = true, axis = EXCLUDED.axis,"
                " name = CASE WHEN EXCLUDED.name = '' THEN agencies.name"
                " ELSE EXCLUDED.name END, updated_at = now()",
                agency.code, agency.name, agency.axis)

"""The hash-chained audit log.

Each entry stores ``hash = sha256(prev_hash | at | actor | action | subject | detail)``
where ``detail`` is canonical JSON; the first entry's ``prev_hash`` is 64 zeros.
Writers take a transaction-level advisory lock so the chain stays linear when
several processes write at once. :func:`verify_chain` recomputes every hash.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import asyncpg

AUDIT_LOCK = 0x6564_6F63_6175_6469 & 0x7FFF_FFFF_FFFF_FFFF
GENESIS = "0" * 64


def entry_hash(prev: str, at: datetime, actor: str, action: str, subject: str | None,
               detail: dict[str, Any]) -> str:
    canonical = json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    material = "|".join((prev, at.isoformat(), actor, action, subject or "", canonical))
    return hashlib.sha256(material.encode()).hexdigest()


async def append(conn: asyncpg.Connection, *, actor: str, action: str, subject: str | None = None,
                 detail: dict[str, Any] | None = None) -> str:
    """Append one entry; must run inside the caller's transaction. Returns its hash."""
    detail = detail or {}
    await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK)
    prev = await conn.fetchval("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1") or GENESIS
    at = datetime.now(UTC)
    digest = entry_hash(prev, at, actor, action, subject, detail)
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action, subject, detail, prev_hash, hash)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        at, actor, action, subject, detail, prev, digest,
    )
    return digest


async def verify_chain(conn: asyncpg.Connection) -> int | None:
    """Return the id of the first entry whose hash does not match, or None if intact."""
    prev = GENESIS
    async with conn.transaction():
        async for row in conn.cursor("SELECT * FROM audit_log ORDER BY id"):
            expected = entry_hash(prev, row["at"], row["actor"], row["action"], row["subject"],
                                  row["detail"])
            if row["prev_hash"] != prev or row["hash"] != expected:
                return row["id"]
            prev = row["hash"]
    return None

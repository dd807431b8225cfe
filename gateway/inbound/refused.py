"""Axis items refused as malformed, remembered so that they are fetched once.

The national axis may keep listing an item after ``updateStatus(fail)`` (nothing says it drops
it). Without a memory the poller downloads, parses and fails the same package on every round,
and its idle back-off never starts. The poller records each item it refused (axis connection,
axis docId, package SHA-256, the ``EDXML_*`` code) in ``axis_refused`` (migration 0006); an item
recorded there is not fetched again, only counted (``seen_count``, ``last_seen``) and, while the
axis has not accepted our ``fail``, acknowledged again. Operators list them (GET
/v1/axis/refused).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Refusal:
    axis: str
    axis_doc_id: str
    message_type: str
    sha256: str
    code: str
    document_id: uuid.UUID | None
    acked: bool


async def known(conn: asyncpg.Connection, axis: str,
                doc_ids: list[str]) -> dict[str, tuple[bool, str]]:
    """Which of ``doc_ids`` were refused before on ``axis``: docId -> (whether the axis took
    our ``fail``, the refusal code). Counts this listing of each."""
    if not doc_ids:
        return {}
    rows = await conn.fetch(
        "UPDATE axis_refused SET seen_count = seen_count + 1, last_seen = now()"
        " WHERE axis = $1 AND axis_doc_id = ANY($2::text[]) RETURNING axis_doc_id, acked, code",
        axis, doc_ids)
    return {r["axis_doc_id"]: (r["acked"], r["code"]) for r in rows}


async def remember(conn: asyncpg.Connection, refusal: Refusal) -> None:
    """Record a refused item (idempotent: a second record of the same item updates it)."""
    await conn.execute(
        "INSERT INTO axis_refused (axis, axis_doc_id, message_type, sha256, code, document_id,"
        " acked) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (axis, axis_doc_id) DO UPDATE SET sha256 = EXCLUDED.sha256,"
        " code = EXCLUDED.code, document_id = EXCLUDED.document_id,"
        " acked = axis_refused.acked OR EXCLUDED.acked, last_seen = now()",
        refusal.axis, refusal.axis_doc_id, refusal.message_type, refusal.sha256, refusal.code,
        refusal.document_id, refusal.acked)


async def mark_acked(conn: asyncpg.Connection, axis: str, doc_id: str) -> None:
    await conn.execute("UPDATE axis_refused SET acked = true WHERE axis = $1 AND axis_doc_id = $2",
                       axis, doc_id)


async def list_refused(conn: asyncpg.Connection, *, axis: str | None = None,
                       limit: int = 100) -> list[dict]:
    """The refused items, most recently listed first, as JSON-ready dicts."""
    rows = await conn.fetch(
        "SELECT axis, axis_doc_id, message_type, sha256, code, document_id, acked, first_seen,"
        " last_seen, seen_count FROM axis_refused WHERE $1::text IS NULL OR axis = $1"
        " ORDER BY last_seen DESC, axis, axis_doc_id LIMIT $2", axis, limit)
    return [{**dict(r), "document_id": str(r["document_id"]) if r["document_id"] else None,
             "first_seen": r["first_seen"].isoformat(), "last_seen": r["last_seen"].isoformat()}
            for r in rows]

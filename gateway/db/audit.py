"""The hash-chained audit log.

Each entry stores ``hash = sha256(prev_hash | at | actor | action | subject | detail)``
where ``detail`` is canonical JSON; the first entry's ``prev_hash`` is 64 zeros.
The chain's head lives in the one-row ``audit_head`` table: an append is one statement that
updates the head (the row lock keeps the chain linear when several processes write at once,
until the writer's transaction ends) and inserts the entry with the hash PostgreSQL computed
from the head's previous value (``sha256`` over the UTF-8 material, lowercase hex: the same
bytes as :func:`entry_hash`). :func:`verify_chain` recomputes every hash in Python.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

GENESIS = "0" * 64


def _after_prev(at: datetime, actor: str, action: str, subject: str | None,
                detail: dict[str, Any]) -> str:
    """The hashed material without its leading ``prev_hash``."""
    canonical = json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return "|" + "|".join((at.isoformat(), actor, action, subject or "", canonical))


def entry_hash(prev: str, at: datetime, actor: str, action: str, subject: str | None,
               detail: dict[str, Any]) -> str:
    material = prev + _after_prev(at, actor, action, subject, detail)
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One entry to append, for :func:`append_when` (a statement of the caller's)."""

    actor: str
    action: str
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def args(self) -> tuple[Any, ...]:
        """The six parameter values of :func:`append_when`'s SQL, in order."""
        return (self.at, self.actor, self.action, self.subject, self.detail,
                _after_prev(self.at, self.actor, self.action, self.subject, self.detail))


def _ctes(first: int, when: str | None) -> tuple[str, str]:
    """The head update and the entry insert (named ``audit_head_moved``), parameters
    ``$first`` … ``$first+5`` as :meth:`AuditEntry.args`."""
    at, actor, action, subject, detail, rest = (f"${first + i}" for i in range(6))
    cond = f" WHERE EXISTS (SELECT 1 FROM {when})" if when else ""
    head = ("UPDATE audit_head SET prev_hash = hash,"
            f" hash = encode(sha256(convert_to(hash || {rest}, 'UTF8')), 'hex'){cond}"
            " RETURNING prev_hash, hash")
    entry = ("INSERT INTO audit_log (at, actor, action, subject, detail, prev_hash, hash)"
             f" SELECT {at}, {actor}, {action}, {subject}, {detail}, h.prev_hash, h.hash"
             " FROM audit_head_moved h")
    return head, entry


_HEAD, _ENTRY = _ctes(1, None)
_APPEND = f"WITH audit_head_moved AS ({_HEAD})\n{_ENTRY}\nRETURNING hash"


def append_when(source: str | None, first_param: int) -> str:
    """Two CTEs for a ``WITH`` of the caller's statement that append one entry if, and only if,
    the earlier CTE ``source`` returned a row (so: only if the caller's own change happened;
    ``None``: always), in the same round trip. Parameters from ``$first_param`` on:
    :meth:`AuditEntry.args`. The head's row lock is held until the statement's transaction
    ends."""
    head, entry = _ctes(first_param, source)
    return f"audit_head_moved AS ({head}), audit_entry AS ({entry})"


async def append(conn: asyncpg.Connection, *, actor: str, action: str, subject: str | None = None,
                 detail: dict[str, Any] | None = None) -> str:
    """Append one entry; must run inside the caller's transaction (the head stays locked
    until it ends). Returns its hash."""
    entry = AuditEntry(actor, action, subject, detail or {})
    digest = await conn.fetchval(_APPEND, *entry.args())
    if digest is None:
        raise RuntimeError("audit_head has no row: run the migrations (0004)")
    return digest


async def verify_chain(conn: asyncpg.Connection) -> int | None:
    """Return the id of the first entry whose hash does not match, or None if intact.

    The head must name the last entry: if it does not, entries were cut from the end of the
    log, and the id after the last one left is returned (the first entry missing)."""
    prev, last_id = GENESIS, 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor("SELECT * FROM audit_log ORDER BY id"):
            expected = entry_hash(prev, row["at"], row["actor"], row["action"], row["subject"],
                                  row["detail"])
            if row["prev_hash"] != prev or row["hash"] != expected:
                return row["id"]
            prev, last_id = row["hash"], row["id"]
        head = await conn.fetchval("SELECT hash FROM audit_head")
    if head is not None and head != prev:
        return last_id + 1
    return None

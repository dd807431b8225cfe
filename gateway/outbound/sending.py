"""Sending one copy of an outbound document to the axis, exactly once (issue 13, "Send" and
"No double send").

The outbox row of a copy (``headers``: ``message_type = edoc``, ``to = [receiver]``,
``send_id``) is sent by :func:`send_copy`, which the axis relay calls:

1. **begin**: the copy's ``attempts`` is counted (committed) before ``sendEdoc``; a copy that is
   no longer ``QUEUED`` (sent or refused already: a crash after recording and before the outbox
   row was deleted) is not sent again;
2. **reconcile**: a copy with an earlier attempt may already be at the axis (the process died,
   or the answer was lost, after ``sendEdoc`` took effect and before its DocId was recorded):
   the axis is asked for the packages we sent with the copy's SHA-256
   (:meth:`gateway.axis.AxisClient.find_sent`); one addressed to the receiver is adopted
   (``send.reconciled`` on the timeline) instead of sending again. An axis that cannot answer
   that question (a permanent refusal of the lookup) leaves at-least-once: the copy is sent
   again (``send.unreconciled``; receivers deduplicate on the DocumentId);
3. **send**: ``sendEdoc`` with ``to = [receiver]``; success records ``SENT`` with the axis
   DocId before the relay deletes the outbox row; a permanent refusal
   (:func:`gateway.axis.errors.is_permanent`) records ``FAILED`` with the axis's ErrorCode and
   ErrorDesc and raises :class:`gateway.bus.relay.Undeliverable` (the row leaves the outbox, the
   other copies and later rows go on); anything else is kept as ``last_error`` and re-raised
   (the relay retries with backoff).

The document's state follows its copies (:mod:`gateway.outbound.states`), recomputed under the
document's row lock so that copies finishing at once never leave it behind.
"""

from __future__ import annotations

import logging
import uuid

import asyncpg

from gateway.axis import AxisClient
from gateway.axis.errors import AxisError, AxisRejectedError, is_permanent
from gateway.bus.relay import Undeliverable
from gateway.outbound.states import DOCUMENT_STATE_SQL

log = logging.getLogger(__name__)

_BEGIN = """
UPDATE outbound_sends SET attempts = attempts + 1, attempted_at = now(), updated_at = now()
WHERE id = $1 AND state = 'QUEUED'
RETURNING attempts, edxml_sha256, receiver_code, document_id
"""

_LOCK_DOCUMENT = """
SELECT d.id FROM documents d JOIN outbound_sends s ON s.document_id = d.id
WHERE s.id = $1 FOR UPDATE OF d
"""

#: The copy's new state ($2) with its columns, the document's state from all its copies, and a
#: timeline event ($3 event, $4 detail) - only if the copy was still QUEUED.
_FINISH = f"""
WITH copy AS (
    UPDATE outbound_sends SET state = $2, updated_at = now(),
           axis_doc_id = coalesce($5, axis_doc_id),
           sent_at = CASE WHEN $2 = 'SENT' THEN now() END,
           failed_at = CASE WHEN $2 = 'FAILED' THEN now() END,
           error_code = $6, error_desc = $7,
           last_error = CASE WHEN $2 = 'SENT' THEN NULL ELSE last_error END
    WHERE id = $1 AND state = 'QUEUED'
    RETURNING document_id, receiver_code, state
), states AS (
    SELECT copy.document_id, array_append(coalesce(
        (SELECT array_agg(o.state) FROM outbound_sends o
         WHERE o.document_id = copy.document_id AND o.id <> $1), '{{}}'), copy.state) AS states
    FROM copy
), doc AS (
    UPDATE documents d SET state = {DOCUMENT_STATE_SQL}, updated_at = now()
    FROM states WHERE d.id = states.document_id
    RETURNING d.id
)
INSERT INTO document_events (document_id, event, agency_code, detail)
SELECT copy.document_id, $3, copy.receiver_code, $4::jsonb FROM copy
RETURNING 1
"""

_NOTE_ERROR = """
UPDATE outbound_sends SET last_error = $2, updated_at = now() WHERE id = $1 AND state = 'QUEUED'
"""

_EVENT = """
INSERT INTO document_events (document_id, event, agency_code, detail)
SELECT document_id, $2, receiver_code, $3::jsonb FROM outbound_sends WHERE id = $1
"""


async def _finish(pool: asyncpg.Pool, send_id: uuid.UUID, state: str, event: str,
                  detail: dict, *, axis_doc_id: str | None = None,
                  error_code: str | None = None, error_desc: str | None = None) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK_DOCUMENT, send_id)
        done = await conn.fetchval(_FINISH, send_id, state, event, detail,
                                   axis_doc_id, error_code, error_desc)
    return bool(done)


async def send_copy(pool: asyncpg.Pool, client: AxisClient, connection: str,
                    body: bytes, send_id: uuid.UUID) -> None:
    """Send one copy (see the module docstring); returns when the copy is ``SENT`` (or was
    already ``SENT``/``FAILED``), raises :class:`Undeliverable` when the axis refused it for
    good, any other error when it should be tried again."""
    row = await pool.fetchrow(_BEGIN, send_id)
    if row is None:
        return  # sent or refused already (or gone): the outbox row only has to leave
    receiver = row["receiver_code"]
    if row["attempts"] > 1 and await _reconciled(pool, client, send_id, row["edxml_sha256"],
                                                 receiver):
        return
    try:
        result = await client.send_edoc(body, to=[receiver])
    except AxisError as exc:
        if is_permanent(exc):
            assert isinstance(exc, AxisRejectedError)
            await _finish(pool, send_id, "FAILED", "send.failed",
                          {"axis": connection, "error_code": exc.axis_code,
                           "error_desc": exc.axis_desc[:2000]},
                          error_code=exc.axis_code, error_desc=exc.axis_desc[:2000])
            log.warning("axis refused an outbound copy for good", extra={
                "axis": connection, "receiver": receiver, "axis_code": exc.axis_code})
            raise Undeliverable(f"axis ErrorCode {exc.axis_code}", exc.axis_desc) from None
        await _note(pool, send_id, str(exc))
        raise
    await _finish(pool, send_id, "SENT", "send.sent",
                  {"axis": connection, "axis_doc_id": result.doc_id},
                  axis_doc_id=result.doc_id)
    log.info("outbound copy sent", extra={"axis": connection, "receiver": receiver,
                                          "axis_doc_id": result.doc_id})


async def _reconciled(pool: asyncpg.Pool, client: AxisClient, send_id: uuid.UUID, sha256: str,
                      receiver: str) -> bool:
    """Whether an earlier attempt's copy is at the axis: if so its DocId is adopted."""
    try:
        receipts = await client.find_sent(sha256)
    except AxisError as exc:
        if not is_permanent(exc):
            await _note(pool, send_id, f"reconciliation: {exc}")
            raise
        log.warning("the axis cannot list what we sent; sending again (at-least-once)",
                    extra={"receiver": receiver, "error": str(exc)})
        await pool.execute(_EVENT, send_id, "send.unreconciled",
                           {"error": str(exc)[:2000]})
        return False
    found = [r for r in receipts if r.to_code == receiver and r.sender_doc_id]
    if not found:
        return False
    doc_id = found[-1].sender_doc_id
    await _finish(pool, send_id, "SENT", "send.reconciled",
                  {"axis_doc_id": doc_id, "copies_at_axis": len(found)}, axis_doc_id=doc_id)
    log.info("outbound copy found at the axis; DocId adopted, not sent again",
             extra={"receiver": receiver, "axis_doc_id": doc_id})
    return True


async def _note(pool: asyncpg.Pool, send_id: uuid.UUID, error: str) -> None:
    """Keep the last transient error on the copy (best effort: the relay keeps it too)."""
    try:
        await pool.execute(_NOTE_ERROR, send_id, error[:2000])
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        pass

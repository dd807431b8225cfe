"""Consuming the outcomes adapters report (``P.outcomes``) into delivery states.

Each outcome (``schemas/messages/outcome.schema.json``) is applied once: its ``outcome_id`` is
recorded in ``processed_messages`` in the same transaction as the state change, and the
message is acknowledged only after the commit. Delivery states move
``PENDING/PUBLISHED → RETRYING → DELIVERED | DEAD``; a late ``retrying`` never overrides
``DELIVERED``. When every delivery of a document is delivered, the document becomes
``DELIVERED`` (unless a business status already moved it further).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from gateway.logs import correlation

if TYPE_CHECKING:
    from gateway.bus.publisher import ConfirmedPublisher

log = logging.getLogger(__name__)
CONSUMER = "outcomes"

#: The delivery update of each outcome ($1 delivery id, $2 at, $3 attempt, $4 next_at, $5 error).
_UPDATE = {
    "delivered": """
        UPDATE deliveries SET state = 'DELIVERED', delivered_at = $2,
               attempts = greatest(attempts, $3), last_error = NULL, next_at = NULL,
               updated_at = now()
        WHERE id = $1 AND $4::timestamptz IS NULL AND $5::text IS NULL""",
    "retrying": """
        UPDATE deliveries SET state = 'RETRYING', attempts = greatest(attempts, $3),
               next_at = $4, last_error = $5, updated_at = now()
        WHERE id = $1 AND state <> 'DELIVERED' AND $2::timestamptz IS NOT NULL""",
    "dead": """
        UPDATE deliveries SET state = 'DEAD', attempts = greatest(attempts, $3), last_error = $5,
               next_at = $4, updated_at = now()
        WHERE id = $1 AND state <> 'DELIVERED' AND $2::timestamptz IS NOT NULL""",
}

#: One outcome applied in ONE statement (atomic on its own, one round trip): mark it processed,
#: update the delivery (only if it was not processed before) and add the timeline event. Every
#: new outcome is on the timeline, also one that arrives after a later one (outcomes travel
#: through a queue and are applied concurrently): it then moves no state and says ``late``.
#: Returns whether the outcome was new and the document of the delivery it changed.
_APPLY_ONE = """
WITH first AS (
    INSERT INTO processed_messages (consumer, message_id) VALUES ($6, $7)
    ON CONFLICT DO NOTHING RETURNING true
), d AS (
    {update}
      AND EXISTS (SELECT 1 FROM first)
    RETURNING document_id, agency_code
), ev AS (
    INSERT INTO document_events (document_id, event, agency_code, detail)
    SELECT v.document_id, $8, v.agency_code,
           $9::jsonb || jsonb_build_object('late', NOT EXISTS (SELECT 1 FROM d))
    FROM deliveries v WHERE v.id = $1 AND EXISTS (SELECT 1 FROM first)
)
SELECT EXISTS (SELECT 1 FROM first) AS first, (SELECT document_id FROM d) AS document_id
"""

#: Run as its own statement AFTER the outcome committed: a fresh snapshot sees deliveries that
#: concurrent outcomes committed meanwhile, so of two parallel last outcomes of one document
#: the later check always sees both (inside one snapshot neither would see the other).
_DOCUMENT_DELIVERED = """
UPDATE documents SET state = 'DELIVERED', updated_at = now()
WHERE id = $1 AND state = 'ROUTED'
  AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.document_id = $1 AND x.state <> 'DELIVERED')
"""
_APPLY = {kind: _APPLY_ONE.format(update=update) for kind, update in _UPDATE.items()}


class OutcomeError(ValueError):
    code = "OUTCOME_INVALID"


def parse_outcome(body: bytes) -> dict:
    try:
        data = json.loads(body)
        if data.get("schema") != "edoc.outcome/1" or data["outcome"] not in _APPLY:
            raise OutcomeError("not an edoc.outcome/1 message")
        data["delivery_uuid"] = uuid.UUID(data["delivery_id"])
        data["at_dt"] = datetime.fromisoformat(data["at"])
        data["next_dt"] = datetime.fromisoformat(data["next_at"]) if data.get("next_at") else None
        data["attempt"] = int(data.get("attempt", 1))
        if not 1 <= data["attempt"] <= 1_000_000:
            raise OutcomeError(f"attempt {data['attempt']} out of range")
        if data.get("error") is not None:
            data["error"] = str(data["error"]).replace("\x00", "")[:2000]
        str(data["outcome_id"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OutcomeError(f"unreadable outcome: {exc}") from None
    return data


async def apply_outcome(conn, data: dict) -> bool:
    """Apply one outcome (autocommit statements, not inside a transaction); False if it was
    applied before."""
    delivered = data["outcome"] == "delivered"
    row = await conn.fetchrow(
        _APPLY[data["outcome"]], data["delivery_uuid"], data["at_dt"], data["attempt"],
        None if delivered else data["next_dt"], None if delivered else data.get("error"),
        CONSUMER, str(data["outcome_id"]), f"delivery.{data['outcome']}",
        {k: data.get(k) for k in ("attempt", "error", "adapter", "eoffice_reference",
                                  "next_at")})
    if delivered and row["document_id"] is not None:
        await conn.execute(_DOCUMENT_DELIVERED, row["document_id"])
    return row["first"]


async def consume_outcomes(stop: asyncio.Event, *, publisher: ConfirmedPublisher, queue: str,
                           pool: asyncpg.Pool) -> None:
    """Background worker: apply the outcomes of ``queue`` (on ``publisher``'s connection) to the
    database ``pool`` until ``stop`` is set."""
    channel = await publisher.connection.channel()
    await channel.set_qos(prefetch_count=50)
    # passive declare (not get_queue): a robust channel re-consumes it after a reconnect
    outcomes = await channel.declare_queue(queue, passive=True)

    async def on_message(message: AbstractIncomingMessage) -> None:
        with correlation(message.correlation_id):
            try:
                data = parse_outcome(message.body)
            except OutcomeError as exc:
                log.error("dropping unreadable outcome", extra={"error": str(exc),
                                                                "message_id": message.message_id})
                await message.ack()
                return
            try:
                async with pool.acquire() as conn:
                    await apply_outcome(conn, data)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                # the outcome itself cannot be stored: retrying cannot help (the delivery shows
                # up in edoc_deliveries_overdue if it never gets a better outcome)
                log.error("dropping an outcome the database refuses", extra={
                    "error": str(exc), "message_id": message.message_id})
                await message.ack()
                return
            except Exception:
                log.exception("outcome not applied; returned to the queue")
                await asyncio.sleep(1.0)  # database trouble: do not spin
                await message.nack(requeue=True)
                return
            await message.ack()

    tag = await outcomes.consume(on_message)
    try:
        await stop.wait()
    finally:
        try:
            await outcomes.cancel(tag)
            await channel.close()
        except Exception:  # broker gone already
            pass

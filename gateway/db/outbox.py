"""Writing to the transactional outbox.

A message that must leave the gateway (to RabbitMQ or to an axis) is written as
an ``outbox`` row in the same transaction as the state change that caused it.
The relay (:mod:`gateway.bus.relay`) publishes committed rows and deletes them
once the broker confirmed; a rolled-back transaction therefore sends nothing.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

AMQP = "amqp"


def axis_destination(connection: str) -> str:
    return f"axis:{connection}"


@dataclass(frozen=True)
class OutboxMessage:
    destination: str
    body: bytes
    exchange: str = ""
    routing_key: str = ""
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)
    correlation_id: str | None = None
    document_id: uuid.UUID | None = None
    delivery_id: uuid.UUID | None = None

    @classmethod
    def json(cls, destination: str, payload: dict[str, Any], **kw: Any) -> OutboxMessage:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        return cls(destination=destination, body=body, **kw)


_COLUMNS = ("message_id, destination, exchange, routing_key, headers, content_type, body,"
            " correlation_id, document_id, delivery_id")
_INSERT = f"""
INSERT INTO outbox ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (message_id) DO NOTHING
"""


def insert_when(source: str, first_param: int) -> str:
    """SQL of an outbox INSERT, for a ``WITH`` of the caller's statement, that adds its row
    once per row of the earlier CTE ``source`` (so: only if the caller's own change happened),
    in the same round trip. Its parameters are ``$first_param`` onwards, filled by
    :func:`args`."""
    params = ", ".join(f"${first_param + i}" for i in range(10))
    return (f"INSERT INTO outbox ({_COLUMNS}) SELECT {params} FROM {source}"
            " ON CONFLICT (message_id) DO NOTHING")


def args(m: OutboxMessage) -> tuple[Any, ...]:
    """The ten column values of ``m`` in the order of :data:`_INSERT` and :func:`insert_when`."""
    return (m.message_id, m.destination, m.exchange, m.routing_key, m.headers, m.content_type,
            m.body, m.correlation_id, m.document_id, m.delivery_id)


async def enqueue(conn: asyncpg.Connection, *messages: OutboxMessage) -> None:
    """Insert messages into the outbox; call inside the transaction of the state change."""
    if len(messages) == 1:
        await conn.execute(_INSERT, *args(messages[0]))
    elif messages:
        await conn.executemany(_INSERT, [args(m) for m in messages])

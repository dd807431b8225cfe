import asyncio
import uuid
from datetime import UTC, datetime

from gateway.db.pool import connect
from gateway.inbound.outcomes import OutcomeError, apply_outcome, parse_outcome


def outcome(delivery_id, kind="delivered", attempt=1, error=None) -> dict:
    body = {"schema": "edoc.outcome/1", "outcome_id": str(uuid.uuid4()),
            "delivery_id": str(delivery_id), "document_id": str(uuid.uuid4()), "agency": "A",
            "outcome": kind, "attempt": attempt, "at": datetime.now(UTC).isoformat(),
            "adapter": "test", "error": error}
    import json
    return parse_outcome(json.dumps(body).encode())


async def _document_with_deliveries(db, n: int):
    doc = uuid.uuid4()
    await db.execute("INSERT INTO documents (id, direction, dedup_key, state, correlation_id)"
                     " VALUES ($1, 'inbound', $2, 'ROUTED', 'c')", doc, f"k:{doc}")
    ids = [uuid.uuid4() for _ in range(n)]
    for i, d in enumerate(ids):
        await db.execute("INSERT INTO deliveries (id, document_id, agency_code, message_id)"
                         " VALUES ($1, $2, $3, $4)", d, doc, f"A{i}", uuid.uuid4())
    return doc, ids


async def test_parallel_last_outcomes_still_complete_the_document(db, database_url):
    for _ in range(5):  # two deliveries confirmed at the same moment, several times over
        doc, (a, b) = await _document_with_deliveries(db, 2)
        c1, c2 = await connect(database_url), await connect(database_url)
        try:
            await asyncio.gather(apply_outcome(c1, outcome(a)), apply_outcome(c2, outcome(b)))
        finally:
            await c1.close()
            await c2.close()
        assert await db.fetchval("SELECT state FROM documents WHERE id = $1", doc) == "DELIVERED"


async def test_outcomes_apply_once_and_never_regress(db):
    _doc, (a,) = await _document_with_deliveries(db, 1)
    done = outcome(a)
    assert await apply_outcome(db, done) is True
    assert await apply_outcome(db, done) is False  # the same outcome again: nothing
    late = outcome(a, "retrying", attempt=1, error="timeout")
    assert await apply_outcome(db, late) is True
    row = await db.fetchrow("SELECT state, last_error FROM deliveries WHERE id = $1", a)
    assert row["state"] == "DELIVERED" and row["last_error"] is None
    # both are on the timeline, the late one marked so (and each once)
    events = await db.fetch("SELECT event, detail FROM document_events WHERE document_id = $1"
                            " ORDER BY id", _doc)
    assert [(e["event"], e["detail"]["late"]) for e in events] == [
        ("delivery.delivered", False), ("delivery.retrying", True)]
    assert events[1]["detail"]["error"] == "timeout"


def test_unreadable_outcomes_are_refused():
    import pytest

    with pytest.raises(OutcomeError):
        parse_outcome(b'{"schema": "edoc.outcome/1", "outcome": "delivered"}')
    with pytest.raises(OutcomeError):
        outcome(uuid.uuid4(), attempt=10**12)

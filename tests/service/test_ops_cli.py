import asyncio
import os
import subprocess
import sys
import uuid

from gateway.db import audit


async def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDOC_DATABASE_URL": database_url}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "gateway", *args],
                                   capture_output=True, text=True, timeout=60, env=env)


async def test_ops_cli_lists_refuses_and_checks_the_audit_chain(db, database_url):
    async with db.transaction():
        await audit.append(db, actor="test", action="x")
    doc, delivery = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO documents (id, direction, dedup_key, state, correlation_id,"
                     " subject) VALUES ($1, 'inbound', $2, 'ROUTED', 'c', 's')", doc, str(doc))
    await db.execute("INSERT INTO deliveries (id, document_id, agency_code, message_id, state)"
                     " VALUES ($1, $2, 'A', $3, 'DELIVERED')", delivery, doc, uuid.uuid4())
    listed = await _cli(database_url, "ops", "deliveries")
    assert listed.returncode == 0 and str(delivery) in listed.stdout
    refused = await _cli(database_url, "ops", "replay", str(delivery))
    assert refused.returncode == 1 and "DELIVERY_NOT_DEAD" in refused.stdout
    ok = await _cli(database_url, "ops", "audit")
    assert ok.returncode == 0 and "intact (1 entries)" in ok.stdout
    await db.execute("UPDATE audit_log SET actor = 'forged'")
    broken = await _cli(database_url, "ops", "audit")
    assert broken.returncode == 1 and "BROKEN" in broken.stdout

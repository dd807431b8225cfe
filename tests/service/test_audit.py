from gateway.db import audit


async def test_chain_detects_tampering(db):
    async with db.transaction():
        await audit.append(db, actor="cli", action="token.create", subject="a", detail={"n": 1})
    async with db.transaction():
        await audit.append(db, actor="officer:x", action="pdf.sign", subject="b",
                           detail={"sha256": "ab" * 32, "key": "seal"})
    assert await audit.verify_chain(db) is None
    await db.execute("UPDATE audit_log SET detail = '{\"n\": 2}' WHERE subject = 'a'")
    first_bad = await audit.verify_chain(db)
    assert first_bad == await db.fetchval("SELECT id FROM audit_log WHERE subject = 'a'")

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


async def test_chain_detects_a_cut_tail(db):
    for n in range(3):
        async with db.transaction():
            await audit.append(db, actor="cli", action="token.create", subject=f"t{n}")
    last = await db.fetchval("SELECT max(id) FROM audit_log")
    await db.execute("DELETE FROM audit_log WHERE id = $1", last)
    assert await audit.verify_chain(db) == last


async def test_concurrent_appends_keep_one_linear_chain(db, database_url):
    """Writers in separate sessions at once: every entry follows exactly the one before it,
    and hashes computed by PostgreSQL match Python's over non-ASCII material."""
    import asyncio

    from gateway.db.pool import create_pool

    pool = await create_pool(database_url, min_size=8, max_size=8)
    try:
        async def write(n: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await audit.append(conn, actor=f"cán bộ:{n}", action="pdf.sign",
                                   subject=f"Công văn {n}", detail={"n": n, "ghi_chú": "Đã ký"})
                await asyncio.sleep(0.01 * (n % 3))  # hold the head while others wait

        await asyncio.gather(*(write(n) for n in range(24)))
    finally:
        await pool.close()
    assert await audit.verify_chain(db) is None
    rows = await db.fetch("SELECT prev_hash, hash FROM audit_log ORDER BY id")
    assert len(rows) == 24
    assert len({r["prev_hash"] for r in rows}) == 24

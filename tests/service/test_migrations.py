import asyncio

from gateway.db.migrate import available_migrations, migrate
from gateway.db.pool import connect, drop_database, ensure_database, with_database
from tests.conftest import PG_ADMIN, RUN_ID


async def test_fresh_rerun_and_concurrent_migrations():
    dsn = with_database(PG_ADMIN, f"edoc_m_{RUN_ID}")
    assert await ensure_database(dsn) is True
    try:
        a, b = await connect(dsn), await connect(dsn)
        try:
            # two processes starting at once: each migration applied exactly once
            first, second = await asyncio.gather(migrate(a), migrate(b))
            expected = [m.version for m in available_migrations()]
            assert sorted(first + second) == expected
            assert await migrate(a) == []  # re-run is a no-op
            recorded = await a.fetch("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in recorded] == expected
            tables = {r["tablename"] for r in await a.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert {"documents", "deliveries", "outbox", "audit_log", "api_clients",
                    "processed_messages", "status_events", "agencies"} <= tables
            # 0003: already-compressed columns skip pglz (lz4, or stored as is without it)
            for table, column in (("documents", "edxml"), ("attachments", "data")):
                compression, storage = await a.fetchrow(
                    "SELECT attcompression::text, attstorage::text FROM pg_attribute"
                    " WHERE attrelid = $1::regclass AND attname = $2", table, column)
                assert compression == "l" or storage == "e", (table, compression, storage)
        finally:
            await a.close()
            await b.close()
    finally:
        await drop_database(dsn)

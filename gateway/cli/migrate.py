"""``edoc-gateway migrate``: create the database if needed and apply pending migrations."""

from __future__ import annotations

from gateway.cli._common import run, settings_from


def register(sub) -> None:
    p = sub.add_parser("migrate", help="apply database migrations (idempotent)")
    p.add_argument("--no-create", action="store_true",
                   help="do not create the database when it does not exist")
    p.set_defaults(func=_migrate)


def _migrate(args) -> int:
    settings = settings_from(args)
    return run(_main(settings.database_url.get_secret_value(), not args.no_create))


async def _main(dsn: str, create: bool) -> int:
    from gateway.db.migrate import migrate
    from gateway.db.pool import connect, database_name, ensure_database

    if create and await ensure_database(dsn):
        print(f"created database {database_name(dsn)}")
    conn = await connect(dsn)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0

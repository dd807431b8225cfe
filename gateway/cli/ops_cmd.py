"""``edoc-gateway ops``: operators' tools from the command line (no SQL needed).

``ops deliveries [--state DEAD] [--agency CODE]`` lists deliveries; ``ops replay ID…`` moves
DEAD deliveries back to PENDING with their message id (see :mod:`gateway.ops.replay`); ``ops audit``
verifies the hash chain of the audit log.
"""

from __future__ import annotations

import argparse
import uuid

from gateway.cli._common import run, settings_from
from gateway.cli._text import bounded_int, safe, word


def _delivery_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a delivery id: {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser("ops", help="operators' tools: deliveries, replay, audit check")
    osub = p.add_subparsers(dest="ops_command", metavar="ACTION", required=True)
    ls = osub.add_parser("deliveries", help="list deliveries (newest first)")
    ls.add_argument("--state", choices=["PENDING", "PUBLISHED", "RETRYING", "DELIVERED", "DEAD"])
    ls.add_argument("--agency", type=word, metavar="CODE")
    ls.add_argument("--limit", type=bounded_int(1, 10_000), default=50,
                    help="at most this many (1 to 10000, default 50)")
    ls.set_defaults(func=_list)
    rp = osub.add_parser("replay", help="replay DEAD deliveries (same message id)")
    rp.add_argument("ids", nargs="+", metavar="DELIVERY_ID", type=_delivery_id)
    rp.set_defaults(func=_replay)
    au = osub.add_parser("audit", help="verify the audit log's hash chain")
    au.set_defaults(func=_audit)


def _list(args) -> int:
    return run(_list_main(settings_from(args), args))


async def _list_main(settings, args) -> int:
    from gateway.db.pool import connect
    from gateway.ops.replay import list_deliveries

    conn = await connect(settings.database_url.get_secret_value())
    try:
        rows = await list_deliveries(conn, state=args.state, agency=args.agency,
                                     limit=args.limit)
    finally:
        await conn.close()
    for r in rows:
        code = f"{r['code_number'] or ''}/{r['code_notation'] or ''}"
        print(safe(f"{r['id']}  {r['state']:<9} {r['agency_code']:<16}"
                   f" attempts={r['attempts']}  {code}  {(r['last_error'] or '')[:60]}"))
    return 0


def _replay(args) -> int:
    return run(_replay_main(settings_from(args), args.ids))


async def _replay_main(settings, ids) -> int:
    from gateway.app import build_router
    from gateway.db.pool import connect
    from gateway.ops.replay import ReplayError, replay_delivery

    router = build_router(settings)  # no I/O: names and URLs from the configuration
    conn = await connect(settings.database_url.get_secret_value())
    failed = 0
    try:
        for delivery_id in ids:
            try:
                await replay_delivery(conn, router, delivery_id, actor="cli:operator")
                print(f"{delivery_id} PENDING (the relay publishes it)")
            except ReplayError as exc:
                failed += 1
                print(safe(f"{delivery_id} refused: {exc.code}: {exc.message}"))
    finally:
        await conn.close()
    return 1 if failed else 0


def _audit(args) -> int:
    return run(_audit_main(settings_from(args)))


async def _audit_main(settings) -> int:
    from gateway.db import audit
    from gateway.db.pool import connect

    conn = await connect(settings.database_url.get_secret_value())
    try:
        bad = await audit.verify_chain(conn)
        count = await conn.fetchval("SELECT count(*) FROM audit_log")
    finally:
        await conn.close()
    if bad is not None:
        print(f"audit chain BROKEN at entry {bad}")
        return 1
    print(f"audit chain intact ({count} entries)")
    return 0

"""``edoc-gateway check-config``: validate configuration and (optionally) reach the services."""

from __future__ import annotations

import json

from gateway.cli import CliError
from gateway.cli._common import run, settings_from


def register(sub) -> None:
    p = sub.add_parser("check-config", help="validate the configuration and exit")
    p.add_argument("--connect", action="store_true",
                   help="also connect to PostgreSQL and RabbitMQ")
    p.set_defaults(func=_check)


def _check(args) -> int:
    settings = settings_from(args)
    shown = settings.model_dump(mode="json")  # SecretStr fields print as '**********'
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    if args.connect:
        return run(_connect(settings))
    return 0


async def _connect(settings) -> int:
    from gateway.bus.publisher import BrokerUnavailable, ConfirmedPublisher
    from gateway.db.pool import connect

    try:
        conn = await connect(settings.database_url.get_secret_value())
        await conn.close()
    except Exception as exc:
        raise CliError(f"cannot connect to PostgreSQL: {exc}", 3) from None
    publisher = ConfirmedPublisher(settings.amqp_url.get_secret_value())
    try:
        await publisher.connect()
    except BrokerUnavailable as exc:
        raise CliError(str(exc), 3) from None
    finally:
        await publisher.close()
    print("PostgreSQL and RabbitMQ reachable")
    return 0

"""``edoc-gateway demo``: run the demo exchange (see :mod:`gateway.demo.run`)."""

from __future__ import annotations

from gateway.cli._text import positive_float


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the demo exchange: axis, gateway, adapters, eOffices")
    p.add_argument("--once", action="store_true",
                   help="exit after one round; exit code 1 if anything went missing")
    p.add_argument("--timeout", type=positive_float(86400), default=90.0,
                   help="seconds to wait for the round")
    p.set_defaults(func=_demo)


def _demo(args) -> int:
    from gateway.cli import CliError
    from gateway.cli._common import run_loop
    from gateway.demo.run import default_urls, run_demo
    from gateway.logs import setup_logging

    setup_logging("WARNING")
    database_url, amqp_url = default_urls()
    try:
        return run_loop(run_demo(once=args.once, database_url=database_url,
                                    amqp_url=amqp_url, within=args.timeout))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        raise CliError(f"cannot reach a service: {exc}", 3) from None

"""``edoc-gateway serve``: run the gateway (HTTP API, relay, pollers)."""

from __future__ import annotations

from gateway.cli._common import run, settings_from
from gateway.cli._text import port


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the gateway service")
    p.add_argument("--host", help="listen address (EDOC_HTTP_HOST)")
    p.add_argument("--port", type=port, help="listen port (EDOC_HTTP_PORT)")
    p.set_defaults(func=_serve)


def _serve(args) -> int:
    from gateway.app import serve
    from gateway.logs import setup_logging

    settings = settings_from(args)
    if args.host:
        settings.http_host = args.host
    if args.port is not None:
        settings.http_port = args.port
    setup_logging(settings.log_level)
    return run(_main(settings, serve))


async def _main(settings, serve) -> int:
    await serve(settings)
    return 0

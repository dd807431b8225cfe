"""``edoc-gateway adapter run``: carry one agency's documents into its eOffice.

Kinds: ``webhook`` (POST signed JSON to ``--url``; secret from ``--secret-file``),
``folder`` (write each document atomically under ``--folder``) and ``sim`` (an eOffice
simulator and a webhook adapter pointing at it, in one process, for demos). The bus
topology comes from the gateway's settings (prefix, retry ladder) and is declared
idempotently at start. Runs until SIGINT/SIGTERM. The first line printed says what runs;
secrets and tokens are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

from gateway.cli import CliError
from gateway.cli._common import run_loop
from gateway.cli._text import bounded_int, port, positive_float, safe, word

KINDS = ("webhook", "folder", "sim")


def register(sub) -> None:
    p = sub.add_parser("adapter", help="run an adapter that delivers an agency's documents")
    adapter_sub = p.add_subparsers(dest="adapter_command", metavar="ACTION")
    run = adapter_sub.add_parser("run", help="consume one agency queue until interrupted")
    run.add_argument("--agency", required=True, metavar="CODE", type=word,
                     help="agency code (OrganId)")
    run.add_argument("--kind", required=True, choices=KINDS, help="adapter kind")
    run.add_argument("--url", help="eOffice webhook URL (webhook)")
    run.add_argument("--secret-file", metavar="F", help="file with the webhook HMAC secret")
    run.add_argument("--folder", metavar="DIR", help="drop folder root (folder)")
    run.add_argument("--gateway-url", metavar="URL",
                     help="gateway base URL for attachments and statuses (default: public_url)")
    run.add_argument("--token-file", metavar="F", help="file with the gateway API token")
    run.add_argument("--state-dir", metavar="DIR", default=".edoc-adapter",
                     help="where the dedup database lives (default .edoc-adapter)")
    run.add_argument("--prefetch", type=bounded_int(1, 65535), default=8, metavar="N",
                     help="messages in hand at once (1 to 65535, default 8)")
    run.add_argument("--timeout", type=positive_float(3600), default=10.0, metavar="SECONDS",
                     help="webhook request timeout (default 10)")
    sim = run.add_argument_group("simulator (--kind sim)")
    sim.add_argument("--sim-host", default="127.0.0.1", help="simulator address")
    sim.add_argument("--sim-port", type=port, default=0, help="simulator port (0 = any free)")
    sim.add_argument("--answer", choices=("03", "02", "none"), default="03",
                     help="business status the simulated eOffice reports (default 03)")
    sim.add_argument("--fail-first", type=bounded_int(0, 1_000_000), default=0, metavar="N",
                     help="answer 503 to the first N webhooks")
    run.set_defaults(func=_run)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _read_secret(path: str | None, what: str) -> str | None:
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"cannot read {what} file {path}: {exc.strerror}", 2) from None
    if not value:
        raise CliError(f"{what} file {path} is empty", 2)
    return value


def check_args(args: Any) -> None:
    """Raise CliError for a combination of options that cannot work (each value alone was
    checked by its argparse type)."""
    if args.kind == "webhook" and not (args.url and args.secret_file):
        raise CliError("--kind webhook needs --url and --secret-file", 2)
    if args.kind == "folder" and not args.folder:
        raise CliError("--kind folder needs --folder DIR", 2)


def _run(args: Any) -> int:
    from gateway.cli._common import settings_from
    from gateway.logs import setup_logging

    check_args(args)
    if args.folder:
        args.folder = os.path.abspath(args.folder)
    settings = settings_from(args)
    setup_logging(settings.log_level)
    secret = _read_secret(args.secret_file, "secret")
    token = _read_secret(args.token_file, "token")
    try:
        Path(args.state_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--state-dir {args.state_dir}: {exc.strerror}", 2) from None
    try:
        return run_loop(_serve(args, settings, secret, token))
    except OSError as exc:
        raise CliError(f"cannot reach a service: {exc}", 3) from None


async def _declare(settings: Any, topology: Any) -> None:
    import aio_pika

    from gateway.bus.topology import TopologyConflict, declare

    try:
        connection = await aio_pika.connect(settings.amqp_url.get_secret_value(), timeout=10)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        raise CliError(f"cannot connect to RabbitMQ: {exc}", 3) from None
    try:
        await declare(await connection.channel(), topology)
    except TopologyConflict as exc:
        raise CliError(str(exc), 3) from None
    except aio_pika.exceptions.AMQPError as exc:
        raise CliError(f"cannot declare the bus topology: {exc}", 3) from None
    finally:
        await connection.close()


async def _serve(args: Any, settings: Any, secret: str | None, token: str | None) -> int:
    from adapters.dedup import SqliteDedupStore
    from adapters.eoffice_sim import EOfficeSimulator
    from adapters.folder import FolderAdapter
    from adapters.runner import AdapterRunner, RunnerError
    from adapters.webhook import WebhookAdapter
    from gateway.bus.topology import Topology

    topology = Topology(prefix=settings.bus.prefix, agencies=(args.agency,),
                        delivery_limit=settings.bus.delivery_limit,
                        max_length=settings.bus.max_length,
                        retry_delays=tuple(settings.bus.retry_delays))
    await _declare(settings, topology)
    gateway_url = args.gateway_url or settings.public_url
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    sim: EOfficeSimulator | None = None
    adapter: Any
    if args.kind == "folder":
        adapter = FolderAdapter(Path(args.folder))
        target = args.folder
    else:
        key = (secret or secrets.token_hex(32)).encode()
        url = args.url
        if args.kind == "sim":
            sim = EOfficeSimulator(key, gateway_url=gateway_url, gateway_token=token,
                                   answer=None if args.answer == "none" else args.answer,
                                   fail_first=args.fail_first, host=args.sim_host,
                                   port=args.sim_port)
            try:
                url = await sim.start()
            except OSError as exc:
                raise CliError(f"cannot listen on {args.sim_host}:{args.sim_port}: {exc}",
                               3) from None
            print(safe(f"eoffice-sim listening on {url}"), flush=True)
        adapter = WebhookAdapter(url, key, timeout=args.timeout)
        target = url
    try:
        dedup = SqliteDedupStore(Path(args.state_dir) / f"dedup-{args.kind}-{args.agency}.sqlite3")
    except (OSError, sqlite3.Error) as exc:
        raise CliError(f"--state-dir {args.state_dir}: {exc}", 2) from None
    runner = AdapterRunner(adapter, amqp_url=settings.amqp_url.get_secret_value(),
                           topology=topology, agency=args.agency, gateway_token=token,
                           dedup=dedup, prefetch=args.prefetch, gateway_url=gateway_url)
    try:
        try:
            await runner.start()
        except RunnerError as exc:
            raise CliError(str(exc), 3) from None
        print(safe(f"adapter {args.kind} for {args.agency} consuming "
                   f"{topology.agency_queue(args.agency)} -> {target}"), flush=True)
        await stop.wait()
    finally:
        await runner.stop()
        if isinstance(adapter, WebhookAdapter):
            await adapter.close()
        if sim is not None:
            await sim.stop()
        dedup.close()
    stats = runner.stats
    logging.getLogger(__name__).info("adapter stopped", extra={
        "delivered": stats.delivered, "duplicates": stats.duplicates,
        "retried": stats.retried, "dead": stats.dead, "requeued": stats.requeued})
    if sim is not None:
        print(f"eoffice-sim: accepted {sim.accepted}, duplicates {sim.duplicates}, "
              f"received {sim.received}", file=sys.stderr, flush=True)
    print("adapter stopped", file=sys.stderr, flush=True)
    return 0

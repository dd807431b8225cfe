"""``edoc-gateway axis-sim``: run the VDXP axis simulator until interrupted.

Agencies come from ``--agencies FILE.json`` (a JSON list of objects with ``system_id``,
``secret``, ``organ_id``, ``name`` and optional ``mail``, ``pid``, ``code102``) and/or repeated
``--agency SYSTEMID:SECRET:ORGANID:NAME``. The first line printed is ``axis-sim listening on
<base URL>``; secrets are never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from datetime import timedelta
from pathlib import Path

from gateway.cli import CliError
from gateway.cli._common import run_loop
from gateway.cli._text import port, positive_float, safe, word

_FIELDS = ("system_id", "secret", "organ_id", "name")


def register(sub) -> None:
    p = sub.add_parser("axis-sim", help="run a VDXP axis simulator (for tests and demos)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=8700, help="port (default 8700, 0 = any free)")
    p.add_argument("--agencies", metavar="FILE.json", help="JSON list of agencies")
    p.add_argument("--agency", action="append", default=[],
                   metavar="SYSTEMID:SECRET:ORGANID:NAME", help="one agency (repeatable)")
    p.add_argument("--organ-id", default="000.00.00.H00", type=word,
                   help="OrganId the axis writes in its TraceHeader")
    p.add_argument("--max-skew", type=positive_float(86400), default=300.0, metavar="SECONDS",
                   help="accepted clock difference of signed timestamps (default 300)")
    p.set_defaults(func=_run)


def load_agencies(path: str | None, specs: list[str]):
    """Agencies from a JSON file and ``SYSTEMID:SECRET:ORGANID:NAME`` specs; CliError if bad."""
    from gateway.axis.simulator import SimAgency

    agencies: list[SimAgency] = []
    if path:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read agencies file {path}: {exc}", 2) from None
        if not isinstance(raw, list):
            raise CliError(f"{path}: expected a JSON list of agencies", 2)
        for index, item in enumerate(raw):
            if not isinstance(item, dict) or not all(
                isinstance(item.get(f), str) and item.get(f) for f in _FIELDS
            ):
                raise CliError(f"{path}: agency #{index + 1} needs {', '.join(_FIELDS)}", 2)
            optional = {k: item[k] for k in ("mail", "pid", "code102") if item.get(k)}
            agencies.append(SimAgency(*(item[f] for f in _FIELDS), **optional))
    for spec in specs:
        parts = spec.split(":", 3)
        if len(parts) != 4 or not all(p.strip() for p in parts):
            raise CliError(f"--agency {spec.split(':')[0]}:...: expected "
                           "SYSTEMID:SECRET:ORGANID:NAME", 2)
        agencies.append(SimAgency(*(p.strip() for p in parts)))
    if not agencies:
        raise CliError("no agency: give --agencies FILE.json or --agency ...", 2)
    for attr in ("system_id", "organ_id"):
        values = [getattr(a, attr) for a in agencies]
        if len(set(values)) != len(values):
            raise CliError(f"duplicate {attr} among agencies", 2)
    return agencies


def _run(args) -> int:
    agencies = load_agencies(args.agencies, args.agency)
    try:
        return run_loop(_serve(args, agencies))
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc}", 3) from None


async def _serve(args, agencies) -> int:
    from gateway.axis.simulator import AxisSimulator

    simulator = AxisSimulator(
        agencies, organ_id=args.organ_id, max_skew=timedelta(seconds=args.max_skew)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    base_url = await simulator.start(args.host, args.port)
    try:
        print(safe(f"axis-sim listening on {base_url}"), flush=True)
        for agency in agencies:
            print("  " + safe(f"agency {agency.organ_id} system_id={agency.system_id}"
                              f" ({agency.name})"), flush=True)
        await stop.wait()
    finally:
        await simulator.stop()
    print("axis-sim stopped", file=sys.stderr, flush=True)
    return 0

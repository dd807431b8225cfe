"""The ``edoc-gateway`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None``; the module adds its parser and sets ``func``
to a callable ``func(args) -> int`` (the exit code). Modules are imported
lazily by name so a broken optional dependency only disables its command.

Exit codes, the same for every command: 0 done; 1 the operation failed (a document invalid,
a replay refused, an unexpected error); 2 bad input or configuration (an argument, a file, a
setting); 3 a service (PostgreSQL, RabbitMQ, an axis) unreachable; 130 interrupted. Every
failure is one line on stderr, ``edoc-gateway: <what>``, with untrusted text escaped
(:func:`gateway.cli._text.safe`); never a traceback (``EDOC_DEBUG=1`` shows the traceback of an
unexpected error). Argument values are checked by argparse types from :mod:`gateway.cli._text`
before any work starts.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import NoReturn

from gateway.cli._text import safe

#: Libraries whose log records would otherwise reach Python's last-resort handler (raw lines
#: on stderr beside the CLI's own one-line answer, e.g. aiormq's "error when creating
#: transport"). A NullHandler stops that; records still propagate to the root handlers that
#: ``serve`` and ``adapter run`` install (:func:`gateway.logs.setup_logging`).
QUIET_LIBRARIES = ("aiormq", "aio_pika", "asyncpg", "pyhanko", "pyhanko_certvalidator")

#: Subcommand modules, in the order shown by ``--help``.
COMMAND_MODULES = (
    "serve",
    "migrate",
    "tokens",
    "check_config",
    "demo",
    "edxml_cmd",
    "verify_cmd",
    "sign_cmd",
    "axis_sim_cmd",
    "adapter_cmd",
    "ops_cmd",
)


class CliError(Exception):
    """A failure to report as one line on stderr with a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error shape: one line naming the argument, exit 2 (argparse's
    own prints the usage first, and subcommand parsers inherit this class)."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        self.exit(2, f"edoc-gateway: {safe(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edoc-gateway",
        description="Document-exchange gateway for edXML (QCVN 102:2016) with PAdES signing.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file (or EDOC_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gateway.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gateway.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def _fail(message: str, code: int) -> int:
    print(f"edoc-gateway: {safe(message)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code; every failure becomes one line on stderr."""
    for name in QUIET_LIBRARIES:
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad argument (already reported)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `edoc-gateway ... | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except RecursionError:
        return _fail("input nested too deeply", 2)
    except (ConnectionError, TimeoutError) as exc:
        return _fail(f"cannot reach a service: {exc}", 3)
    except OSError as exc:  # a file named on the command line or in the configuration
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", 2)
    except Exception as exc:
        if os.environ.get("EDOC_DEBUG"):
            raise
        return _fail(f"unexpected error ({type(exc).__name__}): {exc}"
                     " (EDOC_DEBUG=1 shows the traceback)", 1)

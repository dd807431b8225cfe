"""The ``edoc-gateway`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None``; the module adds its parser and sets ``func``
to a callable ``func(args) -> int`` (the exit code). Modules are imported
lazily by name so a broken optional dependency only disables its command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"edoc-gateway: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

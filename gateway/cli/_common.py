"""Helpers shared by subcommands: settings loading and one-line failures."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any

import asyncpg

from gateway.cli import CliError
from gateway.config import ConfigError, Settings, load_settings


def settings_from(args: Any) -> Settings:
    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        raise CliError(f"configuration error: {exc}", 2) from None


def run_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion on uvloop's event loop when it is installed (libuv: the
    gateway's own CPU goes mostly to I/O wake-ups, HTTP and database round trips, which it
    makes cheaper), else on asyncio's; ``EDOC_EVENT_LOOP=asyncio`` asks for asyncio's."""
    if os.environ.get("EDOC_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


#: PostgreSQL refusing the connection itself (no such database, role or password, shutting
#: down, full): the service is unreachable for us (exit 3), unlike a failed statement (exit 1).
_PG_UNREACHABLE = (
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.PostgresConnectionError,  # also a connection lost on the way
)


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run a coroutine, turning unreachable services into one clear line (exit 3) and a failed
    statement into one line (exit 1)."""
    from gateway.app import StartupError

    try:
        return run_loop(coro)
    except StartupError as exc:
        raise CliError(str(exc), 3) from None
    except (OSError, TimeoutError) as exc:
        raise CliError(f"cannot reach a service: {exc}", 3) from None
    except _PG_UNREACHABLE as exc:
        raise CliError(f"PostgreSQL: {exc}", 3) from None
    except asyncpg.exceptions.UndefinedTableError as exc:
        raise CliError(f"PostgreSQL: {exc} (run 'edoc-gateway migrate')", 2) from None
    except (asyncpg.PostgresError, asyncpg.exceptions.InterfaceError) as exc:
        raise CliError(f"PostgreSQL: {exc}", 1) from None

"""The CLI runs its services on uvloop's event loop, or on asyncio's when asked."""

from __future__ import annotations

import asyncio

from gateway.cli._common import run_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default_and_asyncio_on_request(monkeypatch):
    monkeypatch.delenv("EDOC_EVENT_LOOP", raising=False)
    assert run_loop(_loop_module()).startswith("uvloop")
    monkeypatch.setenv("EDOC_EVENT_LOOP", "asyncio")
    assert run_loop(_loop_module()).startswith("asyncio")

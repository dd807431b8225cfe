"""``edoc-gateway adapter run`` as a real process against the real RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from gateway.cli import CliError, main
from tests.adapters.helpers import AGENCY, delivery_message, publish_delivery
from tests.conftest import AMQP_URL, wait_for


def _env(bus) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"EDOC_BUS__PREFIX": bus.topology.prefix, "EDOC_AMQP_URL": AMQP_URL,
                "EDOC_BUS__RETRY_DELAYS": "[0.2, 0.2]", "EDOC_LOG_LEVEL": "WARNING"})
    env.pop("EDOC_CONFIG", None)
    return env


async def _start(bus, *argv: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "adapter", "run", "--agency", AGENCY, *argv,
        env=_env(bus), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []
    assert proc.stdout is not None
    while not any(line.startswith("adapter ") for line in lines):
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            _out, err = await proc.communicate()
            pytest.fail(f"adapter exited early: {err.decode()[-2000:]}")
        lines.append(line.decode().strip())
    return proc, lines


async def _stop(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    return err.decode()


async def test_folder_adapter_process_delivers_and_stops_cleanly(bus, tmp_path: Path):
    drop = tmp_path / "drop"
    proc, lines = await _start(bus, "--kind", "folder", "--folder", str(drop),
                               "--state-dir", str(tmp_path / "state"))
    try:
        assert bus.topology.agency_queue(AGENCY) in lines[-1]
        msg = delivery_message(files={"a.pdf": b"%PDF-1.4 cli"}, inline=True)
        await publish_delivery(bus.publisher, bus.topology, msg)
        final = drop / AGENCY / msg["message_id"]
        await wait_for(lambda: (final / "manifest.json").exists(), timeout=20)
        assert (final / "a.pdf").read_bytes() == b"%PDF-1.4 cli"
    finally:
        await _stop(proc)
    assert (tmp_path / "state" / f"dedup-folder-{AGENCY}.sqlite3").exists()


async def test_sim_kind_runs_simulator_and_webhook_adapter(bus, tmp_path: Path):
    proc, lines = await _start(bus, "--kind", "sim", "--answer", "none",
                               "--state-dir", str(tmp_path / "state"))
    try:
        assert lines[0].startswith("eoffice-sim listening on http://127.0.0.1:")
        msg = delivery_message(files={"a.pdf": b"%PDF sim"}, inline=True)
        await publish_delivery(bus.publisher, bus.topology, msg)
        await publish_delivery(bus.publisher, bus.topology, msg)  # a duplicate
        await wait_for(lambda: _two_outcomes(bus, msg["message_id"]), timeout=20)
    finally:
        err = await _stop(proc)
    assert "eoffice-sim: accepted 1, duplicates 0" in err


async def _two_outcomes(bus, message_id: str) -> bool:
    await bus.outcomes.poll()
    return bus.outcomes.of(message_id) == ["delivered", "delivered"]


@pytest.mark.parametrize("argv", [
    ["adapter", "run", "--agency", AGENCY, "--kind", "webhook"],
    ["adapter", "run", "--agency", AGENCY, "--kind", "folder"],
    ["adapter", "run", "--agency", AGENCY, "--kind", "sim", "--prefetch", "0"],
])
def test_bad_option_combinations_are_one_line_errors(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edoc-gateway: --") and "\n" not in err


def test_missing_secret_file_is_a_clear_error(tmp_path: Path):
    from gateway.cli.adapter_cmd import _read_secret

    with pytest.raises(CliError, match="cannot read secret file"):
        _read_secret(str(tmp_path / "nope"), "secret")

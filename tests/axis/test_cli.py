"""``edoc-gateway axis-sim`` as a real process, and its agency loading."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest

from gateway.axis import MessageType
from gateway.axis.vdxp import VdxpClient
from gateway.cli import CliError
from gateway.cli.axis_sim_cmd import load_agencies
from tests.axis import samples


async def test_axis_sim_command_serves_until_terminated(tmp_path):
    agencies = tmp_path / "agencies.json"
    agencies.write_text(json.dumps([
        {"system_id": "sys-a", "secret": "sa", "organ_id": samples.VPCP,
         "name": "Văn phòng Chính phủ", "mail": "vpcp@chinhphu.vn"},
    ]), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "axis-sim", "--port", "0",
        "--agencies", str(agencies), "--agency", f"sys-b:sb:{samples.PROVINCE}:UBND tỉnh",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert first.startswith("axis-sim listening on http://127.0.0.1:")
        base_url = first.rsplit(" ", 1)[1].strip()
        listing = (await proc.stdout.readline() + await proc.stdout.readline()).decode()
        assert "sys-b" in listing and "sb" not in listing.replace("sys-b", "")
        async with VdxpClient(base_url, "sys-a", "sa", retries=0) as vpcp:
            await vpcp.send_edoc(samples.edoc())
        async with VdxpClient(base_url, "sys-b", "sb", retries=0) as province:
            assert [e.code for e in await province.directory()] == [samples.VPCP,
                                                                    samples.PROVINCE]
            assert await province.count_received(MessageType.EDOC) == 1
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 20)
    assert rc == 0


def test_load_agencies_rejects_bad_input(tmp_path):
    with pytest.raises(CliError):
        load_agencies(None, [])
    with pytest.raises(CliError):
        load_agencies(None, ["sys-a:secret-only"])
    with pytest.raises(CliError):
        load_agencies(None, ["a:s:000.00.00.G22:X", "a:t:000.00.00.H53:Y"])  # same system id
    bad = tmp_path / "bad.json"
    bad.write_text('[{"system_id": "a"}]', encoding="utf-8")
    with pytest.raises(CliError):
        load_agencies(str(bad), [])
    [agency] = load_agencies(None, ["a:s:000.00.00.G22:Văn phòng: Chính phủ"])
    assert (agency.organ_id, agency.name) == ("000.00.00.G22", "Văn phòng: Chính phủ")

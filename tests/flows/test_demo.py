"""``make demo`` (``edoc-gateway demo --once``): the whole demo exchange, including the round
trip of issue 13 (a district's report up with the agency seal applied by the gateway, 01/03
back; a take back 13 → 15), completes and exits 0. Its own database and queue prefix."""

from __future__ import annotations

from gateway.demo.run import run_demo
from tests.conftest import AMQP_URL, PG_ADMIN


async def test_the_demo_runs_every_step_and_exits_0(capsys):
    assert await run_demo(once=True, database_url=PG_ADMIN, amqp_url=AMQP_URL, within=60) == 0
    out = capsys.readouterr().out
    assert "Chiều lên / upward" in out and "Lấy lại / take back" in out
    assert "AgencySeal               agency            valid" in out
    assert "01 000.00.00.H99: Đã đến" in out and "document now TAKEN_BACK" in out
    assert out.rstrip().endswith("✔")

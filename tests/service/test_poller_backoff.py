"""An idle axis connection is polled less and less often, and at once again when busy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.config import AxisConnection
from gateway.inbound.poller import AxisPoller


def _conn(**kw) -> AxisConnection:
    return AxisConnection(name="q1", endpoint="http://127.0.0.1:9", system_id="s", secret="x",
                          organ_id="000.00.00.H99", **kw)


def _poller(conn: AxisConnection) -> AxisPoller:
    """A poller whose waits are computed, never run (no client, database or intake)."""
    return AxisPoller(conn, None, dsn="", pool=None, intake=None, metrics=None)


def test_idle_rounds_double_the_wait_up_to_the_cap_and_a_listing_resets_it():
    poller = _poller(_conn(poll_interval=0.02, idle_poll_interval=0.25))
    waits = []
    for listed in (0, 0, 0, 0, 0, 0, 3, 0, 1):
        poller.listed = listed
        waits.append(round(poller.next_wait(), 6))
    assert waits == [0.04, 0.08, 0.16, 0.25, 0.25, 0.25, 0.02, 0.04, 0.02]


def test_without_idle_interval_the_wait_is_fixed():
    poller = _poller(_conn(poll_interval=0.5))
    poller.listed = 0
    assert {poller.next_wait() for _ in range(5)} == {0.5}


def test_idle_interval_shorter_than_poll_interval_is_refused():
    with pytest.raises(ValidationError, match="idle_poll_interval"):
        _conn(poll_interval=5, idle_poll_interval=1)

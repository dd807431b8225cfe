"""Fault injection for :class:`gateway.axis.simulator.AxisSimulator`.

Tests set faults on ``simulator.faults``; each ``*_next(n)`` arms the next ``n`` matching requests
(optionally only for one ``operation``, e.g. ``"sendEdoc"``) and is consumed as requests arrive:

- ``delay`` (seconds, permanent) / ``slow_next(n, seconds)``: answer late (client timeouts);
- ``fail_next(n, status=503)``: answer an HTTP error before doing anything;
- ``drop_next(n, after_processing=False)``: close the TCP connection without an answer, either
  before the operation runs or after it took effect (the "lost answer" that makes senders retry
  and the axis hold a package twice);
- ``hold_next(n, seconds)``: the operation takes effect, then its answer waits ``seconds`` (a
  sender killed while it waits has sent without learning the DocId);
- ``garble_next(n)``: answer HTTP 200 with a body that is not JSON;
- ``duplicate_next(n)``: the next ``n`` ``getReceivedEdocList`` answers list every entry twice;
- ``redeliver_after_ack(n)``: the next ``n`` ``updateStatus done|fail`` answer success but leave the
  package queued, so it is listed (delivered) again;
- ``keep_failed`` (permanent): every ``updateStatus fail`` answers success but leaves the package
  queued (nothing says the national axis drops what a receiver marked ``fail``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Armed:
    remaining: int
    operation: str | None
    value: float | int | bool = 0


@dataclass
class Faults:
    """Mutable fault plan; ``injected`` counts what was actually applied, per fault kind."""

    delay: float = 0.0
    _slow: list[_Armed] = field(default_factory=list, repr=False)
    _fail: list[_Armed] = field(default_factory=list, repr=False)
    _drop: list[_Armed] = field(default_factory=list, repr=False)
    _garble: list[_Armed] = field(default_factory=list, repr=False)
    _hold: list[_Armed] = field(default_factory=list, repr=False)
    _duplicate: int = 0
    _redeliver: int = 0
    keep_failed: bool = False
    injected: dict[str, int] = field(default_factory=dict)

    def slow_next(self, n: int, seconds: float, *, operation: str | None = None) -> None:
        self._slow.append(_Armed(n, operation, seconds))

    def fail_next(self, n: int, status: int = 503, *, operation: str | None = None) -> None:
        self._fail.append(_Armed(n, operation, status))

    def drop_next(
        self, n: int, *, after_processing: bool = False, operation: str | None = None
    ) -> None:
        self._drop.append(_Armed(n, operation, after_processing))

    def hold_next(self, n: int, seconds: float, *, operation: str | None = None) -> None:
        self._hold.append(_Armed(n, operation, seconds))

    def garble_next(self, n: int, *, operation: str | None = None) -> None:
        self._garble.append(_Armed(n, operation))

    def duplicate_next(self, n: int) -> None:
        self._duplicate += n

    def redeliver_after_ack(self, n: int) -> None:
        self._redeliver += n

    def reset(self) -> None:
        """Disarm everything (``injected`` is kept for assertions)."""
        self.delay = 0.0
        self._slow.clear()
        self._fail.clear()
        self._drop.clear()
        self._garble.clear()
        self._hold.clear()
        self._duplicate = 0
        self._redeliver = 0
        self.keep_failed = False

    # ----------------------------------------------------------- used by the simulator

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    @staticmethod
    def _take(armed: list[_Armed], operation: str) -> _Armed | None:
        for item in armed:
            if item.remaining > 0 and item.operation in (None, operation):
                item.remaining -= 1
                if item.remaining == 0:
                    armed.remove(item)
                return item
        return None

    def take_delay(self, operation: str) -> float:
        slow = self._take(self._slow, operation)
        if slow is not None:
            self._count("slow")
            return self.delay + float(slow.value)
        return self.delay

    def take_failure(self, operation: str) -> int | None:
        item = self._take(self._fail, operation)
        if item is None:
            return None
        self._count("fail")
        return int(item.value)

    def take_drop(self, operation: str) -> bool | None:
        """None: no drop; False: drop before processing; True: drop after processing."""
        item = self._take(self._drop, operation)
        if item is None:
            return None
        self._count("drop_after" if item.value else "drop")
        return bool(item.value)

    def take_hold(self, operation: str) -> float:
        """Seconds to hold the answer of an operation that took effect (0: none)."""
        item = self._take(self._hold, operation)
        if item is None:
            return 0.0
        self._count("hold")
        return float(item.value)

    def take_garble(self, operation: str) -> bool:
        if self._take(self._garble, operation) is None:
            return False
        self._count("garble")
        return True

    def take_duplicate(self) -> bool:
        if self._duplicate <= 0:
            return False
        self._duplicate -= 1
        self._count("duplicate")
        return True

    def take_redeliver(self, status: str = "done") -> bool:
        if status == "fail" and self.keep_failed:
            self._count("keep_failed")
            return True
        if self._redeliver <= 0:
            return False
        self._redeliver -= 1
        self._count("redeliver")
        return True

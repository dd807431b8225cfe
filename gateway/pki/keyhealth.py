"""Health of the configured signing keys: ``GET /v1/keys/health``, ``/readyz`` and metrics.

Rules implemented here:

* Every ``signing.key_check_interval`` seconds (default 300; 0: off) each key of the key file
  is checked **in the signing pool** (keys and PINs stay in the worker processes, never on the
  event loop): its certificate's validity period is read and a canary signature is made on a
  tiny PDF and checked (:mod:`signing.keys.health`). The first round runs at start.
* A key's state is computed when asked (so a certificate that expires between two checks shows
  ``expired`` at once): ``expired``/``not_yet_valid`` (RFC 5280 §4.1.2.5), ``unreachable`` (the
  last check failed: token absent, wrong PIN, module missing, canary invalid), ``warning``
  (fewer than ``signing.key_expiry_warning_days`` days left, default 30), ``ok``, ``unknown``
  (not checked yet).
* A failure of ``/v1/sign`` on a key (``KEY_EXPIRED``, ``KEY_LOAD``, ``KEY_TOKEN`` …) is recorded
  as the key's last error too, and a signature that succeeds marks an unreachable key reachable
  again without waiting for the next check. A check that cannot run because the pool is busy,
  closed or cannot start workers changes nothing (that is the pool's health, in ``/readyz``).
* ``/readyz`` carries a summary (``keys``): ``degraded`` when a key is expired, not yet valid or
  unreachable, ``warning`` when one expires soon. It never makes ``/readyz`` fail: intake,
  verification and routing do not need a signing key, and every gateway behind the load
  balancer shares the same keys, so taking them out of rotation would stop all traffic for a
  fault only ``/v1/sign`` has (which answers 409/503 with a machine-readable code).
* Metrics: ``edoc_signing_key_expiry_days{alias}`` (days until ``notAfter``, negative once
  expired), ``edoc_signing_key_up{alias}`` (1: ok or warning, else 0) and
  ``edoc_signing_key_canary_failures_total{alias,code}`` (checks that failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.api.errors import ApiError
from signing.errors import SigningError
from signing.keys import KeyConfigError, load_key_config
from signing.keys.health import SECONDS_PER_DAY, KeyState, days_left, key_state

if TYPE_CHECKING:
    from gateway.config import SigningSettings
    from gateway.ops.metrics import Metrics
    from gateway.services import Services
    from signing.pool import SigningPool

log = logging.getLogger(__name__)

EXTENSION = "key_health"
#: Codes of a check that could not run: they say nothing about the key.
POOL_CODES = frozenset({"POOL_OVERLOADED", "POOL_CLOSED", "POOL_UNAVAILABLE",
                        "POOL_WORKER_CRASHED", "POOL_BROKEN"})
#: Codes of a key that cannot sign now.
KEY_CODES = frozenset({"KEY_EXPIRED", "KEY_NOT_YET_VALID", "KEY_LOAD", "KEY_TOKEN",
                       "KEY_CANARY_INVALID", "KEY_CANARY_FAILED", "KEY_TIMEOUT"})
DEGRADED = frozenset({KeyState.EXPIRED, KeyState.NOT_YET_VALID, KeyState.UNREACHABLE})
#: Longest one key check may take in a worker (a hung token is killed after it).
CHECK_TIMEOUT = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class KeyHealth:
    alias: str
    kind: str  # pkcs12 | pkcs11
    not_before: datetime | None = None
    not_after: datetime | None = None
    reachable: bool | None = None
    last_check: datetime | None = None
    last_error: dict[str, str] | None = None

    def state(self, now: datetime, warning_days: int) -> KeyState:
        return key_state(not_before=self.not_before, not_after=self.not_after,
                         reachable=self.reachable, now=now, warning_days=warning_days)

    def to_json(self, now: datetime, warning_days: int) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "kind": self.kind,
            "state": self.state(now, warning_days).value,
            "days_to_expiry": days_left(self.not_after, now) if self.not_after else None,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "last_check": self.last_check.isoformat() if self.last_check else None,
            "last_error": self.last_error,
        }


class KeyHealthMonitor:
    """The health of every key of ``signing.keys_file`` (one per gateway process): ``signing``
    settings, ``metrics`` to export to, and ``signing_pool()`` (the pool ``/v1/sign`` uses,
    created on first use) to check the keys in."""

    def __init__(self, signing: SigningSettings, metrics: Metrics,
                 signing_pool: Callable[[], SigningPool]) -> None:
        self.signing = signing
        self.metrics = metrics
        self.signing_pool = signing_pool
        self.warning_days = signing.key_expiry_warning_days
        self.keys: dict[str, KeyHealth] = {}
        #: Why the key file itself cannot be used (then there are no keys to show).
        self.config_error: str | None = None
        keys_file = signing.keys_file
        if keys_file:
            try:
                aliases = load_key_config(keys_file)
            except KeyConfigError as exc:
                self.config_error = str(exc)
            else:
                self.keys = {a: KeyHealth(a, k.source) for a, k in aliases.items()}

    # -- recording ------------------------------------------------------------------------------
    def record_error(self, alias: str, code: str, message: str, *, canary: bool = True) -> None:
        """Key ``alias`` failed: its check (``canary``) or a signature."""
        health = self.keys.get(alias)
        if health is None:
            return
        if code not in ("KEY_EXPIRED", "KEY_NOT_YET_VALID"):  # those keep the token reachable
            health.reachable = False
        health.last_error = {"code": code, "message": message[:500],
                             "at": _now().isoformat()}
        if canary:
            self.metrics.key_canary_failures.labels(alias, code).inc()
        self._export(health)

    def record_signed(self, alias: str) -> None:
        """Key ``alias`` just signed: its token is reachable again (the last error stays)."""
        health = self.keys.get(alias)
        if health is not None and health.reachable is False:
            health.reachable = True
            self._export(health)

    def record_check(self, alias: str, result: dict[str, Any]) -> None:
        health = self.keys[alias]
        health.not_before, health.not_after = result["not_before"], result["not_after"]
        if result["failure"] is not None:
            self.record_error(alias, *result["failure"])
        else:
            health.reachable = True
            self._export(health)

    def _export(self, health: KeyHealth) -> None:
        metrics, now = self.metrics, _now()
        if health.not_after is not None:
            metrics.key_expiry_days.labels(health.alias).set(
                (health.not_after - now).total_seconds() / SECONDS_PER_DAY)
        up = health.state(now, self.warning_days) in (KeyState.OK, KeyState.WARNING)
        metrics.key_up.labels(health.alias).set(1 if up else 0)

    def export_all(self) -> None:
        """Bring the gauges up to now (called on scrape)."""
        for health in self.keys.values():
            if health.last_check is not None or health.last_error is not None:
                self._export(health)

    # -- checking -------------------------------------------------------------------------------
    async def check(self, alias: str) -> None:
        """Check one key in the signing pool (see the module rules)."""
        from signing import worker

        try:
            pool = self.signing_pool()
            limit = min(CHECK_TIMEOUT, self.signing.job_timeout)
            result = await pool.call(worker._worker_key_check, alias, limit=limit)
        except (SigningError, ApiError) as exc:
            if exc.code in POOL_CODES:
                log.warning("key check skipped", extra={"alias": alias, "code": exc.code})
                return
            self.keys[alias].last_check = _now()
            code = "KEY_TIMEOUT" if exc.code == "PDF_TIMEOUT" else exc.code
            self.record_error(alias, code, str(exc))
            log.warning("key check failed", extra={"alias": alias, "code": code})
            return
        except BrokenProcessPool as exc:
            log.warning("key check skipped", extra={"alias": alias, "error": type(exc).__name__})
            return
        self.keys[alias].last_check = _now()
        self.record_check(alias, result)

    async def check_all(self) -> None:
        for alias in list(self.keys):
            try:
                await self.check(alias)
            except Exception:  # one key's unexpected fault must not stop the others
                log.exception("key check crashed", extra={"alias": alias})

    # -- reporting ------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        now = _now()
        body: dict[str, Any] = {
            "keys": [h.to_json(now, self.warning_days) for h in self.keys.values()],
            "warning_days": self.warning_days,
            "check_interval": self.signing.key_check_interval,
        }
        if self.config_error:
            body["error"] = {"code": "KEY_CONFIG", "message": self.config_error}
        return body

    def summary(self) -> dict[str, Any]:
        """For ``/readyz``: ``status`` ok | warning | degraded | unknown, counts per state and
        one line per key that is not ok."""
        now = _now()
        states = {a: h.state(now, self.warning_days) for a, h in self.keys.items()}
        counts: dict[str, int] = {}
        for state in states.values():
            counts[state.value] = counts.get(state.value, 0) + 1
        problems = [f"{a}: {s.value}" for a, s in states.items() if s is not KeyState.OK]
        if self.config_error or any(s in DEGRADED for s in states.values()):
            status = "degraded"
        elif any(s is KeyState.WARNING for s in states.values()):
            status = "warning"
        elif any(s is KeyState.UNKNOWN for s in states.values()):
            status = "unknown"
        else:
            status = "ok"
        out: dict[str, Any] = {"status": status, "total": len(states), "states": counts}
        if problems:
            out["problems"] = problems
        if self.config_error:  # /readyz is public: no path, GET /v1/keys/health says why
            out["problems"] = ["key file: unusable (KEY_CONFIG)", *problems]
        return out


def monitor(services: Services) -> KeyHealthMonitor | None:
    """The process's key health monitor (created on first use, kept in
    ``services.extensions``); None without a key file."""
    signing = services.settings.signing
    if not signing.keys_file:
        return None
    found = services.extensions.get(EXTENSION)
    if found is None:
        found = services.extensions[EXTENSION] = KeyHealthMonitor(
            signing, services.metrics, lambda: services.signing_pool())
    return found  # type: ignore[return-value]


async def check_keys(keys: KeyHealthMonitor | None, interval: float, stop: asyncio.Event, *,
                     release_pool: Callable[[], None]) -> None:
    """Background worker of the gateway (started by ``app.py``): one round of key
    checks at start, then one every ``interval`` (``signing.key_check_interval``) seconds. When
    ``stop`` is set it calls ``release_pool()`` on the way out, to close a signing pool it left
    behind (the application's cleanup may have run already)."""
    if keys is None or interval <= 0 or not keys.keys:
        await stop.wait()
        return
    try:
        while not stop.is_set():
            await keys.check_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        if stop.is_set():
            release_pool()

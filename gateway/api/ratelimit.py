"""In-process token buckets for the signing API: one per bearer token, one per key alias.

Rules implemented here:

* A bucket holds at most ``per_minute`` tokens (the burst) and refills at ``per_minute / 60``
  tokens per second; each request takes one token. An empty bucket answers 429 ``RATE_LIMITED``
  with ``Retry-After`` = whole seconds until one token is back.
* Limits are **per gateway process**: several processes behind a load balancer each allow the
  full rate (N processes allow N times the configured rate). Restarting a process refills them.
* ``per_minute <= 0`` disables a limit.
* Buckets that have refilled completely carry no information and are pruned when the table grows
  past ``max_buckets``, so memory stays bounded by the number of active tokens and keys.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from gateway.api.errors import TooManyRequests

#: Longest Retry-After told, in seconds (a rate of 1e-9 per minute must not ask for centuries).
MAX_RETRY_AFTER = 86_400


class RateLimited(TooManyRequests):
    """429 with the number of seconds after which the caller may retry."""

    def __init__(self, message: str, *, retry_after: int, scope: str) -> None:
        super().__init__(message, details={"scope": scope, "retry_after": retry_after},
                         retry_after=retry_after)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """A token bucket per key (``Hashable``), all with the same rate and burst."""

    def __init__(self, per_minute: float, *, burst: float | None = None, max_buckets: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        # at least one token: a rate under one per minute (0.5: one every two minutes) must
        # still let a request through once its token is back, never refuse every request
        self.capacity = burst if burst is not None else max(1.0, per_minute)
        self.max_buckets = max_buckets
        self._clock = clock
        self._buckets: dict[Hashable, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 and self.capacity > 0

    @property
    def _rate(self) -> float:
        return self.per_minute / 60.0

    def _refilled(self, key: Hashable) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        else:
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        return bucket

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items()
                if b.tokens + (now - b.updated) * self._rate >= self.capacity]
        for k in full:
            del self._buckets[k]

    def retry_after(self, key: Hashable) -> int:
        """0 when ``key`` may go now, else whole seconds until a token is back (takes none)."""
        if not self.enabled:
            return 0
        bucket = self._refilled(key)
        if bucket.tokens >= 1.0:
            return 0
        return min(MAX_RETRY_AFTER, max(1, math.ceil((1.0 - bucket.tokens) / self._rate)))

    def take(self, key: Hashable) -> int:
        """Take one token for ``key``: 0 on success, else the ``retry_after`` seconds."""
        wait = self.retry_after(key)
        if wait == 0 and self.enabled:
            self._buckets[key].tokens -= 1.0
        return wait


DEFAULT_PER_TOKEN = 30.0
DEFAULT_PER_KEY = 60.0


class SignRateLimits:
    """The signing API's limits: ``per_token`` and ``per_key`` requests per minute (per process).

    Every sign attempt of a token counts against the token's bucket (checked before the body is
    read); only attempts that are allowed to use a key count against that key's bucket, so an
    officer cannot drain the bucket of a key it may not use.
    """

    def __init__(self, per_token: float = DEFAULT_PER_TOKEN, per_key: float = DEFAULT_PER_KEY,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.tokens = TokenBuckets(per_token, clock=clock)
        self.keys = TokenBuckets(per_key, clock=clock)

    def take_token(self, client_id: Hashable) -> None:
        wait = self.tokens.take(client_id)
        if wait:
            raise RateLimited(
                f"this token may sign at most {self.tokens.per_minute:g} documents per minute",
                retry_after=wait, scope="token")

    def take_key(self, alias: str) -> None:
        wait = self.keys.take(alias)
        if wait:
            raise RateLimited(
                f"key {alias!r} may sign at most {self.keys.per_minute:g} documents per minute",
                retry_after=wait, scope="key")


class ConcurrencyLimit:
    """At most ``per_key`` requests running at once per key (e.g. per token), per process.

    ``acquire`` takes a slot or answers False at once (the caller answers 429); ``release``
    gives it back. Keys without a running request hold no memory.
    """

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._running: dict[Hashable, int] = {}

    def acquire(self, key: Hashable) -> bool:
        running = self._running.get(key, 0)
        if running >= self.per_key:
            return False
        self._running[key] = running + 1
        return True

    def running(self, key: Hashable) -> int:
        return self._running.get(key, 0)

    def release(self, key: Hashable) -> None:
        running = self._running.get(key, 0) - 1
        if running > 0:
            self._running[key] = running
        else:
            self._running.pop(key, None)

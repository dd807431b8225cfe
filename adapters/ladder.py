"""The retry ladder: which TTL retry queue a failed message goes to, or the dead queue.

The rule: the header ``x-attempt`` counts the failed attempts a message already had
(absent = none). After a transient failure the attempt that just failed is
``x-attempt + 1``; while it is ``<= len(retry_delays)`` the message waits in retry step
``attempt - 1`` (queue ``P.retry.<delay ms>ms``, TTL ``retry_delays[step]``) and comes back to
the agency queue; after the last step it is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ATTEMPT_HEADER = "x-attempt"
LAST_ERROR_HEADER = "x-last-error"
ERROR_CODE_HEADER = "x-error-code"
#: Headers RabbitMQ adds when dead-lettering; dropped from copies so they do not grow.
BROKER_DEATH_HEADERS = ("x-death", "x-first-death-exchange", "x-first-death-queue",
                        "x-first-death-reason", "x-last-death-exchange",
                        "x-last-death-queue", "x-last-death-reason", "x-delivery-count")
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class RetryStep:
    """Wait ``delay`` seconds in retry queue ``step``; ``attempt`` is the attempt that failed."""

    attempt: int
    step: int
    delay: float


@dataclass(frozen=True)
class DeadEnd:
    """No step left: dead-letter the message after ``attempt`` failed attempts."""

    attempt: int


def previous_attempts(headers: Mapping[str, Any] | None) -> int:
    """Failed attempts recorded in ``x-attempt`` (0 when absent or unreadable)."""
    value = (headers or {}).get(ATTEMPT_HEADER)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        return max(0, int(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def next_step(attempt: int, retry_delays: Sequence[float]) -> RetryStep | DeadEnd:
    """Where a message goes after its attempt number ``attempt`` failed transiently."""
    if 1 <= attempt <= len(retry_delays):
        return RetryStep(attempt=attempt, step=attempt - 1, delay=float(retry_delays[attempt - 1]))
    return DeadEnd(attempt=attempt)


def copy_headers(headers: Mapping[str, Any] | None, *, attempt: int, error: str,
                 code: str) -> dict[str, Any]:
    """The headers of a retry or dead-letter copy: the original's plus attempt and error."""
    out = {k: v for k, v in (headers or {}).items() if k not in BROKER_DEATH_HEADERS}
    out[ATTEMPT_HEADER] = attempt
    out[LAST_ERROR_HEADER] = error[:MAX_ERROR_CHARS]
    out[ERROR_CODE_HEADER] = code
    return out

"""HMAC signatures of webhook requests.

The rule: the sender signs ``timestamp + "." + body`` with HMAC-SHA256 under the shared
secret and sends ``X-Edoc-Timestamp: <unix seconds>`` and
``X-Edoc-Signature: sha256=<hex>``. A receiver accepts a request only when the signature
matches (compared in constant time) and the timestamp is within ``max_skew`` seconds of
its clock, which bounds replays; the ``Idempotency-Key`` then makes a replay harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from adapters.errors import WebhookSignatureError

TIMESTAMP_HEADER = "X-Edoc-Timestamp"
SIGNATURE_HEADER = "X-Edoc-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
CORRELATION_HEADER = "X-Edoc-Correlation-Id"
_PREFIX = "sha256="


def compute_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return _PREFIX + digest.hexdigest()


def sign_webhook(secret: bytes, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The timestamp and signature headers for ``body``."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: compute_signature(secret, timestamp, body)}


def verify_webhook_signature(secret: bytes, body: bytes, headers: Mapping[str, str], *,
                             max_skew: float = 300.0, now: float | None = None) -> None:
    """Raise :class:`WebhookSignatureError` unless the request is signed and fresh."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise WebhookSignatureError("signature or timestamp header missing",
                                    code="WEBHOOK_SIGNATURE_MISSING")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookSignatureError("timestamp is not unix seconds",
                                    code="WEBHOOK_TIMESTAMP_INVALID")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > max_skew:
        raise WebhookSignatureError("timestamp outside the accepted window",
                                    code="WEBHOOK_TIMESTAMP_STALE")
    expected = compute_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode("ascii"),
                               signature.strip().encode("ascii", "replace")):
        raise WebhookSignatureError("signature does not match", code="WEBHOOK_SIGNATURE_INVALID")

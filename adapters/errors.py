"""Errors an adapter raises, each with a machine-readable ``code``.

The rule the runner applies: a :class:`TransientDeliveryError` walks the retry ladder
(the same message is tried again later), a :class:`PermanentDeliveryError` sends the
message to the agency's dead-letter queue at once. Both end with an outcome reported
to the gateway; neither loses the message.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A delivery attempt failed; ``code`` names the reason for machines, ``str()`` for people."""

    code = "DELIVERY_FAILED"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class TransientDeliveryError(DeliveryError):
    """Worth trying again later: timeouts, 5xx, network errors, a truncated attachment."""

    code = "DELIVERY_TRANSIENT"


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: the eOffice refused the document (4xx), bad input."""

    code = "DELIVERY_PERMANENT"


class MessageFormatError(PermanentDeliveryError):
    """The queue message is not a valid ``edoc.delivery/1`` message (bad JSON, schema)."""

    code = "MESSAGE_INVALID"


class WebhookSignatureError(Exception):
    """A webhook request's signature is missing, malformed, stale or wrong."""

    code = "WEBHOOK_SIGNATURE_INVALID"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

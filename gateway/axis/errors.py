"""Typed errors of the axis clients.

Every error carries a machine-readable ``code`` (stable, snake_case) and a human message.
Callers branch on the class (what to do) and log the code (why):

- :class:`AxisAuthError` - the axis refused our credentials (bad signature, stale timestamp,
  unknown system id). Retrying does not help; an operator must fix the secret or the clock.
- :class:`AxisTransientError` - 5xx, timeouts, dropped connections. Already retried with backoff
  by the client when raised; the caller may retry later (outbox / next poll).
- :class:`AxisProtocolError` - an answer we cannot understand (not JSON, no envelope, missing
  fields, bad base64). Never treated as success.
- :class:`AxisRejectedError` - the axis understood and said no (``ErrorCode != "0"``). Whether
  saying it again can help is :attr:`AxisRejectedError.permanent` (see :func:`is_permanent`).
"""

from __future__ import annotations


class AxisError(Exception):
    """Base of every axis failure; ``code`` is machine-readable."""

    code: str = "axis_error"

    def __init__(self, code: str | None = None, message: str = "") -> None:
        if code:
            self.code = code
        self.message = message or self.code
        super().__init__(f"{self.code}: {self.message}")


class AxisAuthError(AxisError):
    """The axis rejected the request's authentication (HMAC headers, timestamp, system id)."""

    code = "auth_failed"


class AxisTransientError(AxisError):
    """A failure that may pass: HTTP 5xx/429/408, timeout, dropped or refused connection.

    ``attempts`` is how many times the request was tried before giving up;
    ``http_status`` is set when the axis answered with an HTTP error; ``maybe_sent`` is True
    when the request may have reached the axis and taken effect (no answer in time, the
    connection lost after the request was written), False when it surely did not (the
    connection was refused, the axis answered an HTTP error).
    """

    code = "transient"

    def __init__(
        self,
        code: str | None = None,
        message: str = "",
        *,
        attempts: int = 1,
        http_status: int | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(code, message)
        self.attempts = attempts
        self.http_status = http_status
        self.maybe_sent = maybe_sent


class AxisProtocolError(AxisError):
    """The answer is not what the protocol promises; it is never taken for a success."""

    code = "protocol"


#: Envelope ``ErrorCode`` values that say "not now" rather than "no" [I]: the real VDXP's
#: numeric codes are not public; these are the HTTP-like codes of an axis that is overloaded or
#: failing behind its front end (``-1`` is what Java SDK wrappers put for an exception). Every
#: other ``ErrorCode`` is a refusal of this request that sending it again cannot change (the
#: simulator's ``400`` bad request, ``403`` not the caller's, ``404`` unknown, ``422`` unknown
#: receiver).
RETRYABLE_AXIS_CODES = frozenset({"-1", "408", "429", "500", "502", "503", "504"})


class AxisRejectedError(AxisError):
    """The axis answered ``ErrorCode != "0"``; ``axis_code``/``axis_desc`` are its own words."""

    code = "rejected"

    def __init__(self, axis_code: str, axis_desc: str = "", *, operation: str = "") -> None:
        self.axis_code = axis_code
        self.axis_desc = axis_desc
        self.operation = operation
        where = f"{operation}: " if operation else ""
        super().__init__("rejected", f"{where}axis ErrorCode {axis_code}: {axis_desc}")

    @property
    def permanent(self) -> bool:
        """The axis refused this request for good (its ``ErrorCode`` is not one of
        :data:`RETRYABLE_AXIS_CODES`): the same request will be refused again."""
        return self.axis_code.strip() not in RETRYABLE_AXIS_CODES


class AxisNotSupportedError(AxisError):
    """The requested axis flavour or operation is not implemented (yet)."""

    code = "not_supported"


def is_permanent(exc: BaseException) -> bool:
    """Whether sending the same request again can never succeed: only a refusal the axis
    answered in its envelope with a non-retryable ``ErrorCode``
    (:attr:`AxisRejectedError.permanent`). Authentication failures are not permanent: an
    operator fixes the secret or the clock and the same package goes through; transient and
    protocol errors may pass."""
    return isinstance(exc, AxisRejectedError) and exc.permanent

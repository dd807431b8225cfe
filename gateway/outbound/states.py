"""The states of an outbound document and of each of its copies (one per receiver), named after
the domain; every state and every error has a name here (X-Road style).

A **copy** (``outbound_sends`` row, one per receiver: ``sendEdoc`` with ``to = [receiver]``, so
that one bad receiver never fails the others and each copy gets its own axis DocId):

``QUEUED``  in the outbox, not yet accepted by the axis. ``attempts`` counts the ``sendEdoc``
            calls begun; ``last_error`` is the last transient failure (the relay retries with
            backoff, as long as it takes).
``SENT``    the axis accepted the copy; ``axis_doc_id`` is its DocId. Recorded before the
            outbox row is deleted; after a crash in between, the copy is found at the axis by
            its hash (``find_sent``) and its DocId adopted: never sent twice.
``FAILED``  the axis refused the copy for good (a non-retryable ``ErrorCode``, e.g. an unknown
            receiver): ``error_code`` / ``error_desc`` are the axis's ``ErrorCode`` and
            ``ErrorDesc``. Never sent again; the other copies and later documents go on.

The **document** (``documents`` row, ``direction = 'outbound'``), from its copies:

``QUEUED``        at least one copy is ``QUEUED``
``SENT``          every copy is ``SENT``
``PARTLY_FAILED`` no copy is ``QUEUED``; some are ``SENT``, some ``FAILED``
``FAILED``        every copy is ``FAILED``

On top of ``SENT``, each copy is tracked (issue 13, "Tracking", migration 0010):

* its **axis receive state** (``getSentEdocList``: ``axis_send_status``,
  ``axis_receive_status``, their descriptions and the axis's times, ``axis_received_at``),
  polled while ``axis_tracking`` is ``ACTIVE``; then ``DONE`` (the receiver acked its copy
  ``done``/``fail`` at the axis, or reported a business status), ``EXPIRED``
  (``outbound.track_for`` hours after sending) or ``STOPPED`` (the axis refused the question
  for good) — :mod:`gateway.outbound.tracking`;
* its **latest business status** from the receiver (``status_code``, ``status_description``,
  ``status_staff``, ``status_at`` = the message's Timestamp): 01-06, 15, 16 or any code as it
  came — :mod:`gateway.outbound.status_back`.
"""

from __future__ import annotations

import enum


class SendState(enum.StrEnum):
    """State of one copy (one receiver) of an outbound document."""

    QUEUED = "QUEUED"
    SENT = "SENT"
    FAILED = "FAILED"


class OutboundState(enum.StrEnum):
    """State of an outbound document, from the states of its copies."""

    QUEUED = "QUEUED"
    SENT = "SENT"
    PARTLY_FAILED = "PARTLY_FAILED"
    FAILED = "FAILED"


def document_state(copies: list[str]) -> OutboundState:
    """The document's state from its copies' states (see the module docstring)."""
    if SendState.QUEUED in copies:
        return OutboundState.QUEUED
    if SendState.FAILED not in copies:
        return OutboundState.SENT
    if SendState.SENT not in copies:
        return OutboundState.FAILED
    return OutboundState.PARTLY_FAILED


#: The same rule in SQL, over ``states`` (a text[] of the copies' states).
DOCUMENT_STATE_SQL = """CASE WHEN 'QUEUED' = ANY(states) THEN 'QUEUED'
     WHEN NOT 'FAILED' = ANY(states) THEN 'SENT'
     WHEN NOT 'SENT' = ANY(states) THEN 'FAILED'
     ELSE 'PARTLY_FAILED' END"""


class AxisTracking(enum.StrEnum):
    """Whether a sent copy's axis receive state is still polled (``axis_tracking``)."""

    ACTIVE = "ACTIVE"
    DONE = "DONE"
    EXPIRED = "EXPIRED"
    STOPPED = "STOPPED"

"""The sending side of the business flows (QCVN 102:2016 ``Bussiness``, statuses 13/15/16;
Decree 30/2020/NĐ-CP Art. 18): what an eOffice may ask about one of its outbound documents,
the states it moves the document to, and how the answers of the receivers are read back.

===========  =================================================  ==========================
flow         what travels                                       the original afterwards
===========  =================================================  ==========================
revoke       edoc, the original's header and files with         ``REVOKED``
             ``Bussiness`` type 1 naming its DocumentId (Art.
             18.4), one copy per current receiver
update       edoc with ``Bussiness`` type 2 and                 ``UPDATED``
             ``BussinessDocumentInfo`` (``DocumentInfo`` 1 when
             files are replaced, ``DocumentReceiver`` 1 when
             receivers change, ``ReceiverList`` = receivers
             after the update) to the current and removed
             receivers; receivers ADDED get the updated
             document itself (type 0: they never had it)
replace      a NEW outbound document (own number, full          ``REPLACED``
             submission) with ``Bussiness`` type 3 and
             ``ReplacementInfoList`` naming the original
take back    status ``13`` (``ResponseFor`` = the original)     ``take_back`` ``PENDING``
             to each current receiver
===========  =================================================  ==========================

A flow is allowed on a document in :data:`FLOW_FROM` (every copy settled, at least one
``SENT``); ``QUEUED`` (copies still on their way) and ``FAILED`` (nobody got it) are 409
``OUTBOUND_NOT_SENT``; ``REVOKED`` and ``REPLACED`` are final: 409 ``OUTBOUND_REVOKED`` /
``OUTBOUND_REPLACED``. A second take back while one is pending is 409 ``TAKE_BACK_PENDING``.

**Answers** are derived, never stored twice: the receivers answer ``15`` (agree) or ``16``
(refuse) with status messages, recorded in ``status_events`` on the original or on one of its
flow rows (same DocumentId); each answer belongs to the latest flow requested before it
arrived (:func:`assign_answers`). A flow's ``outcome`` is ``AGREED`` when every receiver it
went to answered 15, ``REFUSED`` when one answered 16, else ``PENDING``. The document's
``take_back`` column says ``PENDING`` from the request; its outcome is shown derived.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from gateway.outbound.metadata import AgencyCode, OutboundMetadata, Text, _Strict


class OutboundFlow(enum.StrEnum):
    REVOKE = "revoke"
    UPDATE = "update"
    REPLACE = "replace"
    TAKE_BACK = "take_back"


#: Timeline event (on the original) that records each flow request.
EVENT = {k: f"outbound.{k.value}" for k in OutboundFlow}
#: Document states a flow may start from.
FLOW_FROM = frozenset({"SENT", "PARTLY_FAILED", "UPDATED"})
#: The original's state after each flow (take back moves the ``take_back`` column only).
STATE_AFTER = {OutboundFlow.REVOKE: "REVOKED", OutboundFlow.UPDATE: "UPDATED",
               OutboundFlow.REPLACE: "REPLACED"}
#: The 409 code of each state no flow may start from.
REFUSED_FROM = {"QUEUED": "OUTBOUND_NOT_SENT", "FAILED": "OUTBOUND_NOT_SENT",
                "REVOKED": "OUTBOUND_REVOKED", "REPLACED": "OUTBOUND_REPLACED"}
ANSWER_CODES = ("15", "16")


class Staff(_Strict):
    """``StaffInfo``: the officer in charge of the flow."""

    department: Text(255) | None = None
    staff: Text(255) | None = None
    email: Text(255) | None = None
    mobile: Text(64) | None = None

    def edxml(self) -> dict[str, str]:
        return {k: v for k, v in (("Department", self.department), ("Staff", self.staff),
                                  ("Email", self.email), ("Mobile", self.mobile)) if v}


class FlowBody(_Strict):
    """The body of ``revoke`` and ``take-back``."""

    reason: Text(2000)
    staff: Staff | None = None


class UpdateMetadata(FlowBody):
    """The ``metadata`` part of ``update``; files (optional) replace the document's files."""

    receivers_added: list[AgencyCode] = Field(default_factory=list, max_length=100)
    receivers_removed: list[AgencyCode] = Field(default_factory=list, max_length=100)

    @field_validator("receivers_added", "receivers_removed")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a receiver is listed twice")
        return value


class ReplaceMetadata(OutboundMetadata):
    """The ``metadata`` part of ``replace``: a full submission plus the reason."""

    reason: Text(2000)
    staff: Staff | None = None


def refusal(state: str) -> str | None:
    """The 409 code for a flow on a document in ``state`` (None: allowed)."""
    if state in FLOW_FROM:
        return None
    return REFUSED_FROM.get(state, "OUTBOUND_FLOW_NOT_ALLOWED")


def assign_answers(flows: list[dict[str, Any]],
                   answers: Iterable[tuple[str, str, datetime, str | None]]) -> None:
    """Put each answer ``(receiver, code, received_at, description)`` on the latest flow
    requested at or before it (``flows`` oldest first, each with ``requested_at`` and
    ``receivers``) and set each flow's ``answers`` and ``outcome`` in place."""
    for flow in flows:
        flow["answers"] = {}
    for receiver, code, at, description in sorted(answers, key=lambda a: a[2]):
        owner = None
        for flow in flows:
            if flow["requested_at"] <= at and flow["kind"] != OutboundFlow.REPLACE:
                owner = flow
        if owner is not None:
            owner["answers"][receiver] = {"code": code, "description": description,
                                          "at": at.isoformat()}
    for flow in flows:
        codes = [a["code"] for a in flow["answers"].values()]
        if flow["kind"] == OutboundFlow.REPLACE:
            flow["outcome"] = None
        elif "16" in codes:
            flow["outcome"] = "REFUSED"
        elif flow["receivers"] and all(flow["answers"].get(r, {}).get("code") == "15"
                                       for r in flow["receivers"]):
            flow["outcome"] = "AGREED"
        else:
            flow["outcome"] = "PENDING"

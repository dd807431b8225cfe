"""The business flows of QCVN 102:2016 and Decree 30/2020/NĐ-CP Art. 18, as pure rules.

A business flow is a message about a document already exchanged:

===========  =======================================  ===================  ====================
kind         how it arrives                           the original         delivery ``kind``
===========  =======================================  ===================  ====================
revoke       edoc, ``Bussiness/BussinessDocType`` 1    ``REVOKED``          ``revoke``
update       edoc, ``BussinessDocType`` 2 (receivers   ``UPDATED``          ``update``
             via ``BussinessDocumentInfo/ReceiverList``,
             files replaced when ``DocumentInfo`` = 1)
replace      edoc, ``BussinessDocType`` 3                ``REPLACED``         ``replace``
             (``ReplacementInfoList`` names them)
take back    status ``13`` from the original sender     ``take_back`` =      ``take_back``
                                                        ``PENDING``; 15 →
                                                        ``TAKEN_BACK``
===========  =======================================  ===================  ====================

**The original** is the inbound document of the SAME sender (``From/OrganId`` of the flow
message, ``ResponseFor/OrganId`` of a 13 that must also be its reporter) with that
``DocumentId``: agency A can never revoke, update, replace or take back agency B's document. A
flow naming a document another sender sent is refused (``BUSINESS_NOT_ORIGINAL_SENDER``, status
02 for a package; a 13 is kept unmatched); a flow naming a document not (yet) received is kept
for an operator (``BUSINESS_ORIGINAL_UNKNOWN``, state ``HELD``; a 13 is kept unmatched) and can
be linked once the original has arrived (operator's ``route``). A flow without the DocumentId(s)
it needs is refused (``BUSINESS_INVALID``).

**States** of the original (``documents.state`` has no CHECK; these are the business states
besides the main track of :mod:`gateway.business.statuses`): ``REVOKED``, ``REPLACED`` and
``TAKEN_BACK`` are final (no later flow or status moves the document out of them);
``UPDATED`` is shown until the next business status of the main track moves it on (an updated
document is still worked on). A revoke, replace or take back of a final document is still
recorded and delivered, the state stays.

**Answers** (Decree 30 Art. 18.4b: on revocation the receiver cancels the document in its
system and notifies the sender): the eOffice answers a typed message through the status API —
``15`` (agrees: revoked document cancelled / update applied / document handed back) or ``16``
with a reason (refuses) — on the ``document_id`` of the message (the revoke/update row, or the
original for a take back); the gateway sends that status to the sender as an edXML status
message whose ``ResponseFor`` names the flow message. A replacement is a new document: it is
answered like any document (03, 02…). Nothing is answered automatically but the ``01`` of the
package's arrival.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.edxml import Bussiness, BussinessDocType


class FlowKind(enum.StrEnum):
    """The kind of a typed delivery message (``deliveries.kind``, the message's ``kind``)."""

    DOCUMENT = "document"
    REVOKE = "revoke"
    UPDATE = "update"
    REPLACE = "replace"
    TAKE_BACK = "take_back"


KIND_OF_TYPE = {BussinessDocType.REVOKE: FlowKind.REVOKE, BussinessDocType.UPDATE: FlowKind.UPDATE,
                BussinessDocType.REPLACE: FlowKind.REPLACE}
#: The original's state after each flow.
STATE_AFTER = {FlowKind.REVOKE: "REVOKED", FlowKind.UPDATE: "UPDATED",
               FlowKind.REPLACE: "REPLACED", FlowKind.TAKE_BACK: "TAKEN_BACK"}
#: States no later flow or business status leaves.
FINAL_STATES = frozenset({"REVOKED", "REPLACED", "TAKEN_BACK"})
#: States a document in which is not an original any flow may name (never taken in).
NOT_ORIGINAL_STATES = frozenset({"REJECTED", "CONFLICT"})
#: Most DocumentIds one flow may name (a ReplacementInfoList of more is refused).
MAX_ORIGINALS = 50
#: A DocumentId is an opaque identifier of at most 255 characters (edxml-common.xsd).
MAX_DOCUMENT_ID = 255
_BAD_ID = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")

REASONS_VI = {
    "BUSINESS_ORIGINAL_UNKNOWN": "không tìm thấy văn bản gốc mà thông điệp nghiệp vụ (thu hồi,"
                                 " cập nhật, thay thế, lấy lại) nhắc tới; chờ cán bộ vận hành"
                                 " xử lý",
    "BUSINESS_NOT_ORIGINAL_SENDER": "chỉ cơ quan đã gửi văn bản gốc mới được thu hồi, cập nhật,"
                                    " thay thế hoặc lấy lại văn bản đó",
    "BUSINESS_INVALID": "thông điệp nghiệp vụ thiếu mã định danh văn bản gốc hoặc mã không hợp"
                        " lệ",
}


class FlowError(Exception):
    """A flow message that cannot be applied as it is (machine ``code``, Vietnamese
    ``reason``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return REASONS_VI[self.code] + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class FlowRequest:
    """What a revoke/update/replace package asks, read from its ``Bussiness`` block."""

    kind: FlowKind
    #: DocumentIds of the originals, in the order named, without repeats.
    originals: tuple[str, ...]
    reason: str | None = None
    paper: bool | None = None
    #: update: whether the files (``DocumentInfo``) or the receivers (``DocumentReceiver``)
    #: change, and the receivers after the update.
    document_info: bool | None = None
    document_receiver: bool | None = None
    receivers: tuple[dict, ...] = ()
    staff: dict | None = field(default=None)

    def business_json(self) -> dict:
        """The ``business`` block of a typed delivery message (without the originals, which
        the gateway adds once matched)."""
        out: dict = {"kind": self.kind.value, "reason": self.reason, "paper": self.paper,
                     "requested": list(self.originals)}
        if self.kind == FlowKind.UPDATE:
            out.update(document_info=self.document_info,
                       document_receiver=self.document_receiver,
                       receivers=list(self.receivers))
        if self.staff:
            out["staff"] = self.staff
        return out


def check_document_id(value: str | None) -> str:
    """A DocumentId a flow names: present, at most :data:`MAX_DOCUMENT_ID` characters, no
    control character; else :class:`FlowError` ``BUSINESS_INVALID``."""
    value = (value or "").strip()
    if not value:
        raise FlowError("BUSINESS_INVALID", "DocumentId trống")
    if len(value) > MAX_DOCUMENT_ID:
        raise FlowError("BUSINESS_INVALID", f"DocumentId dài {len(value)} ký tự")
    if _BAD_ID.search(value):
        raise FlowError("BUSINESS_INVALID", "DocumentId chứa ký tự điều khiển")
    return value


def flow_request(bussiness: Bussiness | None) -> FlowRequest | None:
    """The flow a package's ``Bussiness`` block asks for; None for a new document (no block or
    ``BussinessDocType`` 0). :class:`FlowError` when the block lacks what its kind needs:
    revoke and update name the original in ``Bussiness/DocumentId``; replace in
    ``ReplacementInfoList`` (and/or ``Bussiness/DocumentId``)."""
    if bussiness is None or bussiness.bussiness_doc_type == BussinessDocType.NEW:
        return None
    kind = KIND_OF_TYPE[bussiness.bussiness_doc_type]
    named: list[str | None] = [bussiness.document_id]
    if kind == FlowKind.REPLACE:
        named = [bussiness.document_id] if bussiness.document_id else []
        for info in bussiness.replacement_info_list or ():
            named.extend(info.document_ids)
        if not named:
            raise FlowError("BUSINESS_INVALID", "ReplacementInfoList không có DocumentId")
    if len(named) > MAX_ORIGINALS:
        raise FlowError("BUSINESS_INVALID", f"quá {MAX_ORIGINALS} văn bản được nêu")
    originals = tuple(dict.fromkeys(check_document_id(v) for v in named))
    info = bussiness.bussiness_document_info
    staff = None
    if bussiness.staff_info is not None:
        s = bussiness.staff_info
        staff = {k: v for k, v in (("Department", s.department), ("Staff", s.staff),
                                   ("Email", s.email), ("Mobile", s.mobile)) if v}
    return FlowRequest(
        kind=kind, originals=originals, reason=bussiness.bussiness_doc_reason,
        paper=bussiness.paper,
        document_info=info.document_info if info else None,
        document_receiver=info.document_receiver if info else None,
        receivers=tuple({"organ_id": r.organ_id, "receiver_type": r.receiver_type}
                        for r in (info.receivers if info else ())),
        staff=staff or None)


def next_state(kind: FlowKind, current: str) -> str:
    """The original's state after a flow of ``kind``: :data:`STATE_AFTER`, except that a
    final state stays (:data:`FINAL_STATES`)."""
    if current in FINAL_STATES:
        return current
    return STATE_AFTER[kind]


@dataclass(frozen=True)
class OriginalMatch:
    """How the DocumentIds a flow names matched the stored inbound documents."""

    #: DocumentId -> the sender's own document (gateway id) that it names.
    found: dict[str, object]
    #: DocumentIds known only from another sender (never linked).
    foreign: tuple[str, ...]
    #: DocumentIds no stored document has.
    unknown: tuple[str, ...]

    def problem(self) -> str | None:
        """The code a flow gets when nothing it names can be linked: a document of another
        sender is ``BUSINESS_NOT_ORIGINAL_SENDER``, else ``BUSINESS_ORIGINAL_UNKNOWN``."""
        if self.found:
            return None
        return "BUSINESS_NOT_ORIGINAL_SENDER" if self.foreign else "BUSINESS_ORIGINAL_UNKNOWN"


def match_originals(named: Iterable[str], sender: str,
                    rows: Iterable[tuple[str, str, object]]) -> OriginalMatch:
    """Match the DocumentIds ``named`` by a flow of ``sender`` against stored inbound
    ``rows`` ``(sender_code, edxml_document_id, id)`` (originals only, latest last): only the
    sender's own documents match."""
    own: dict[str, object] = {}
    others: set[str] = set()
    for row_sender, doc_id, gid in rows:
        if row_sender == sender:
            own[doc_id] = gid  # the latest of the sender's documents under that id
        else:
            others.add(doc_id)
    named = list(named)
    return OriginalMatch(
        found={d: own[d] for d in named if d in own},
        foreign=tuple(d for d in named if d not in own and d in others),
        unknown=tuple(d for d in named if d not in own and d not in others))


def take_back_matches(doc: dict, response_for_code: str | None,
                      response_for_date: object | None) -> bool:
    """Whether a 13's ``ResponseFor`` ``Code`` and ``PromulgationDate`` (when given) agree with
    the document it names by sender and DocumentId (``doc``: ``code_number``,
    ``code_notation``, ``promulgation_date``). Spaces are not significant in a code."""
    if response_for_code and (doc.get("code_number") or doc.get("code_notation")):
        ours = f"{doc.get('code_number') or ''}/{doc.get('code_notation') or ''}"
        if "".join(response_for_code.split()).casefold() != "".join(ours.split()).casefold():
            return False
    if response_for_date is not None and doc.get("promulgation_date") is not None:
        return response_for_date == doc["promulgation_date"]
    return True

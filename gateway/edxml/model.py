"""Typed, immutable models of the edXML messages of QCVN 102:2016.

Field names are the snake_case of the edXML element names. Optional children are ``None`` when
the element is absent and ``""`` when it is present but empty, so ``parse(build(m)) == m``.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime

from .dates import normalize_timestamp

#: The namespace every producer uses for edXML elements.
EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XLINK_NS = "http://www.w3.org/1999/xlink"


class StatusCode(enum.StrEnum):
    """Business status codes of a status message (QCVN 102:2016, status ``StatusCode``)."""

    RECEIVED = "01"
    REJECTED = "02"
    ACCEPTED = "03"
    ASSIGNED = "04"
    PROCESSING = "05"
    DONE = "06"
    TAKE_BACK_REQUEST = "13"
    TAKE_BACK_AGREED = "15"
    TAKE_BACK_REFUSED = "16"

    @property
    def meaning_vi(self) -> str:
        return _MEANINGS[self][0]

    @property
    def meaning_en(self) -> str:
        return _MEANINGS[self][1]

    @property
    def requires_reason(self) -> bool:
        """02, 13 and 16 must carry the reason in ``Description``."""
        return self in (StatusCode.REJECTED, StatusCode.TAKE_BACK_REQUEST,
                        StatusCode.TAKE_BACK_REFUSED)

    @classmethod
    def coerce(cls, value: str) -> StatusCode | str:
        """The enum member for a known code, the string itself for an unknown one."""
        try:
            return cls(value)
        except ValueError:
            return value


_MEANINGS = {
    StatusCode.RECEIVED: ("Đã đến", "received, not yet handled by the clerk"),
    StatusCode.REJECTED: ("Từ chối tiếp nhận", "rejected"),
    StatusCode.ACCEPTED: ("Tiếp nhận, vào sổ", "accepted and registered"),
    StatusCode.ASSIGNED: ("Phân công xử lý", "assigned"),
    StatusCode.PROCESSING: ("Đang xử lý", "processing"),
    StatusCode.DONE: ("Hoàn thành", "finished"),
    StatusCode.TAKE_BACK_REQUEST: ("Yêu cầu lấy lại", "sender asks to take the document back"),
    StatusCode.TAKE_BACK_AGREED: ("Đồng ý cập nhật/lấy lại", "agrees to update/take back"),
    StatusCode.TAKE_BACK_REFUSED: ("Từ chối cập nhật/lấy lại", "refuses update/take back"),
}


class BussinessDocType(enum.IntEnum):
    """``Bussiness/BussinessDocType``: 0 new, 1 revoke (thu hồi), 2 update, 3 replace."""

    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3


@dataclass(frozen=True, slots=True)
class Organ:
    """``From`` / ``To``: an agency; ``OrganId`` is its code (mã định danh)."""

    organ_id: str
    organ_name: str | None = None
    organization_in_charge: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(frozen=True, slots=True)
class Code:
    """``Code``: number (``CodeNumber``, số) and notation (``CodeNotation``, ký hiệu)."""

    code_number: str
    code_notation: str

    def __str__(self) -> str:
        return f"{self.code_number}/{self.code_notation}"


@dataclass(frozen=True, slots=True)
class PromulgationInfo:
    """``PromulgationInfo``: place and date of promulgation (ngày ban hành)."""

    place: str
    promulgation_date: date


@dataclass(frozen=True, slots=True)
class DocumentType:
    """``DocumentType``: ``Type``, ``TypeDetail`` (integers) and ``TypeName`` ("Công văn")."""

    type: int
    type_name: str
    type_detail: int | None = None


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """``SignerInfo``: the competent person (``Competence`` e.g. "KT. BỘ TRƯỞNG")."""

    full_name: str
    competence: str | None = None
    position: str | None = None


@dataclass(frozen=True, slots=True)
class OtherInfo:
    """``OtherInfo``: priority (0 normal … 3 hỏa tốc), sphere, amounts, appendixes."""

    priority: int | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    page_amount: int | None = None
    direction: bool | None = None
    appendixes: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ResponseFor:
    """``ResponseFor``: the document replied to. All parts may be absent (``<ResponseFor/>``)."""

    organ_id: str | None = None
    code: str | None = None
    promulgation_date: date | None = None
    document_id: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.organ_id or self.code or self.promulgation_date or self.document_id)


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """``TraceHeader``: one hop. ``OrganId`` empty or "null" in the wild is kept as ``None``."""

    organ_id: str | None
    timestamp: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp", normalize_timestamp(self.timestamp))


@dataclass(frozen=True, slots=True)
class StaffInfo:
    """``StaffInfo``: the officer in charge."""

    department: str | None = None
    staff: str | None = None
    email: str | None = None
    mobile: str | None = None


@dataclass(frozen=True, slots=True)
class Receiver:
    """``ReceiverList/Receiver`` of an update."""

    organ_id: str
    receiver_type: int | None = None


@dataclass(frozen=True, slots=True)
class BussinessDocumentInfo:
    """``BussinessDocumentInfo`` (update): which parts change and the new receivers."""

    document_info: bool | None = None
    document_receiver: bool | None = None
    receivers: tuple[Receiver, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplacementInfo:
    """``ReplacementInfoList/ReplacementInfo`` (replace): replaced documents and the organs."""

    document_ids: tuple[str, ...]
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Bussiness:
    """``TraceHeaderList/Bussiness`` (double "s" as in the standard): the business action."""

    bussiness_doc_type: BussinessDocType
    document_id: str | None = None
    bussiness_doc_reason: str | None = None
    paper: bool | None = None
    bussiness_document_info: BussinessDocumentInfo | None = None
    replacement_info_list: tuple[ReplacementInfo, ...] | None = None
    staff_info: StaffInfo | None = None


@dataclass(frozen=True, slots=True, eq=True)
class Attachment:
    """One attached file, joined with its manifest ``Reference`` and already unpacked.

    ``content_type`` is the original type (``Reference/ContentType``); ``data`` the file bytes
    after base64 decoding and unzipping. ``content_id`` never keeps a ``cid:`` prefix.
    """

    content_id: str
    name: str
    content_type: str
    data: bytes = field(repr=False)
    description: str | None = None

    def __post_init__(self) -> None:
        if self.content_id.lower().startswith("cid:"):
            object.__setattr__(self, "content_id", self.content_id[4:])

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class EdocMessage:
    """A document message (``messagetype = edoc``)."""

    from_organ: Organ
    to_organs: tuple[Organ, ...]
    document_id: str
    code: Code
    promulgation_info: PromulgationInfo
    document_type: DocumentType
    subject: str
    signer_info: SignerInfo
    content: str | None = None
    due_date: date | None = None
    other_info: OtherInfo | None = None
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: int | None = None
    to_places: tuple[str, ...] | None = None
    trace_headers: tuple[TraceHeader, ...] = ()
    bussiness: Bussiness | None = None
    signature: bytes | None = field(default=None, repr=False)
    attachments: tuple[Attachment, ...] = ()

    message_type = "edoc"

    @property
    def replies_to(self) -> tuple[ResponseFor, ...]:
        """The non-empty ``ResponseFor`` entries."""
        return tuple(r for r in self.response_for if not r.is_empty)


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A status message (``messagetype = status``): a business status about one document."""

    from_organ: Organ
    response_for: ResponseFor
    status_code: StatusCode | str
    description: str
    timestamp: datetime
    staff_info: StaffInfo | None = None
    trace_headers: tuple[TraceHeader, ...] = ()
    signature: bytes | None = field(default=None, repr=False)

    message_type = "status"

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp", normalize_timestamp(self.timestamp))
        if isinstance(self.status_code, str) and not isinstance(self.status_code, StatusCode):
            object.__setattr__(self, "status_code", StatusCode.coerce(self.status_code))

"""The metadata of an outbound document, as an eOffice submits it: the edXML header fields under
plain names (one source of truth: :class:`OutboundMetadata`).

Rules implemented here:

* Types are strict (a number is not a string, a list is not a string); unknown fields are
  refused, so that a misspelt field never silently drops a value.
* Every text is bounded (the sizes of ``schemas/edxml/edxml-common.xsd``), single-line unless it
  is ``content``, and holds no C0/C1 control, bidirectional control (U+202A-U+202E,
  U+2066-U+2069) or lone surrogate: nothing that the edXML, PostgreSQL or a receiver's screen
  cannot take faithfully.
* Dates are ``yyyy/MM/dd`` (QCVN 102), ``yyyy-MM-dd`` or ``dd/MM/yyyy``
  (:func:`gateway.edxml.dates.parse_date`).
* Receivers: 1 to :data:`MAX_RECEIVERS` agency codes, no repeats; a code is at most 64
  printable characters without spaces. Codes of another shape than ``LLL.LL.LL.Xnn`` are
  accepted with a warning (``RECEIVER_CODE_UNUSUAL``: ``vxp.saas.03`` and the like travel in
  the wild; spec §4).

:func:`metadata_errors` turns a validation failure into machine-readable entries naming the
field (``to[1]``, ``signer.full_name``).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from gateway.edxml.dates import parse_date

MAX_RECEIVERS = 100
#: Characters no metadata text may hold (``content`` may hold line breaks and tabs).
_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_FORBIDDEN_LINE = re.compile("[\t\n\r]")
#: The shape of an agency code (mã định danh, Decision 20/2020): ``000.00.00.G22``.
AGENCY_CODE_SHAPE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
_CODE_CHARS = re.compile(r"^[\x21-\x7e]{1,64}$")


def _text(multiline: bool = False):
    def check(value: str) -> str:
        if _FORBIDDEN.search(value) or (not multiline and _FORBIDDEN_LINE.search(value)):
            raise ValueError("holds a control, bidirectional-control or lone-surrogate"
                             " character")
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value
    return AfterValidator(check)


def Text(max_length: int, *, multiline: bool = False):
    return Annotated[StrictStr, Field(min_length=1, max_length=max_length), _text(multiline)]


def _agency_code(value: str) -> str:
    if not _CODE_CHARS.match(value):
        raise ValueError("an agency code is 1 to 64 printable ASCII characters, no spaces")
    return value


def _date(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > 32:
            raise ValueError("not a date")
        try:
            return parse_date(value)
        except ValueError:
            raise ValueError("not a date (yyyy/MM/dd)") from None
    if isinstance(value, date):
        return value
    raise ValueError("a date is a string yyyy/MM/dd")


AgencyCode = Annotated[StrictStr, AfterValidator(_agency_code)]
DateValue = Annotated[date, BeforeValidator(_date)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Signer(_Strict):
    """``SignerInfo``: the competent person who signed the document."""

    full_name: Text(255)
    competence: Text(255) | None = None
    position: Text(255) | None = None


class ResponseForIn(_Strict):
    """``ResponseFor``: the document this one answers."""

    organ_id: AgencyCode
    code: Text(255) | None = None
    promulgation_date: DateValue | None = None
    document_id: Text(255)


class OutboundMetadata(_Strict):
    """The ``metadata`` part of ``POST /v1/outbound``."""

    from_: AgencyCode = Field(alias="from")
    to: list[AgencyCode] = Field(min_length=1, max_length=MAX_RECEIVERS)
    code_number: Text(32)
    code_notation: Text(64)
    promulgation_place: Text(255)
    promulgation_date: DateValue
    document_type: StrictInt = Field(ge=0, le=9999)
    type_detail: StrictInt | None = Field(default=None, ge=0, le=9999)
    type_name: Text(255)
    subject: Text(2000)
    content: Text(20000, multiline=True) | None = None
    signer: Signer
    due_date: DateValue | None = None
    #: 0 normal, 1 urgent (khẩn), 2 top urgent (thượng khẩn), 3 flash (hỏa tốc) [I].
    priority: StrictInt | None = Field(default=None, ge=0, le=3)
    to_places: list[Text(500)] | None = Field(default=None, max_length=MAX_RECEIVERS)
    steering_type: StrictInt | None = Field(default=None, ge=0, le=99)
    response_for: list[ResponseForIn] = Field(default_factory=list, max_length=20)
    #: The edXML DocumentId; default ``<from>,<yyyy/MM/dd>,<number>/<notation>``.
    document_id: Text(255) | None = None
    sphere_of_promulgation: Text(255) | None = None
    #: A secrecy mark (độ mật): any value but "không mật"/"thường"/"0" refuses the document.
    secret_level: StrictStr | None = Field(default=None, max_length=64)
    promulgation_amount: StrictInt | None = Field(default=None, ge=0, le=100000)
    page_amount: StrictInt | None = Field(default=None, ge=0, le=100000)
    #: Apply the agency seal (default: the sending agency's ``seal`` setting).
    seal: StrictBool | None = None

    @field_validator("to")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a receiver is listed twice")
        return value

    @property
    def sender(self) -> str:
        return self.from_

    @property
    def code(self) -> str:
        return f"{self.code_number}/{self.code_notation}"

    def default_document_id(self) -> str:
        """QCVN 102 §1.14: ``<issuer OrganId>,<yyyy/MM/dd>,<CodeNumber>/<CodeNotation>``."""
        d = self.promulgation_date
        return f"{self.from_},{d.year:04d}/{d.month:02d}/{d.day:02d},{self.code}"

    def unusual_receivers(self) -> list[str]:
        """Receivers whose code is not of the ``LLL.LL.LL.Xnn`` shape (a warning only)."""
        return [r for r in self.to if not AGENCY_CODE_SHAPE.match(r)]


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "constrained-")):
            out += ("." if out else "") + str(part)
    return out or "metadata"


def metadata_errors(exc: ValidationError, limit: int = 20) -> list[dict[str, str]]:
    """``[{field, code, message}]`` of a validation failure (``code``: ``missing``,
    ``string_type``, ``too_long`` …; never the value that was sent)."""
    out = []
    for err in exc.errors(include_input=False, include_url=False)[:limit]:
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append({"field": _field(err.get("loc", ())), "code": err.get("type", "invalid"),
                    "message": message[:300]})
    return out

"""The status model and the field limits of business status messages, in one place.

**Status model** (what an agency's eOffice may report about a document it received, given what
it already reported; QCVN 102:2016 status codes, Decree 30/2020/NĐ-CP Art. 21.2):

- ``01`` (đã đến) is sent by the gateway itself on intake, never by an eOffice.
- The clerk then either accepts ``03`` (vào sổ) or returns ``02`` (từ chối, with a reason):
  ``02`` is allowed only before ``03``, and a returned document takes no further status of the
  main track.
- After ``03`` the work moves forward only: ``04`` (phân công) → ``05`` (đang xử lý) → ``06``
  (hoàn thành); a step may be skipped (``03`` → ``06``), never taken back (no ``04`` after
  ``05``, no ``02`` after ``05``).
- ``15`` / ``16`` (agree / refuse to update or take back) answer a request: a ``13`` from the
  document's sender, or the document being itself a revoke (1) or an update (2) message
  (``BussinessDocType``). One answer per document: after ``15``, ``16`` is refused and vice versa.
- A code the agency already reported is the same status again, whatever its text: the report
  is answered as a duplicate and nothing is sent.

**Field limits.** QCVN 102:2016 types these elements as plain strings without a size, so the
gateway sets its own (characters, not bytes; the API refuses longer values with 422, a status
message from the axis is cut with a note, see :func:`bound`):

- ``Description``: :data:`MAX_DESCRIPTION` = 2000 (a full-page reason; the axis carries status
  messages as small envelopes, and nothing in the exchange needs more);
- ``StaffInfo/Department`` and ``StaffInfo/Staff``: :data:`MAX_STAFF_NAME` = 255 (like every
  name and identifier of our edXML schema, ``edxml-common.xsd`` ``Identifier``);
- ``StaffInfo/Email``: :data:`MAX_EMAIL` = 254 (RFC 5321 §4.5.3.1.3 path limit, less the angle
  brackets), local part at most 64 (§4.5.3.1.1), one ``@`` and a dotted domain;
- ``StaffInfo/Mobile``: :data:`MAX_PHONE` = 32 (ITU-T E.164 numbers have at most 15 digits; room
  for ``+``, spaces, dots, dashes and parentheses), at least 3 digits and nothing else.

No text may hold a lone surrogate (not encodable in UTF-8) or a control character (C0, DEL, C1;
XML 1.0 forbids most of them); a description may hold tab and line breaks, the other fields not.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any


class StatusError(Exception):
    """A status that cannot be sent as it is (answered 422 by the API)."""

    code = "STATUS_INVALID"

    def __init__(self, message: str, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code
        self.details = details or {}


class StatusNotAllowed(StatusError):
    """A status the status model does not allow after what the agency already reported
    (answered 409 by the API)."""

    code = "STATUS_NOT_ALLOWED"


MAX_DESCRIPTION = 2000
MAX_STAFF_NAME = 255
MAX_EMAIL = 254
MAX_EMAIL_LOCAL = 64
MAX_PHONE = 32
#: ``StaffInfo`` children (JSON keys as the edXML element names) and their limits.
STAFF_LIMITS = {"Department": MAX_STAFF_NAME, "Staff": MAX_STAFF_NAME, "Email": MAX_EMAIL,
                "Mobile": MAX_PHONE}

#: The main track after acceptance, in order.
_FORWARD = ("03", "04", "05", "06")
#: Answers to an update/take-back request.
_ANSWERS = ("15", "16")
#: Every code an eOffice may report, in the order used in messages.
_CODES = ("02", "03", "04", "05", "06", "15", "16")

_BAD_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_EMAIL = re.compile(rf"[^@\s]{{1,{MAX_EMAIL_LOCAL}}}@[^@\s.]+(\.[^@\s.]+)+")
_PHONE = re.compile(r"\+?[0-9 ().\-]+")


def allowed(code: str, reported: Collection[str], *, request_open: bool) -> bool:
    """Whether ``code`` may follow ``reported`` (codes the agency already reported on the
    document) when it is not one of them; ``request_open``: an update/take-back request
    awaits an answer (see the module docstring)."""
    if code == "02":
        return not any(c in reported for c in _FORWARD)
    if code in _FORWARD:
        if "02" in reported:
            return False
        rank = _FORWARD.index(code)
        if any(_FORWARD.index(c) > rank for c in reported if c in _FORWARD):
            return False
        return code == "03" or "03" in reported
    if code in _ANSWERS:
        return request_open and not any(c in reported for c in _ANSWERS)
    return False


def check_transition(code: str, reported: Collection[str], *, request_open: bool) -> bool:
    """True when ``code`` was already reported (a duplicate, whatever its text); None of that
    and not :func:`allowed`: :class:`StatusNotAllowed` naming what was reported and what may
    come next."""
    if code in reported:
        return True
    if allowed(code, reported, request_open=request_open):
        return False
    nexts = [c for c in _CODES
             if c not in reported and allowed(c, reported, request_open=request_open)]
    done = sorted(reported)
    raise StatusNotAllowed(
        f"status {code} cannot follow {', '.join(done) or 'nothing'} on this document"
        f" (allowed now: {', '.join(nexts) or 'none'})",
        details={"status": code, "reported": done, "allowed": nexts})


def check_text(field: str, value: str, limit: int, *, multiline: bool = False) -> str:
    """``value`` stripped, or :class:`StatusError` ``STATUS_FIELD_TOO_LONG`` /
    ``STATUS_FIELD_INVALID`` naming ``field``."""
    value = value.strip()
    if len(value) > limit:
        raise StatusError(f"{field} is {len(value)} characters long, at most {limit} allowed",
                          "STATUS_FIELD_TOO_LONG", {"field": field, "max_length": limit})
    if (_BAD_TEXT if multiline else _BAD_LINE).search(value):
        raise StatusError(f"{field} holds a control character or a lone surrogate",
                          "STATUS_FIELD_INVALID", {"field": field})
    return value


def check_staff(staff: object) -> dict[str, str] | None:
    """A reported ``staff`` object checked against :data:`STAFF_LIMITS` and the formats of the
    module docstring; empty values are dropped, unknown keys refused."""
    if staff is None:
        return None
    if not isinstance(staff, dict) or not all(isinstance(v, str) for v in staff.values()):
        raise StatusError("staff must be an object of strings", "STATUS_FIELD_INVALID",
                          {"field": "staff"})
    unknown = sorted(k for k in staff if k not in STAFF_LIMITS)
    if unknown:
        raise StatusError(f"staff may only have {', '.join(STAFF_LIMITS)}"
                          f" (not {', '.join(ascii(k[:40]) for k in unknown[:5])})",
                          "STATUS_FIELD_INVALID", {"field": "staff"})
    out = {}
    for key, limit in STAFF_LIMITS.items():
        value = check_text(f"staff.{key}", staff.get(key, ""), limit)
        if value:
            out[key] = value
    email, mobile = out.get("Email"), out.get("Mobile")
    if email is not None and not _EMAIL.fullmatch(email):
        raise StatusError("staff.Email is not an e-mail address", "STATUS_FIELD_INVALID",
                          {"field": "staff.Email"})
    if mobile is not None and not (_PHONE.fullmatch(mobile)
                                   and sum(c.isdigit() for c in mobile) >= 3):
        raise StatusError("staff.Mobile is not a telephone number", "STATUS_FIELD_INVALID",
                          {"field": "staff.Mobile"})
    return out or None


def bound(value: str | None, limit: int, *, multiline: bool = False) -> str | None:
    """``value`` made storable and sendable without refusing it (status messages from the axis,
    texts the gateway composes): control characters and lone surrogates become U+FFFD, and a
    text over ``limit`` is cut, ending with a note that gives its original length."""
    if value is None:
        return None
    value = (_BAD_TEXT if multiline else _BAD_LINE).sub("\ufffd", value)
    if len(value) <= limit:
        return value
    note = f"… [cắt bớt, dài {len(value)} ký tự]"
    if len(note) >= limit:
        return value[:limit]
    return value[:limit - len(note)] + note


def bound_staff(staff: Mapping[str, str | None] | None) -> dict[str, str] | None:
    """A staff object from the axis, each known field :func:`bound` to its limit (no format
    check: it is only shown), empty ones dropped."""
    if not staff:
        return None
    out = {k: bound(staff.get(k), limit) for k, limit in STAFF_LIMITS.items()}
    return {k: v for k, v in out.items() if v} or None

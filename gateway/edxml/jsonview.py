"""``to_json``: a JSON-safe summary of a message (attachments without their bytes);
``from_json``: its inverse for integrators."""

from __future__ import annotations

import base64
import dataclasses
import enum
from datetime import date, datetime
from typing import Any

from . import dates
from .model import (
    Attachment,
    Bussiness,
    BussinessDocType,
    BussinessDocumentInfo,
    Code,
    DocumentType,
    EdocMessage,
    Organ,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusMessage,
    TraceHeader,
)
from .payload import decode_base64


def _value(value: Any) -> Any:
    if isinstance(value, Attachment):
        return {"content_id": value.content_id, "name": value.name,
                "content_type": value.content_type, "description": value.description,
                "size": value.size, "sha256": value.sha256}
    if isinstance(value, StatusCode):
        return value.value
    if isinstance(value, enum.IntEnum):
        return int(value)
    if isinstance(value, datetime):
        return dates.normalize_timestamp(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple):
        return [_value(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {f.name: _value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def to_json(msg: EdocMessage | StatusMessage) -> dict[str, Any]:
    """Summary for the CLI and HTTP API: dates ISO 8601, status code as its two digits plus
    its meaning, attachments as name, content type, size and sha256, signature as base64."""
    out = {"message_type": msg.message_type}
    out.update(_value(msg))
    if isinstance(msg, StatusMessage) and isinstance(msg.status_code, StatusCode):
        out["status_meaning_vi"] = msg.status_code.meaning_vi
        out["status_meaning_en"] = msg.status_code.meaning_en
    return out


def _date(value: Any) -> date | None:
    return None if value in (None, "") else dates.parse_date(str(value))


def _obj(cls: type, data: dict | None, **convert: Any) -> Any:
    if data is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    kwargs = {k: (convert[k](v) if k in convert else v) for k, v in data.items()}
    return cls(**kwargs)


def _organ(d: dict) -> Organ:
    return _obj(Organ, d)


def _response_for(d: dict) -> ResponseFor:
    return _obj(ResponseFor, d, promulgation_date=_date)


def _trace(d: dict) -> TraceHeader:
    return _obj(TraceHeader, d, timestamp=lambda v: dates.parse_timestamp(str(v)))


def _bussiness(d: dict | None) -> Bussiness | None:
    return _obj(
        Bussiness, d, bussiness_doc_type=BussinessDocType,
        bussiness_document_info=lambda v: _obj(
            BussinessDocumentInfo, v,
            receivers=lambda rs: tuple(_obj(Receiver, r) for r in rs)),
        replacement_info_list=lambda v: None if v is None else tuple(
            _obj(ReplacementInfo, r, document_ids=tuple, organ_ids=tuple) for r in v),
        staff_info=lambda v: _obj(StaffInfo, v))


def from_json(data: dict[str, Any], attachments: tuple[Attachment, ...] = ()) -> (
        EdocMessage | StatusMessage):
    """Inverse of :func:`to_json` for integrators (``edxml build``): ``message_type`` selects
    the model; dates may use any accepted form; attachments come as models (the JSON's
    ``attachments`` summaries, if any, are ignored)."""
    data = dict(data)
    kind = data.pop("message_type", "edoc")
    for key in ("status_meaning_vi", "status_meaning_en", "attachments"):
        data.pop(key, None)
    common = {
        "from_organ": _organ,
        "trace_headers": lambda v: tuple(_trace(t) for t in v),
        "signature": lambda v: None if v is None else decode_base64(v),
        "staff_info": lambda v: _obj(StaffInfo, v),
    }
    if kind == "status":
        return _obj(StatusMessage, data, **common, response_for=_response_for,
                    timestamp=lambda v: dates.parse_timestamp(str(v)))
    if kind != "edoc":
        raise ValueError(f"message_type must be 'edoc' or 'status', not {kind!r}")
    msg = _obj(
        EdocMessage, data, **{k: v for k, v in common.items() if k != "staff_info"},
        to_organs=lambda v: tuple(_organ(o) for o in v),
        code=lambda v: _obj(Code, v),
        promulgation_info=lambda v: _obj(PromulgationInfo, v, promulgation_date=_date),
        document_type=lambda v: _obj(DocumentType, v), signer_info=lambda v: _obj(SignerInfo, v),
        due_date=_date,
        other_info=lambda v: _obj(OtherInfo, v, appendixes=lambda a: None if a is None
                                  else tuple(a)),
        response_for=lambda v: tuple(_response_for(r) for r in v),
        to_places=lambda v: None if v is None else tuple(v),
        bussiness=_bussiness)
    return dataclasses.replace(msg, attachments=tuple(attachments))

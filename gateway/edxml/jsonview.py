"""``to_json``: a JSON-safe summary of a message (attachments without their bytes)."""

from __future__ import annotations

import base64
import dataclasses
import enum
from datetime import date, datetime
from typing import Any

from . import dates
from .model import Attachment, EdocMessage, StatusCode, StatusMessage


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

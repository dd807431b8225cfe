"""JSON responses that serialise UUIDs, dates and datetimes the same way everywhere."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

from aiohttp import web


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        raise TypeError("bytes are never serialised into JSON responses")
    return str(value)


def dumps(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False)


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type="application/json")


async def read_json(request: web.Request) -> dict[str, Any]:
    from gateway.api.errors import ApiError

    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiError("the request body is not valid JSON", code="INVALID_JSON") from None
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object", code="INVALID_JSON")
    return data

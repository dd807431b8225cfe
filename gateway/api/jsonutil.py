"""JSON responses that serialise UUIDs, dates and datetimes the same way everywhere, and JSON
request bodies read with bounds.

Rules implemented here (request bodies):

* The body is UTF-8 (RFC 8259 §8.1: JSON exchanged between systems MUST be UTF-8; a ``charset``
  parameter is ignored), at most :data:`MAX_JSON_BYTES` (413 ``PAYLOAD_TOO_LARGE``), and a JSON
  object; nesting too deep for the parser is 400 ``INVALID_JSON``, like any syntax error.
* No string (key or value) may hold a lone surrogate (``"\\ud800"``: valid JSON, but no UTF-8
  encoding exists, so nothing downstream — PostgreSQL, the edXML status, the logs — could
  store it) or U+0000 (PostgreSQL text cannot hold it): 400 ``INVALID_JSON`` with
  ``details.path`` naming where.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

#: Largest JSON request body (bytes); the API's JSON bodies are a few hundred bytes.
MAX_JSON_BYTES = 1024 * 1024
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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


def unstorable_path(data: Any) -> str | None:
    """The path (``$.staff.name``) of the first string holding a lone surrogate or NUL."""
    stack: list[tuple[str, Any]] = [("$", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                if _UNSTORABLE.search(key):
                    return f"{path}.<key>"
                stack.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


async def read_json(request: web.Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object, read up to ``limit`` bytes (413 ``PAYLOAD_TOO_LARGE`` past
    it); 400 ``INVALID_JSON`` for bad UTF-8 or syntax, nesting deeper than the parser recurses,
    a non-object, or a lone surrogate or NUL anywhere (``details.path`` says where)."""
    from gateway.api.errors import ApiError
    from gateway.api.uploads import read_body

    raw = await read_body(request, limit, ApiError(
        f"the JSON body exceeds {limit} bytes", code="PAYLOAD_TOO_LARGE", status=413))
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError("the request body is not valid JSON (UTF-8)", code="INVALID_JSON") from None
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object", code="INVALID_JSON")
    if (path := unstorable_path(data)) is not None:
        path = path[:200]
        raise ApiError(f"{path}: a lone surrogate or NUL cannot be stored", code="INVALID_JSON",
                       details={"path": path})
    return data


def query_time(value: str | None) -> datetime | None:
    """An ISO 8601 time from a query parameter (``before=``) in UTC, as asyncpg sends it;
    raises ``ValueError`` (also for a time whose UTC instant leaves years 1..9999, e.g.
    ``0001-01-01T00:00:00+14:00``), which handlers answer 400 ``INVALID_QUERY``."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"time out of range: {value!r}") from exc

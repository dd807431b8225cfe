"""Outbound documents: ``POST /v1/outbound`` (an eOffice sends a document) and
``GET /v1/outbound/{id}`` (where each copy stands).

``POST /v1/outbound`` (role ``eoffice``, scoped to the sending agency ``from``): a
``multipart/form-data`` body with one ``metadata`` part (JSON, :class:`OutboundMetadata`, at
most :data:`MAX_METADATA` bytes) and one or more ``file`` parts, the main PDF first (at most
:data:`MAX_FILES`, together at most ``max_document_bytes``). Optional header
``Idempotency-Key`` (1-255 printable ASCII characters). The flow is
:mod:`gateway.outbound.submission`; the answer is 202 ``{id, document_id, state, sealed,
receivers: [{code, send_id, state}], warnings}`` (a repeat: the same, with ``replayed``).

Refusals (never a 5xx for anything the client sent):

* 400 ``MULTIPART_INVALID`` broken framing; 415 ``UNSUPPORTED_MEDIA_TYPE`` not multipart;
  400 ``INVALID_JSON`` metadata that is not a UTF-8 JSON object, or holds NUL or a lone
  surrogate (``details.path``); 400 ``IDEMPOTENCY_KEY_INVALID``;
* 413 ``PAYLOAD_TOO_LARGE`` (files over ``max_document_bytes``, metadata over its limit);
* 422 ``METADATA_MISSING``, ``FILE_MISSING``, ``FILE_EMPTY``, ``FILE_NAME_INVALID``,
  ``TOO_MANY_FILES``, ``PART_UNKNOWN`` (a part of another name), ``PART_DUPLICATE``;
* 422 ``METADATA_FIELD_MISSING`` / ``METADATA_FIELD_INVALID`` with ``details.field`` (the
  first) and ``details.errors`` ``[{field, code, message}]``;
* 403 ``AGENCY_FORBIDDEN`` (``from`` is not the token's agency); the flow's own codes
  (``SENDER_NOT_SERVED``, ``SENDER_NO_AXIS``, ``DOCUMENT_SECRET``, ``RECEIVER_UNKNOWN``,
  ``MAIN_FILE_NOT_PDF``, ``COMPETENT_SIGNATURE_MISSING``, ``SIGNATURE_INVALID``,
  ``COMPETENT_SIGNATURE_NOT_VALID``, ``SEAL_NOT_CONFIGURED``, ``PDF_*``, ``EDXML_*``);
  409 ``IDEMPOTENCY_KEY_REUSED``, ``DOCUMENT_ID_EXISTS``; 503 with Retry-After when the
  signing pool is busy or a key unavailable.

``GET /v1/outbound/{id}`` (the sending agency's ``eoffice`` token, ``operator``): the document,
its files and signature report, per receiver ``{receiver, send_id, state, axis_doc_id,
error_code, error_desc, attempts, last_error, …}`` with the axis send/receive state
(``axis_send_status``, ``axis_receive_status``, their descriptions and times,
``axis_tracking``), the latest business status (``status_code``, ``status_description``,
``status_staff``, ``status_at``) and ``statuses`` (every status that receiver sent, StaffInfo
included), the statuses and the timeline. Another agency's document is 404
``OUTBOUND_NOT_FOUND``.

``GET /v1/outbound?state=&limit=&before=`` (same roles): the agency's outbound documents
(an operator's: all), newest first, each with its receivers' copy state, latest status code
and axis receive status; 400 ``INVALID_QUERY`` for a bad parameter.
"""

from __future__ import annotations

import json
import re
import uuid
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ValidationError

from gateway.api.auth import Role, principal, require_agency
from gateway.api.documents import scope
from gateway.api.errors import ApiError, NotFound, ServiceUnavailable
from gateway.api.jsonutil import json_response, query_time, unstorable_path
from gateway.api.signing import (
    Busy,
    api_error,
    pool_crashed,
    sign_with,
    signing_backend,
)
from gateway.api.uploads import UnsupportedMediaType, form_parts, is_form_data, read_part
from gateway.outbound import store
from gateway.outbound.metadata import OutboundMetadata, metadata_errors
from gateway.outbound.states import OutboundState
from gateway.outbound.submission import Request, Submissions, Upload
from gateway.services import SERVICES, Services
from signing.errors import SigningError
from signing.pool import PoolOverloaded
from signing.sign import SignRequest

M = TypeVar("M", bound=BaseModel)
MAX_METADATA = 256 * 1024
MAX_FILES = 50
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_BAD_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff/\\\\]")


def _too_large(limit: int, what: str) -> ApiError:
    return ApiError(f"{what} exceed {limit} bytes", code="PAYLOAD_TOO_LARGE", status=413)


def _file_name(part: BodyPartReader, index: int) -> str:
    try:
        name = part.filename
    except (ValueError, UnicodeError):
        name = None
    if name is None:
        return f"tep-{index + 1}.pdf" if index == 0 else f"tep-{index + 1}"
    if not name.strip() or len(name) > 255 or _BAD_NAME.search(name):
        raise ApiError(f"file {index + 1}: the name is empty, too long or holds a control,"
                       " bidirectional-control or path character", code="FILE_NAME_INVALID",
                       status=422, details={"file": index + 1})
    return name.strip()


def parse_metadata(raw: bytes, model: type[M] = OutboundMetadata) -> M:  # type: ignore[assignment]
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError("metadata is not valid JSON (UTF-8)", code="INVALID_JSON") from None
    if not isinstance(data, dict):
        raise ApiError("metadata must be a JSON object", code="INVALID_JSON")
    if (path := unstorable_path(data)) is not None:
        path = path[:200]
        raise ApiError(f"metadata {path}: a lone surrogate or NUL cannot be stored",
                       code="INVALID_JSON", details={"path": path})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = metadata_errors(exc)
        missing = all(e["code"] == "missing" for e in errors)
        first = errors[0]
        raise ApiError(f"metadata {first['field']}: {first['message']}",
                       code="METADATA_FIELD_MISSING" if missing else "METADATA_FIELD_INVALID",
                       status=422, details={"field": first["field"], "errors": errors}) from None


async def read_submission(request: web.Request, limit: int, *,
                          files_required: bool = True) -> tuple[bytes, list[Upload]]:
    """(metadata bytes, files) of the multipart body, every size bounded while it streams
    (``files_required``: at least one file part)."""
    if not is_form_data(request):
        raise UnsupportedMediaType("send multipart/form-data: a metadata part and file parts")
    meta: bytes | None = None
    files: list[Upload] = []
    budget = limit
    async for part in form_parts(request):
        if part.name == "metadata":
            if meta is not None:
                raise ApiError("send one metadata part", code="PART_DUPLICATE", status=422)
            meta = await read_part(part, MAX_METADATA, _too_large(MAX_METADATA, "metadata"))
        elif part.name == "file":
            if len(files) >= MAX_FILES:
                raise ApiError(f"at most {MAX_FILES} files", code="TOO_MANY_FILES", status=422)
            name = _file_name(part, len(files))
            data = await read_part(part, budget, _too_large(limit, "the files"))
            if not data:
                raise ApiError(f"file {len(files) + 1} ({name}) is empty", code="FILE_EMPTY",
                               status=422, details={"file": len(files) + 1})
            budget -= len(data)
            ctype = (part.headers.get("Content-Type") or "application/octet-stream")
            ctype = ctype.split(";", 1)[0].strip().lower()[:100] or "application/octet-stream"
            if not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", ctype):
                ctype = "application/octet-stream"
            files.append(Upload(name, ctype, data))
        else:
            label = (part.name or "")[:40].encode("ascii", "replace").decode()
            raise ApiError(f"unknown part {label!r}: send metadata and file parts",
                           code="PART_UNKNOWN", status=422)
    if meta is None:
        raise ApiError("the metadata part is missing", code="METADATA_MISSING", status=422)
    if not files and files_required:
        raise ApiError("no file part: send the main PDF first", code="FILE_MISSING",
                       status=422)
    return meta, files


def submissions(svc: Services) -> Submissions:
    async def verify(data: bytes) -> dict[str, Any]:
        judge = svc.judge
        if judge is None:
            raise ServiceUnavailable("the verifier is not running", code="VERIFIER_UNAVAILABLE")
        try:
            report = await judge.pool.verify(data, judge.policy)
        except PoolOverloaded:
            raise Busy("the verification pool is busy; retry later") from None
        except SigningError as exc:
            raise api_error(exc) from None
        except BrokenProcessPool as exc:
            raise pool_crashed(exc) from None
        return report.to_json()

    async def seal(data: bytes, req: SignRequest, alias: str) -> bytes:
        backend = signing_backend(svc)
        try:
            return (await sign_with(svc, backend, data, req, alias)).data
        except ApiError as exc:
            if exc.code != "SIGN_FORM_FIELDS_MISSING":
                raise
        # the competent person's signature created no number/date fields: seal without them
        bare = SignRequest(role=req.role, reason=req.reason, location=req.location)
        return (await sign_with(svc, backend, data, bare, alias)).data

    return Submissions(svc.settings, pool=svc.pool, verify=verify, seal=seal,
                       axis_for=lambda agency: svc.axis_for(agency),
                       wake_relays=svc.wake_relays)


async def post_outbound(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    who = principal(request, Role.EOFFICE)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise ApiError("Idempotency-Key: 1 to 255 printable ASCII characters",
                       code="IDEMPOTENCY_KEY_INVALID")
    raw, files = await read_submission(request, svc.settings.max_document_bytes)
    meta = parse_metadata(raw)
    require_agency(who, meta.sender)
    status, body = await submissions(svc).submit(
        Request(meta=meta, files=files, idempotency_key=key, actor=who.actor()))
    response = json_response(body, status=status)
    if body.get("replayed"):
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def get_outbound(request: web.Request) -> web.Response:
    who = principal(request, Role.EOFFICE, Role.OPERATOR)
    try:
        doc_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such outbound document", code="OUTBOUND_NOT_FOUND") from None
    async with request.app[SERVICES].pool.acquire() as conn:
        doc = await store.read(conn, doc_id, scope(who))
    if doc is None:
        raise NotFound(f"no outbound document {doc_id}", code="OUTBOUND_NOT_FOUND")
    return json_response(doc)


async def list_outbound(request: web.Request) -> web.Response:
    """``GET /v1/outbound?state=&limit=&before=``: the agency's outbound documents, newest
    first (``before``: the ``created_at`` of the last one of the previous page)."""
    who = principal(request, Role.EOFFICE, Role.OPERATOR)
    params = request.query
    try:
        limit = max(1, min(int(params.get("limit", "50")), 500))
        before = query_time(params.get("before"))
    except ValueError:
        raise ApiError("limit must be a number, before an ISO 8601 time",
                       code="INVALID_QUERY") from None
    state = params.get("state") or None
    if state is not None and state not in OutboundState.__members__:
        raise ApiError(f"state must be one of {', '.join(OutboundState)}",
                       code="INVALID_QUERY")
    async with request.app[SERVICES].pool.acquire() as conn:
        items = await store.listing(conn, scope(who), state=state, before=before, limit=limit)
    return json_response({"items": items, "count": len(items)})


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/outbound", post_outbound)
    app.router.add_get("/v1/outbound", list_outbound)
    app.router.add_get("/v1/outbound/{id}", get_outbound)

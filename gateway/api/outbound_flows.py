"""The business flows on an outbound document (issue 13, sending side; QCVN 102:2016
``Bussiness``, status 13; Decree 30/2020 Art. 18). Role ``eoffice`` scoped to the sending
agency, or ``operator``. Rules and states: :mod:`gateway.outbound.flow_rules`.

* ``POST /v1/outbound/{id}/revoke`` JSON ``{reason, staff?}``: a revoke package (type 1) to
  every receiver; the document becomes ``REVOKED``. 202 ``{id, flow, flow_document, state,
  receivers}``.
* ``POST /v1/outbound/{id}/update`` multipart: ``metadata`` ``{reason, staff?,
  receivers_added?, receivers_removed?}`` and optional ``file`` parts replacing the files (the
  main PDF first, checked as on ``POST /v1/outbound``): an update package (type 2); added
  receivers get the updated document. The document becomes ``UPDATED``.
* ``POST /v1/outbound/{id}/replace`` multipart exactly as ``POST /v1/outbound`` (metadata with
  ``reason`` and ``staff?`` besides the document's fields): a NEW outbound document (type 3,
  ``ReplacementInfoList`` naming the original); the original becomes ``REPLACED``. 202: the new
  document as ``POST /v1/outbound`` answers it, with ``replaces``.
* ``POST /v1/outbound/{id}/take-back`` JSON ``{reason, staff?}``: status 13 to each receiver;
  ``take_back`` = ``PENDING``.

``Idempotency-Key`` as on ``POST /v1/outbound``; without one, the same request twice is one
flow (``replayed``). Errors: 404 ``OUTBOUND_NOT_FOUND`` (unknown, another agency's, or a flow
row); 409 ``OUTBOUND_NOT_SENT`` (``QUEUED``/``FAILED``), ``OUTBOUND_REVOKED``,
``OUTBOUND_REPLACED``, ``TAKE_BACK_PENDING``, ``IDEMPOTENCY_KEY_REUSED`` (``details.state``);
422 ``FLOW_FIELD_MISSING``/``FLOW_FIELD_INVALID`` (``details.errors``), ``RECEIVER_UNKNOWN``,
``RECEIVER_ALREADY``, ``RECEIVER_NOT_A_RECEIVER``, ``UPDATE_NO_RECEIVER``, the file codes of
``POST /v1/outbound``; 400 ``INVALID_JSON``; 413 ``PAYLOAD_TOO_LARGE``.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway import edxml
from gateway.api.auth import Principal, Role, principal, require_agency
from gateway.api.documents import scope
from gateway.api.errors import ApiError, Conflict, NotFound
from gateway.api.jsonutil import json_response, read_json
from gateway.api.outbound import (
    IDEMPOTENCY_KEY,
    parse_metadata,
    read_submission,
    submissions,
)
from gateway.outbound.flow_rules import (
    FlowBody,
    OutboundFlow,
    ReplaceMetadata,
    UpdateMetadata,
    refusal,
)
from gateway.outbound.flows import Flows
from gateway.outbound.metadata import metadata_errors
from gateway.outbound.submission import Replaces, Request, Upload
from gateway.services import SERVICES

M = TypeVar("M", bound=BaseModel)
#: A flow's JSON body: the longest reason and staff, every character escaped, fit.
MAX_BODY = 64 * 1024


def _doc_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such outbound document", code="OUTBOUND_NOT_FOUND") from None


def _key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise ApiError("Idempotency-Key: 1 to 255 printable ASCII characters",
                       code="IDEMPOTENCY_KEY_INVALID")
    return key


def _validate(data: dict, model: type[M]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = metadata_errors(exc)
        first = errors[0]
        missing = all(e["code"] == "missing" for e in errors)
        raise ApiError(f"{first['field']}: {first['message']}",
                       code="FLOW_FIELD_MISSING" if missing else "FLOW_FIELD_INVALID",
                       status=422, details={"field": first["field"], "errors": errors}) from None


def _flows(request: web.Request) -> Flows:
    svc = request.app[SERVICES]
    return Flows(svc.settings, pool=svc.pool, submissions=submissions(svc),
                 wake_relays=svc.wake_relays)


async def _start(request: web.Request, kind: OutboundFlow, body: FlowBody,
                 files: list[Upload], who: Principal, key: str | None) -> web.Response:
    status, answer = await _flows(request).start(
        kind, _doc_id(request), body, files, agencies=scope(who), actor=who.actor(),
        idempotency_key=key)
    response = json_response(answer, status=status)
    if answer.get("replayed"):
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def post_revoke(request: web.Request) -> web.Response:
    who = principal(request, Role.EOFFICE, Role.OPERATOR)
    key = _key(request)
    body = _validate(await read_json(request, MAX_BODY), FlowBody)
    return await _start(request, OutboundFlow.REVOKE, body, [], who, key)


async def post_take_back(request: web.Request) -> web.Response:
    who = principal(request, Role.EOFFICE, Role.OPERATOR)
    key = _key(request)
    body = _validate(await read_json(request, MAX_BODY), FlowBody)
    return await _start(request, OutboundFlow.TAKE_BACK, body, [], who, key)


async def post_update(request: web.Request) -> web.Response:
    who = principal(request, Role.EOFFICE, Role.OPERATOR)
    key = _key(request)
    svc = request.app[SERVICES]
    raw, files = await read_submission(request, svc.settings.max_document_bytes,
                                       files_required=False)
    meta = parse_metadata(raw, UpdateMetadata)
    return await _start(request, OutboundFlow.UPDATE, meta, files, who, key)


async def post_replace(request: web.Request) -> web.Response:
    who = principal(request, Role.EOFFICE, Role.OPERATOR)
    key = _key(request)
    svc = request.app[SERVICES]
    doc_id = _doc_id(request)
    raw, files = await read_submission(request, svc.settings.max_document_bytes)
    meta = parse_metadata(raw, ReplaceMetadata)
    require_agency(who, meta.sender)
    row = await svc.pool.fetchrow(
        "SELECT sender_code, state, edxml_document_id, ARRAY(SELECT receiver_code FROM"
        " outbound_sends s WHERE s.document_id = d.id AND s.state = 'SENT'"
        " ORDER BY receiver_code) AS receivers FROM documents d"
        " WHERE id = $1 AND direction = 'outbound' AND original_id IS NULL", doc_id)
    if row is None or not who.may_see_agency(row["sender_code"]) \
            or row["sender_code"] != meta.sender:
        raise NotFound(f"no outbound document {doc_id} of {meta.sender}",
                       code="OUTBOUND_NOT_FOUND")
    if (code := refusal(row["state"])) is not None:
        raise Conflict(f"document is {row['state']}: no replace now", code=code,
                       details={"state": row["state"], "flow": "replace"})
    staff = meta.staff.edxml() if meta.staff else None
    bussiness = edxml.Bussiness(
        edxml.BussinessDocType.REPLACE, None, meta.reason,
        replacement_info_list=(edxml.ReplacementInfo((row["edxml_document_id"],),
                                                     tuple(row["receivers"])),),
        staff_info=edxml.StaffInfo(department=meta.staff.department, staff=meta.staff.staff,
                                   email=meta.staff.email, mobile=meta.staff.mobile)
        if staff else None)
    status, body = await submissions(svc).submit(Request(
        meta=meta, files=files, idempotency_key=key, actor=who.actor(),
        replaces=Replaces(doc_id, bussiness, meta.reason, staff)))
    response = json_response(body, status=status)
    if body.get("replayed"):
        response.headers["Idempotent-Replayed"] = "true"
    return response


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/outbound/{id}/revoke", post_revoke)
    app.router.add_post("/v1/outbound/{id}/update", post_update)
    app.router.add_post("/v1/outbound/{id}/replace", post_replace)
    app.router.add_post("/v1/outbound/{id}/take-back", post_take_back)

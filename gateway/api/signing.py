"""Signing officers' HTTP API: ``POST /v1/sign`` and ``POST /v1/verify``.

``POST /v1/sign`` (roles officer, admin) takes a PDF as the ``file`` part of a
``multipart/form-data`` body (parameters as form fields) or as a raw ``application/pdf`` body
(parameters in the query string) and answers the signed PDF with ``X-Signed-SHA256``,
``X-Signature-Field`` and ``X-Audit-Id``. Parameters: ``key`` (alias), ``role``
(competent_person|agency|attachment|copy), ``level`` (B-B default|B-T|B-LT|B-LTA), and optional
``reason``, ``location``, ``number``, ``date``, ``signer_name``, ``position``, ``competence``,
``field``, ``copy_form``, ``agency_name``, ``page`` (1-based, default last) and ``box``
("x1,y1,x2,y2" in points).

Rules implemented here:

* An officer signs only with the aliases of its token (403 ``KEY_FORBIDDEN``, checked before the
  alias is looked up so that aliases cannot be probed); an alias the key file does not configure is
  404 ``KEY_UNKNOWN``; a key whose configured role does not allow the requested role is 422
  ``KEY_ROLE_MISMATCH``; a body that is not a readable PDF is 422 ``PDF_UNREADABLE``; a body over
  ``max_document_bytes`` is 413 ``PDF_TOO_LARGE``; a busy signing pool is 503 with Retry-After.
* Rate limits per token and per key (see :mod:`gateway.api.ratelimit`; per process), from
  ``EDOC_SIGN_RATE_PER_TOKEN`` / ``EDOC_SIGN_RATE_PER_KEY`` (requests per minute, default 30/60).
* Every signature is appended to the hash-chained audit log (``pdf.sign``: who, input and output
  SHA-256, key alias, role, level, field, signer subject, signing time) *before* the answer; when
  the audit entry cannot be written the signed PDF is discarded (503 ``AUDIT_UNAVAILABLE``). A
  refused or failed signature is audited as ``pdf.sign.failed`` with its error code (except rate
  limiting, which would let a client flood the log).
* Signing runs in a :class:`signing.pool.SigningPool` with the key file
  (``settings.signing.keys_file``), created at the first sign request, stored on
  ``gateway.extensions["signing_pool"]`` and closed on application cleanup. The TSA for B-T and
  above comes from an optional ``[services]`` table of the key file (``tsa_url``, ``timeout``,
  ``other_certs``); B-LT/B-LTA validation data is built from ``settings.signing.trust_bundles``.
  The key file is read once per process: restart to pick up changes.

``POST /v1/verify`` (roles officer, eoffice, operator, admin) takes a PDF the same way and answers
the validation report JSON of the gateway's judge pool; ``?etsi=1`` adds the ETSI TS 119 102-2 XML
of each signature. Unreadable is 422 with the error code (``PDF_UNREADABLE``, ``PDF_ENCRYPTED``).

PINs, passphrases and document bodies are never logged or audited; only their hashes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import re
import tomllib
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import BodyPartReader, web

from gateway.api.auth import Principal, Role, principal
from gateway.api.errors import ApiError, Forbidden, NotFound, ServiceUnavailable
from gateway.api.jsonutil import json_response
from gateway.api.middleware import REQUEST_ID_KEY
from gateway.api.ratelimit import DEFAULT_PER_KEY, DEFAULT_PER_TOKEN, RateLimited, SignRateLimits
from gateway.db import audit
from signing.errors import SigningError
from signing.keys import KeyAlias, KeyConfigError, SignerRole, load_key_config
from signing.pool import PoolOverloaded, SigningPool, check_role
from signing.sign import PadesLevel, SignedPdf, SigningServices, SignRequest

log = logging.getLogger(__name__)

SIGN_ROLES = (Role.OFFICER,)
VERIFY_ROLES = (Role.OFFICER, Role.EOFFICE, Role.OPERATOR)
RAW_PDF_TYPES = ("application/pdf", "application/x-pdf", "application/octet-stream")
TEXT_PARAMS = ("reason", "location", "number", "date", "signer_name", "position", "competence",
               "copy_form", "agency_name")
PARAMS = ("key", "role", "level", "page", "box", "field", "etsi", *TEXT_PARAMS)
MAX_PARAM_BYTES = 2048
CHUNK = 256 * 1024
RETRY_AFTER_BUSY = 1
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: HTTP status of a signing error code (anything else about the request or PDF: 422).
STATUS_BY_CODE = {
    "PDF_TOO_LARGE": 413,
    "KEY_UNKNOWN": 404,
    "POOL_OVERLOADED": 503,
    "POOL_CLOSED": 503,
    "KEY_TOKEN": 503,
    "KEY_LOAD": 500,
    "KEY_CONFIG": 500,
    "POOL_NO_KEYS": 500,
    "SIGN_FAILED": 500,
}
#: Library codes renamed for the API.
API_CODES = {"KEY_UNKNOWN_ALIAS": "KEY_UNKNOWN"}


class Busy(ServiceUnavailable):
    """503 with Retry-After: the pool has no room now."""

    def __init__(self, message: str, *, code: str = "POOL_OVERLOADED",
                 retry_after: int = RETRY_AFTER_BUSY) -> None:
        super().__init__(message, code=code, retry_after=retry_after)


def api_error(exc: SigningError) -> ApiError:
    """The API error for a :class:`SigningError` (status from its code, 422 by default)."""
    code = API_CODES.get(exc.code, exc.code)
    if isinstance(exc, PoolOverloaded):
        return Busy(str(exc))
    return ApiError(str(exc), code=code, status=STATUS_BY_CODE.get(code, 422))


# --- request bodies ----------------------------------------------------------------------------


async def _read_part(part: BodyPartReader, limit: int, error: ApiError) -> bytes:
    out = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        out += chunk
        if len(out) > limit:
            raise error
    return bytes(out)


def _too_large(limit: int) -> ApiError:
    return ApiError(f"the PDF exceeds {limit} bytes", code="PDF_TOO_LARGE", status=413)


async def read_upload(request: web.Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """(PDF bytes, parameters): multipart ``file`` part + fields, or a raw PDF body + query.

    Query parameters are read in both cases; form fields override them.
    """
    params = {k: v for k, v in request.query.items() if k in PARAMS}
    if request.content_type.startswith("multipart/form-data"):
        data = None
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                raise ApiError("nested multipart bodies are not accepted", code="INVALID_BODY")
            if part.name == "file":
                if data is not None:
                    raise ApiError("send exactly one file part", code="INVALID_BODY")
                data = await _read_part(part, limit, _too_large(limit))
            elif part.name in PARAMS:
                raw = await _read_part(part, MAX_PARAM_BYTES, ApiError(
                    f"parameter {part.name} is too long", code="INVALID_PARAMETER"))
                try:
                    params[part.name] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ApiError(f"parameter {part.name} is not UTF-8",
                                   code="INVALID_PARAMETER") from None
        if data is None:
            raise ApiError("the multipart body has no file part", code="PDF_MISSING")
        return data, params
    if request.content_type not in RAW_PDF_TYPES:
        raise ApiError("send multipart/form-data with a file part or an application/pdf body",
                       code="UNSUPPORTED_MEDIA_TYPE", status=415)
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    if len(data) > limit:
        raise _too_large(limit)
    if not data:
        raise ApiError("the body is empty: send the PDF", code="PDF_MISSING")
    return data, params


def looks_like_pdf(data: bytes) -> bool:
    """A PDF header within the first 1024 bytes (what readers tolerate)."""
    return b"%PDF-" in data[:1024]


# --- sign parameters ---------------------------------------------------------------------------


def _bad(name: str, message: str) -> ApiError:
    return ApiError(f"{name}: {message}", code="INVALID_PARAMETER", details={"parameter": name})


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise _bad("box", "must be x1,y1,x2,y2 in points") from None
    if not (x2 > x1 and y2 > y1):
        raise _bad("box", "needs x2 > x1 and y2 > y1")
    return x1, y1, x2, y2


def sign_request_from(params: dict[str, str]) -> tuple[str, SignRequest]:
    """(key alias, :class:`SignRequest`) from the request parameters; 400 when malformed."""
    alias = params.get("key", "").strip()
    if not alias:
        raise ApiError("key: the key alias is required", code="PARAMETER_MISSING",
                       details={"parameter": "key"})
    try:
        role = SignerRole(params.get("role", ""))
    except ValueError:
        raise _bad("role", "must be one of " + ", ".join(r.value for r in SignerRole)) from None
    try:
        level = PadesLevel(params.get("level") or PadesLevel.B_B.value)
    except ValueError:
        raise _bad("level", "must be one of " + ", ".join(v.value for v in PadesLevel)) from None
    page = -1
    if params.get("page"):
        try:
            page = int(params["page"])
        except ValueError:
            raise _bad("page", "must be a 1-based page number") from None
        if page < 1:
            raise _bad("page", "must be a 1-based page number")
        page -= 1
    field = params.get("field") or None
    if field is not None and not _FIELD_NAME.match(field):
        raise _bad("field", "letters, digits, _ and - only (at most 64)")
    text = {name: (params.get(name) or "").strip() or None for name in TEXT_PARAMS}
    request = SignRequest(
        role=role, level=level, reason=text["reason"], location=text["location"],
        field_name=field, box=_box(params["box"]) if params.get("box") else None, page=page,
        signer_name=text["signer_name"], signer_position=text["position"],
        competence=text["competence"], document_number=text["number"],
        document_date=text["date"], copy_form=text["copy_form"],
        agency_name=text["agency_name"],
    )
    return alias, request


# --- the signing backend (pool, keys, services) ------------------------------------------------


@dataclass(frozen=True)
class SigningBackend:
    pool: SigningPool
    keys: dict[str, KeyAlias]
    services: SigningServices


def load_services(keys_file: str | Path, trust_bundles: list[str], offline: bool
                  ) -> SigningServices:
    """TSA settings from the key file's optional ``[services]`` table (``tsa_url``, ``timeout``,
    ``other_certs``); trust roots for B-LT/B-LTA are the configured trust bundle files."""
    path = Path(keys_file)
    raw = path.read_bytes()
    data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    table = data.get("services") or {}
    if not isinstance(table, dict):
        raise KeyConfigError(f"key config {path}: services must be a table")
    base = path.resolve().parent
    return SigningServices(
        tsa_url=table.get("tsa_url") or None,
        timeout=float(table.get("timeout", 10.0)),
        other_certs=tuple(base / p for p in table.get("other_certs", ())),
        trust_roots=tuple(Path(p) for p in trust_bundles if Path(p).is_file()),
        allow_fetching=not offline,
    )


def signing_backend(gw) -> SigningBackend:
    """The gateway's signing backend, created on first use (no await: no creation race)."""
    backend = gw.extensions.get("signing_backend")
    if backend is not None:
        return backend
    cfg = gw.settings.signing
    if not cfg.keys_file:
        raise ServiceUnavailable("this gateway has no signing keys configured (signing.keys_file)",
                                 code="SIGNING_NOT_CONFIGURED")
    try:
        keys = load_key_config(cfg.keys_file)
        services = load_services(cfg.keys_file, cfg.trust_bundles, cfg.offline)
    except KeyConfigError as exc:
        raise api_error(exc) from None
    except (OSError, ValueError) as exc:
        raise ApiError(f"key config unreadable: {exc}", code="KEY_CONFIG", status=500) from None
    pool = SigningPool(max_workers=cfg.workers, key_config_path=cfg.keys_file,
                       max_pending=cfg.max_queue, services=services)
    backend = SigningBackend(pool, keys, services)
    gw.extensions["signing_backend"] = backend
    gw.extensions["signing_pool"] = pool
    return backend


async def close_backend(app: web.Application) -> None:
    from gateway.app import GATEWAY

    gw = app[GATEWAY]
    backend = gw.extensions.pop("signing_backend", None)
    gw.extensions.pop("signing_pool", None)
    if backend is not None:
        await asyncio.get_running_loop().run_in_executor(None, backend.pool.close)


def _env_rate(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        log.warning("ignoring invalid rate limit", extra={"variable": name})
        return default


def rate_limits(gw) -> SignRateLimits:
    limits = gw.extensions.get("sign_rate_limits")
    if limits is None:
        limits = gw.extensions["sign_rate_limits"] = SignRateLimits(
            _env_rate("EDOC_SIGN_RATE_PER_TOKEN", DEFAULT_PER_TOKEN),
            _env_rate("EDOC_SIGN_RATE_PER_KEY", DEFAULT_PER_KEY))
    return limits


# --- audit -------------------------------------------------------------------------------------


async def write_audit(gw, who: Principal, alias: str, action: str, detail: dict[str, Any]) -> int:
    """Append one entry and return its id; 503 ``AUDIT_UNAVAILABLE`` when it cannot be written."""
    try:
        async with gw.pool.acquire() as conn, conn.transaction():
            digest = await audit.append(conn, actor=who.actor(), action=action, subject=alias,
                                        detail=detail)
            return await conn.fetchval("SELECT id FROM audit_log WHERE hash = $1", digest)
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
        log.error("audit entry not written", extra={"action": action, "error": type(exc).__name__})
        raise ServiceUnavailable("the audit log cannot be written; no signed PDF is returned",
                                 code="AUDIT_UNAVAILABLE") from None


def _signed_detail(base: dict[str, Any], signed: SignedPdf) -> dict[str, Any]:
    return {**base, "output_sha256": signed.sha256, "output_size": len(signed.data),
            "field": signed.field_name, "signer_subject": signed.signer_subject,
            "signing_time": signed.signing_time.isoformat()}


# --- handlers ----------------------------------------------------------------------------------


def discard_backend(gw, backend: SigningBackend) -> None:
    """Forget a broken backend (a worker died): the next request builds a fresh pool."""
    if gw.extensions.get("signing_backend") is backend:
        gw.extensions.pop("signing_backend", None)
        gw.extensions.pop("signing_pool", None)
    backend.pool.close(wait=False)


async def _sign(gw, backend: SigningBackend, data: bytes, request: SignRequest, alias: str
                ) -> SignedPdf:
    key = backend.keys.get(alias)
    if key is None:
        raise NotFound(f"no key configured under alias {alias!r}", code="KEY_UNKNOWN")
    try:
        check_role(key.role, request.role, alias)
        if not looks_like_pdf(data):
            raise ApiError("the body is not a PDF (no %PDF- header)", code="PDF_UNREADABLE",
                           status=422)
        return await backend.pool.sign(data, request, alias)
    except SigningError as exc:
        raise api_error(exc) from None
    except BrokenProcessPool:
        log.error("signing pool broken; restarting it", extra={"alias": alias})
        discard_backend(gw, backend)
        raise Busy("a signing worker died; the pool is being restarted",
                   code="POOL_BROKEN") from None


async def post_sign(request: web.Request) -> web.Response:
    from gateway.app import GATEWAY

    gw = request.app[GATEWAY]
    who = principal(request, *SIGN_ROLES)
    limits = rate_limits(gw)
    limits.take_token(who.client_id)
    data, params = await read_upload(request, gw.settings.max_document_bytes)
    alias, sign_req = sign_request_from(params)
    base = {"input_sha256": hashlib.sha256(data).hexdigest(), "input_size": len(data),
            "role": sign_req.role.value, "level": sign_req.level.value,
            "request_id": request.get(REQUEST_ID_KEY)}
    if sign_req.document_number:
        base["number"] = sign_req.document_number
    try:
        if not who.may_use_key(alias):
            raise Forbidden(f"this token may not use key {alias!r}", code="KEY_FORBIDDEN")
        backend = signing_backend(gw)
        if alias in backend.keys:
            limits.take_key(alias)
        signed = await _sign(gw, backend, data, sign_req, alias)
    except RateLimited:
        raise
    except ApiError as exc:
        await write_audit(gw, who, alias, "pdf.sign.failed",
                          {**base, "error": exc.code, "status": exc.status})
        raise
    except Exception:
        log.exception("signing crashed", extra={"alias": alias})
        await write_audit(gw, who, alias, "pdf.sign.failed",
                          {**base, "error": "SIGN_FAILED", "status": 500})
        raise ApiError("signing failed; see the gateway log", code="SIGN_FAILED",
                       status=500) from None
    audit_id = await write_audit(gw, who, alias, "pdf.sign", _signed_detail(base, signed))
    log.info("pdf signed", extra={"alias": alias, "actor": who.actor(), "sha256": signed.sha256,
                                  "field": signed.field_name, "audit_id": audit_id})
    return web.Response(body=signed.data, content_type="application/pdf", headers={
        "X-Signed-SHA256": signed.sha256,
        "X-Signature-Field": signed.field_name,
        "X-Audit-Id": str(audit_id),
    })


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


async def post_verify(request: web.Request) -> web.Response:
    from gateway.app import GATEWAY

    gw = request.app[GATEWAY]
    principal(request, *VERIFY_ROLES)
    data, params = await read_upload(request, gw.settings.max_document_bytes)
    judge = gw.judge
    if judge is None:
        raise ServiceUnavailable("the verifier is not running", code="VERIFIER_UNAVAILABLE")
    policy = judge.policy
    if _truthy(params.get("etsi")):
        policy = dataclasses.replace(policy, etsi_xml=True)
    try:
        report = await judge.pool.verify(data, policy)
    except SigningError as exc:
        raise api_error(exc) from None
    return json_response(report.to_json())


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/sign", post_sign)
    app.router.add_post("/v1/verify", post_verify)
    app.on_cleanup.append(close_backend)

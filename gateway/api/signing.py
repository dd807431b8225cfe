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
  ``max_document_bytes`` is 413 ``PDF_TOO_LARGE`` (refused while it streams); a field that is
  already signed is 409 ``FIELD_ALREADY_SIGNED``; a PDF over a job limit is 422
  ``PDF_TOO_COMPLEX``/``PDF_TIMEOUT``; a busy, crashed (``POOL_WORKER_CRASHED``) or closed pool
  is 503 with Retry-After, on ``/v1/verify`` alike.
* A key whose certificate has expired or is not valid yet is 409 ``KEY_EXPIRED`` /
  ``KEY_NOT_YET_VALID`` (details: ``alias``, ``not_before``, ``not_after``; checked in the worker
  before signing, see :mod:`signing.keys.health`): the request is right, the key cannot sign
  until an operator renews it. A key that cannot be loaded or a token that cannot be reached
  (wrong PIN or passphrase, token absent or deleted, PKCS#11 module missing, token failing) is
  503 ``KEY_UNAVAILABLE`` with Retry-After (details: ``alias``, ``cause`` = ``KEY_LOAD`` /
  ``KEY_TOKEN``). Both are recorded as the key's last error (``GET /v1/keys/health``).
* Text parameters (``key``, ``reason``, ``location``, ``number``, ``date`` …) holding a C0/C1
  control, a bidirectional control (U+202A-U+202E, U+2066-U+2069) or a lone surrogate are 422
  ``PARAM_INVALID`` naming the parameter; ``box`` coordinates must be finite and within
  ±14,400 points (400 ``INVALID_PARAMETER``).
* The PDF's existing signatures are checked for integrity in the worker before signing
  (:mod:`signing.integrity`) and the answer says so in ``X-Existing-Signatures``
  (``none``/``intact``/``invalid``); with ``signing.refuse_invalid_existing`` an ``invalid``
  PDF is refused with 422 ``EXISTING_SIGNATURES_INVALID``.
* Rate limits per token and per key (see :mod:`gateway.api.ratelimit`; per process), from
  ``signing.rate_per_token`` / ``signing.rate_per_key`` (requests per minute, default 30/60; the
  older ``EDOC_SIGN_RATE_PER_TOKEN`` / ``_PER_KEY`` are read when these are not set).
* Every signature is appended to the hash-chained audit log (``pdf.sign``: who, input and output
  SHA-256, key alias, role, level, field, signer subject, signing time) *before* the answer; when
  the audit entry cannot be written the signed PDF is discarded (503 ``AUDIT_UNAVAILABLE``). A
  refused or failed signature is audited as ``pdf.sign.failed`` with its error code (except rate
  limiting, which would let a client flood the log).
* Signing runs in a :class:`signing.pool.SigningPool` with the key file
  (``settings.signing.keys_file``), created at the first sign request, stored on
  ``Services.extensions["signing_pool"]`` and closed on application cleanup. The TSA for B-T and
  above is ``signing.tsa_url`` (``tsa_timeout``; see :mod:`gateway.pki.signing_services`, which
  still reads the older ``[services]`` table of the key file); B-LT/B-LTA validation data is
  built from ``signing.trust_bundles`` and ``signing.other_certs``. The key file is read once per
  process: restart to pick up changes.

``POST /v1/verify`` (roles officer, eoffice, operator, admin) takes a PDF the same way and answers
the validation report JSON of the gateway's judge pool; ``?etsi=1`` adds the ETSI TS 119 102-2 XML
of each signature. Unreadable is 422 with the error code (``PDF_UNREADABLE``, ``PDF_ENCRYPTED``).
A PDF over ``signing.api_verify_max_bytes`` is 413 ``PDF_TOO_LARGE`` (refused while it
streams); more than ``signing.api_verify_per_token`` verifications of one token at once (per
process) is 429 ``VERIFY_CONCURRENCY_LIMIT`` with Retry-After. The judge pool is asked with
its default lane (``api``), so capacity reserved for intake stays reserved.

PINs, passphrases and document bodies are never logged or audited; only their hashes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import re
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from gateway.api.auth import Principal, Role, principal
from gateway.api.errors import ApiError, Forbidden, NotFound, ServiceUnavailable, TooManyRequests
from gateway.api.jsonutil import json_response
from gateway.api.middleware import REQUEST_ID_KEY
from gateway.api.ratelimit import ConcurrencyLimit, RateLimited, SignRateLimits
from gateway.api.uploads import (
    UnsupportedMediaType,
    form_parts,
    is_form_data,
    read_body,
    read_part,
)
from gateway.config import deprecated_env
from gateway.db import audit
from gateway.pki.keyhealth import KEY_CODES
from gateway.pki.keyhealth import monitor as key_monitor
from gateway.pki.signing_services import signing_services
from gateway.services import SERVICES, Services
from signing.errors import SigningError
from signing.keys import KeyAlias, KeyConfigError, SignerRole, load_key_config
from signing.pool import SigningPool, WorkerCrashed, check_role
from signing.sign import PadesLevel, SignedPdf, SigningServices, SignRequest

log = logging.getLogger(__name__)

SIGN_ROLES = (Role.OFFICER,)
VERIFY_ROLES = (Role.OFFICER, Role.EOFFICE, Role.OPERATOR)
RAW_PDF_TYPES = ("application/pdf", "application/x-pdf", "application/octet-stream")
TEXT_PARAMS = ("reason", "location", "number", "date", "signer_name", "position", "competence",
               "copy_form", "agency_name")
PARAMS = ("key", "role", "level", "page", "box", "field", "etsi", *TEXT_PARAMS)
MAX_PARAM_BYTES = 2048
RETRY_AFTER_BUSY = 1
#: A worker died or the pool was shut down: a new pool is up within seconds.
RETRY_AFTER_RESTART = 5
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: HTTP status of a signing error code (anything else about the request or PDF: 422).
STATUS_BY_CODE = {
    "PDF_TOO_LARGE": 413,
    "PDF_TOO_COMPLEX": 422,
    "PDF_TIMEOUT": 422,
    "FIELD_ALREADY_SIGNED": 409,
    "KEY_UNKNOWN": 404,
    "POOL_OVERLOADED": 503,
    "POOL_CLOSED": 503,
    "POOL_UNAVAILABLE": 503,
    # the key cannot sign until an operator renews its certificate
    "KEY_EXPIRED": 409,
    "KEY_NOT_YET_VALID": 409,
    # the key cannot be loaded or its token reached: the gateway's fault, 503 with Retry-After
    "KEY_UNAVAILABLE": 503,
    # the gateway's own configuration is at fault, not the caller: 503 with Retry-After (and
    # /readyz says what is missing), never a 4xx blaming the request nor a bare 500
    "KEY_CONFIG": 503,
    "POOL_NO_KEYS": 503,
    "TRUST_CONFIG": 503,
    # pyHanko could not produce a signature for this PDF (its parse errors are PDF_UNREADABLE)
    "SIGN_FAILED": 422,
}
#: Library codes renamed for the API (a key that cannot be loaded and a token that cannot be
#: reached are one thing to a caller: the key is unavailable now).
API_CODES = {"KEY_UNKNOWN_ALIAS": "KEY_UNKNOWN", "KEY_LOAD": "KEY_UNAVAILABLE",
             "KEY_TOKEN": "KEY_UNAVAILABLE"}
#: Codes of the gateway's own configuration (their messages name its files: never sent).
CONFIG_CODES = frozenset({"KEY_CONFIG", "POOL_NO_KEYS", "TRUST_CONFIG"})
#: Seconds a caller should wait after ``KEY_UNAVAILABLE`` (a token replugged, an HSM back).
RETRY_AFTER_KEY = 30


class Busy(ServiceUnavailable):
    """503 with Retry-After: the pool has no room now."""

    def __init__(self, message: str, *, code: str = "POOL_OVERLOADED",
                 retry_after: int = RETRY_AFTER_BUSY) -> None:
        super().__init__(message, code=code, retry_after=retry_after)


def api_error(exc: SigningError, alias: str | None = None) -> ApiError:
    """The API error for a :class:`SigningError` (status from its code, 422 by default; every
    503 with Retry-After). A key or configuration fault is told without its message (CWE-209:
    those name the key file, the PKCS#12, PIN file or PKCS#11 module): the code says what
    failed, ``GET /v1/keys/health`` and the log tell an operator which file."""
    code = API_CODES.get(exc.code, exc.code)
    status = STATUS_BY_CODE.get(code, 422)
    details = {k: v for k, v in exc.detail.items() if isinstance(v, str | int | float | bool)}
    if code == "KEY_UNAVAILABLE":
        log.warning("signing key unavailable", extra={"alias": alias, "code": exc.code,
                                                      "error": str(exc)})
        what = f"key {alias!r}" if alias else "the signing key"
        return ServiceUnavailable(
            f"{what} cannot be loaded or its token reached now ({exc.code}); try again later",
            code=code, retry_after=RETRY_AFTER_KEY,
            details={**details, "cause": exc.code, **({"alias": alias} if alias else {})})
    if status == 503:
        wait = RETRY_AFTER_BUSY if code == "POOL_OVERLOADED" else RETRY_AFTER_RESTART
        message = str(exc)
        if code in CONFIG_CODES:
            log.error("signing configuration unusable", extra={"code": code, "error": message})
            message = f"the gateway's signing configuration is not usable ({code}): see /readyz"
        return Busy(message, code=code, retry_after=wait)
    return ApiError(str(exc), code=code, status=status, details=details)


def pool_crashed(exc: BrokenProcessPool) -> Busy:
    """503: a worker process died running this job (the pool retried it once already)."""
    return Busy("a signing/verification worker died running this job; retry later",
                code=getattr(exc, "code", "POOL_BROKEN"), retry_after=RETRY_AFTER_RESTART)


# --- request bodies ----------------------------------------------------------------------------


def _too_large(limit: int) -> ApiError:
    return ApiError(f"the PDF exceeds {limit} bytes", code="PDF_TOO_LARGE", status=413)


async def read_upload(request: web.Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """(PDF bytes, parameters): multipart ``file`` part + fields, or a raw PDF body + query.

    Query parameters are read in both cases; form fields override them. The PDF is refused
    (413 ``PDF_TOO_LARGE``) as soon as ``limit`` bytes are passed, before the rest is read.
    """
    params = {k: v for k, v in request.query.items() if k in PARAMS}
    if is_form_data(request):
        data = None
        async for part in form_parts(request):
            if part.name == "file":
                if data is not None:
                    raise ApiError("send exactly one file part", code="INVALID_BODY")
                data = await read_part(part, limit, _too_large(limit))
            elif part.name in PARAMS:
                raw = await read_part(part, MAX_PARAM_BYTES, ApiError(
                    f"parameter {part.name} is too long", code="INVALID_PARAMETER"))
                try:
                    params[part.name] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    params[part.name] = _surrogates_or_fail(part.name, raw)
                    continue
        if data is None:
            raise ApiError("the multipart body has no file part", code="PDF_MISSING")
        return data, params
    if request.content_type not in RAW_PDF_TYPES:
        raise UnsupportedMediaType(
            "send multipart/form-data with a file part or an application/pdf body")
    data = await read_body(request, limit, _too_large(limit))
    if not data:
        raise ApiError("the body is empty: send the PDF", code="PDF_MISSING")
    return data, params


def _surrogates_or_fail(name: str, raw: bytes) -> str:
    """A parameter that is not UTF-8: its text when only encoded surrogates made it so (refused
    later as :func:`check_text`), else 400 ``INVALID_PARAMETER``."""
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise ApiError(f"parameter {name} is not UTF-8", code="INVALID_PARAMETER",
                       details={"parameter": name}) from None


def looks_like_pdf(data: bytes) -> bool:
    """A PDF header within the first 1024 bytes (what readers tolerate)."""
    return b"%PDF-" in data[:1024]


# --- sign parameters ---------------------------------------------------------------------------


def _bad(name: str, message: str) -> ApiError:
    return ApiError(f"{name}: {message}", code="INVALID_PARAMETER", details={"parameter": name})


#: Characters no signature text may hold: C0 controls and DEL, C1 controls, the bidirectional
#: embedding/override/isolate controls (U+202A-U+202E, U+2066-U+2069: they reorder what a reader
#: sees, the "Trojan Source" trick) and lone surrogates (no UTF-8 form: nothing could store them).
_FORBIDDEN_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def check_text(name: str, value: str) -> None:
    """422 ``PARAM_INVALID`` naming ``name`` when ``value`` holds a forbidden character."""
    found = _FORBIDDEN_TEXT.search(value)
    if found is not None:
        raise ApiError(f"{name}: character U+{ord(found.group()):04X} is not allowed (control,"
                       " bidirectional control or lone surrogate)", code="PARAM_INVALID",
                       status=422, details={"parameter": name})


#: Largest coordinate of a signature box (ISO 32000-1 Annex C: user space is at most
#: 14,400 units wide).
MAX_COORDINATE = 14_400.0


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise _bad("box", "must be x1,y1,x2,y2 in points") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in (x1, y1, x2, y2)):
        raise _bad("box", f"coordinates must be finite points within ±{MAX_COORDINATE:g}")
    if not (x2 > x1 and y2 > y1):
        raise _bad("box", "needs x2 > x1 and y2 > y1")
    return x1, y1, x2, y2


def sign_request_from(params: dict[str, str]) -> tuple[str, SignRequest]:
    """(key alias, :class:`SignRequest`) from the request parameters; 400 when malformed, 422
    ``PARAM_INVALID`` when a text holds a character :func:`check_text` refuses."""
    for name in ("key", *TEXT_PARAMS):
        check_text(name, params.get(name) or "")
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


def signing_backend(svc: Services) -> SigningBackend:
    """The gateway's signing backend, created on first use (no await: no creation race)."""
    backend = svc.extensions.get("signing_backend")
    if backend is not None:
        return backend
    cfg = svc.settings.signing
    if not cfg.keys_file:
        raise ServiceUnavailable("this gateway has no signing keys configured (signing.keys_file)",
                                 code="SIGNING_NOT_CONFIGURED")
    try:
        keys = load_key_config(cfg.keys_file)
        services = signing_services(cfg)
    except KeyConfigError as exc:
        raise api_error(exc) from None
    except (OSError, ValueError) as exc:  # the gateway's configuration: 503, never a 500
        raise api_error(KeyConfigError(f"key config unreadable: {exc}")) from None
    pool = SigningPool(max_workers=cfg.workers, key_config_path=cfg.keys_file,
                       max_pending=cfg.max_queue, services=services,
                       memory_mb=cfg.job_memory_mb, job_timeout=cfg.job_timeout)
    backend = SigningBackend(pool, keys, services)
    svc.extensions["signing_backend"] = backend
    svc.extensions["signing_pool"] = pool
    return backend


async def close_backend(app: web.Application) -> None:
    svc = app[SERVICES]
    backend = svc.extensions.pop("signing_backend", None)
    svc.extensions.pop("signing_pool", None)
    if backend is not None:
        await asyncio.get_running_loop().run_in_executor(None, backend.pool.close)


def release_backend(svc: Services) -> None:
    """Close a signing pool left behind at shutdown, without waiting for its workers (the
    application's cleanup may have run before the key checks stopped)."""
    backend = svc.extensions.pop("signing_backend", None)
    svc.extensions.pop("signing_pool", None)
    if backend is not None:
        backend.pool.close(wait=False)


def rate_limits(svc: Services) -> SignRateLimits:
    limits = svc.extensions.get("sign_rate_limits")
    if limits is None:
        cfg = svc.settings.signing
        for warning in deprecated_env():
            log.warning(warning)
        limits = svc.extensions["sign_rate_limits"] = SignRateLimits(cfg.rate_per_token,
                                                                    cfg.rate_per_key)
    return limits


# --- audit -------------------------------------------------------------------------------------


async def write_audit(svc: Services, who: Principal, alias: str, action: str,
                      detail: dict[str, Any]) -> int:
    """Append one entry and return its id; 503 ``AUDIT_UNAVAILABLE`` when it cannot be written."""
    try:
        async with svc.pool.acquire() as conn, conn.transaction():
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
            "signing_time": signed.signing_time.isoformat(),
            "existing_signatures": signed.existing_signatures}


# --- handlers ----------------------------------------------------------------------------------


def discard_backend(svc: Services, backend: SigningBackend) -> None:
    """Forget a broken backend (a worker died): the next request builds a fresh pool."""
    if svc.extensions.get("signing_backend") is backend:
        svc.extensions.pop("signing_backend", None)
        svc.extensions.pop("signing_pool", None)
    backend.pool.close(wait=False)


async def sign_with(svc: Services, backend: SigningBackend, data: bytes, request: SignRequest,
                    alias: str) -> SignedPdf:
    """Sign ``data`` with ``alias`` in the signing pool (``/v1/sign``, and the agency seal of
    ``/v1/outbound``); every failure is the :class:`ApiError` a caller gets."""
    key = backend.keys.get(alias)
    if key is None:
        raise NotFound(f"no key configured under alias {alias!r}", code="KEY_UNKNOWN")
    try:
        check_role(key.role, request.role, alias)
        if not looks_like_pdf(data):
            raise ApiError("the body is not a PDF (no %PDF- header)", code="PDF_UNREADABLE",
                           status=422)
        signed = await backend.pool.sign(data, request, alias)
    except SigningError as exc:
        if exc.code in KEY_CODES and (keys := key_monitor(svc)) is not None:
            keys.record_error(alias, exc.code, str(exc), canary=False)
        raise api_error(exc, alias) from None
    except BrokenProcessPool as exc:
        log.error("signing worker died", extra={"alias": alias, "error": type(exc).__name__})
        if not isinstance(exc, WorkerCrashed):  # WorkerCrashed: the pool replaced itself
            discard_backend(svc, backend)
        raise pool_crashed(exc) from None
    if (keys := key_monitor(svc)) is not None:
        keys.record_signed(alias)
    return signed


async def post_sign(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    who = principal(request, *SIGN_ROLES)
    limits = rate_limits(svc)
    limits.take_token(who.client_id)
    data, params = await read_upload(request, svc.settings.max_document_bytes)
    alias, sign_req = sign_request_from(params)
    sign_req = dataclasses.replace(
        sign_req, check_existing=True,
        refuse_invalid_existing=svc.settings.signing.refuse_invalid_existing)
    base = {"input_sha256": hashlib.sha256(data).hexdigest(), "input_size": len(data),
            "role": sign_req.role.value, "level": sign_req.level.value,
            "request_id": request.get(REQUEST_ID_KEY)}
    if sign_req.document_number:
        base["number"] = sign_req.document_number
    try:
        if not who.may_use_key(alias):
            raise Forbidden(f"this token may not use key {alias!r}", code="KEY_FORBIDDEN")
        backend = signing_backend(svc)
        if alias in backend.keys:
            limits.take_key(alias)
        signed = await sign_with(svc, backend, data, sign_req, alias)
    except RateLimited:
        raise
    except ApiError as exc:
        await write_audit(svc, who, alias, "pdf.sign.failed",
                          {**base, "error": exc.code, "status": exc.status})
        raise
    except Exception:
        log.exception("signing crashed", extra={"alias": alias})
        await write_audit(svc, who, alias, "pdf.sign.failed",
                          {**base, "error": "SIGN_FAILED", "status": 500})
        raise ApiError("signing failed; see the gateway log", code="SIGN_FAILED",
                       status=500) from None
    audit_id = await write_audit(svc, who, alias, "pdf.sign", _signed_detail(base, signed))
    log.info("pdf signed", extra={"alias": alias, "actor": who.actor(), "sha256": signed.sha256,
                                  "field": signed.field_name, "audit_id": audit_id})
    return web.Response(body=signed.data, content_type="application/pdf", headers={
        "X-Signed-SHA256": signed.sha256,
        "X-Signature-Field": signed.field_name,
        "X-Audit-Id": str(audit_id),
        # none | intact | invalid: the signatures the PDF carried before this one
        "X-Existing-Signatures": signed.existing_signatures or "unchecked",
    })


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def verify_limits(svc: Services) -> ConcurrencyLimit:
    limits = svc.extensions.get("verify_limits")
    if limits is None:
        limits = svc.extensions["verify_limits"] = ConcurrencyLimit(
            svc.settings.signing.api_verify_per_token)
    return limits


async def post_verify(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    who = principal(request, *VERIFY_ROLES)
    limits = verify_limits(svc)
    if not limits.acquire(who.client_id):
        raise TooManyRequests(
            f"this token may run at most {limits.per_key} verifications at once",
            code="VERIFY_CONCURRENCY_LIMIT", retry_after=RETRY_AFTER_BUSY,
            details={"scope": "token", "limit": limits.per_key})
    try:
        return await _verify(svc, request)
    finally:
        limits.release(who.client_id)


async def _verify(svc: Services, request: web.Request) -> web.Response:
    data, params = await read_upload(request, svc.settings.signing.api_verify_max_bytes)
    judge = svc.judge
    if judge is None:
        raise ServiceUnavailable("the verifier is not running", code="VERIFIER_UNAVAILABLE")
    policy = judge.policy
    if _truthy(params.get("etsi")):
        policy = dataclasses.replace(policy, etsi_xml=True)
    try:
        report = await judge.pool.verify(data, policy)
    except SigningError as exc:
        raise api_error(exc) from None
    except BrokenProcessPool as exc:
        log.error("verification worker died", extra={"error": type(exc).__name__})
        raise pool_crashed(exc) from None
    return json_response(report.to_json())


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/sign", post_sign)
    app.router.add_post("/v1/verify", post_verify)
    app.on_cleanup.append(close_backend)

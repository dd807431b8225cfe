"""VDXP request authentication: the ``XroadVnpt-*`` headers and their HMAC-SHA256.

Protocol rule (VDXP SDK 3.0.201608, ``VnptService.addXroadVnptHashHeader``):

- every request parameter ``<name>`` travels as a header ``XroadVnpt-<name>: <value>``; the
  parameters always include ``systemid`` and ``timestamp``;
- ``XroadVnpt-sign-header-key`` lists the parameter names joined with ``;``;
- ``XroadVnpt-sign-header`` is a compact JSON object ``{"XroadVnpt-<name>": "<value>", ...}``;
- ``XroadVnpt-hash-header`` is the lowercase hex HMAC-SHA256 of that JSON string (UTF-8) keyed
  with the UTF-8 bytes of the secret;
- ``XroadVnpt-version: 3.0.201608``.

The JSON key order is not canonical (the SDK builds it from a Java ``HashMap``), so a verifier
MUST compute the HMAC over the JSON string exactly as received, then check that every
``XroadVnpt-<name>`` header equals the signed value, and that no unsigned parameter header rides
along.

Timestamp: the SDK formats ``new Date()`` with ``SimpleDateFormat("ddMMyyyy'T'HHmmss+SSSS")`` in
the JVM's zone. In that pattern ``+`` is a literal and ``SSSS`` is the *millisecond* field padded
to four digits (``0042``) - it is not a UTC offset. We therefore emit the wall-clock time of
Vietnam (UTC+07:00, no DST; the zone VDXP hosts and SDK users run in) and read it back the same
way. Example: 2024-03-01 14:05:09.042 +07:00 -> ``01032024T140509+0042``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone

from gateway.axis.errors import AxisAuthError

PREFIX = "XroadVnpt-"
SIGN_HEADER_KEY = "XroadVnpt-sign-header-key"
SIGN_HEADER = "XroadVnpt-sign-header"
HASH_HEADER = "XroadVnpt-hash-header"
VERSION_HEADER = "XroadVnpt-version"
VERSION = "3.0.201608"
USER_AGENT = "edoc-gateway/0.1 XRoad/VPCP"

#: Vietnam time (Asia/Ho_Chi_Minh has had no DST since 1975).
VDXP_TZ = timezone(timedelta(hours=7), "ICT")

_RESERVED = {SIGN_HEADER_KEY.lower(), SIGN_HEADER.lower(), HASH_HEADER.lower(),
             VERSION_HEADER.lower()}
_TS_RE = re.compile(r"^(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})\+(\d{4})$")
DEFAULT_MAX_SKEW = timedelta(minutes=5)


def format_timestamp(now: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in Vietnam time; ``SSSS`` = milliseconds on 4 digits."""
    if now.tzinfo is None:
        raise ValueError("timestamp needs an aware datetime")
    local = now.astimezone(VDXP_TZ)
    return f"{local:%d%m%Y}T{local:%H%M%S}+{local.microsecond // 1000:04d}"


def parse_timestamp(value: str) -> datetime:
    """Inverse of :func:`format_timestamp`; raises ``ValueError`` on anything else."""
    m = _TS_RE.match(value.strip())
    if not m:
        raise ValueError(f"not a ddMMyyyy'T'HHmmss+SSSS timestamp: {value!r}")
    day, month, year, hour, minute, second, millis = (int(g) for g in m.groups())
    if millis > 999:
        raise ValueError(f"milliseconds out of range in {value!r}")
    return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=VDXP_TZ)


def hash_file(data: bytes, *, sdk_compatible: bool = True) -> str:
    """The ``hash-file`` parameter of ``sendEdoc``: SHA-256 of the .edxml in hex.

    The official SDK writes each byte with ``Integer.toHexString(0xFF & b)``, i.e. WITHOUT
    zero padding (``0x0a`` -> ``a``), so its value is usually shorter than 64 characters. The real
    axis accepts what the SDK sends, so that quirky form is the default; ``sdk_compatible=False``
    gives the ordinary 64-character hex.
    """
    digest = hashlib.sha256(data).digest()
    return _sdk_hex(digest) if sdk_compatible else digest.hex()


def _sdk_hex(digest: bytes) -> str:
    return "".join(f"{b:x}" for b in digest)


def hash_file_matches(data: bytes, value: str) -> bool:
    """Whether ``value`` is the SHA-256 of ``data`` in either hex form of :func:`hash_file`
    (the package is hashed once)."""
    value = value.strip().lower()
    digest = hashlib.sha256(data).digest()
    return any(hmac.compare_digest(value, form) for form in (_sdk_hex(digest), digest.hex()))


def sign_headers(
    params: Mapping[str, str], system_id: str, secret: str, now: datetime
) -> dict[str, str]:
    """All ``XroadVnpt-*`` headers of one request carrying ``params`` (names without prefix).

    ``systemid`` and ``timestamp`` are added here and must not be in ``params``.
    """
    clash = {"systemid", "timestamp"} & set(params)
    if clash:
        raise ValueError(f"parameters set by the signer: {sorted(clash)}")
    values: dict[str, str] = {"systemid": system_id, "timestamp": format_timestamp(now)}
    for name, value in params.items():
        if not name or ";" in name or (PREFIX + name).lower() in _RESERVED:
            raise ValueError(f"invalid parameter name {name!r}")
        if any(c in str(value) for c in "\r\n\x00"):
            raise ValueError(f"parameter {name!r}: header values cannot hold CR, LF or NUL")
        values[name] = str(value)
    signed = {PREFIX + name: value for name, value in values.items()}
    sign_header = json.dumps(signed, separators=(",", ":"), ensure_ascii=True)
    digest = hmac.new(secret.encode("utf-8"), sign_header.encode("utf-8"), hashlib.sha256)
    headers = dict(signed)
    headers[SIGN_HEADER_KEY] = ";".join(values)
    headers[SIGN_HEADER] = sign_header
    headers[HASH_HEADER] = digest.hexdigest()
    headers[VERSION_HEADER] = VERSION
    return headers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def verify_headers(
    headers: Mapping[str, str],
    secret_lookup: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> str:
    """Check the ``XroadVnpt-*`` authentication of a request; return the caller's system id.

    Raises :class:`AxisAuthError` with code ``missing_signature``, ``malformed_signature``,
    ``signature_mismatch`` (a header differs from its signed value), ``unsigned_parameter``,
    ``unknown_system``, ``bad_signature`` (HMAC differs: wrong secret or tampering),
    ``bad_timestamp`` or ``stale_timestamp`` (farther than ``max_skew`` from ``now``).
    """
    sign_header = _header(headers, SIGN_HEADER)
    key_header = _header(headers, SIGN_HEADER_KEY)
    hash_header = _header(headers, HASH_HEADER)
    if not sign_header or key_header is None or not hash_header:
        raise AxisAuthError("missing_signature", "XroadVnpt signature headers are missing")
    try:
        signed = json.loads(sign_header)
    except ValueError as exc:
        raise AxisAuthError("malformed_signature", "sign-header is not JSON") from exc
    if not isinstance(signed, dict) or not all(isinstance(v, str) for v in signed.values()):
        raise AxisAuthError("malformed_signature", "sign-header is not a JSON object of strings")
    names = [n.strip() for n in key_header.split(";") if n.strip()]
    if {PREFIX + n for n in names} != set(signed) or len(names) != len(signed):
        raise AxisAuthError("malformed_signature", "sign-header-key does not match sign-header")
    for name in names:
        if _header(headers, PREFIX + name) != signed[PREFIX + name]:
            raise AxisAuthError("signature_mismatch", f"header {PREFIX}{name} differs from signed")
    signed_lower = {k.lower() for k in signed}
    for key in headers:
        lowered = key.lower()
        if lowered.startswith(PREFIX.lower()) and lowered not in _RESERVED | signed_lower:
            raise AxisAuthError("unsigned_parameter", f"header {key} is not signed")
    system_id = signed.get(PREFIX + "systemid")
    raw_ts = signed.get(PREFIX + "timestamp")
    if not system_id or raw_ts is None:
        raise AxisAuthError("malformed_signature", "systemid and timestamp must be signed")
    secret = secret_lookup(system_id)
    if secret is None:
        raise AxisAuthError("unknown_system", f"unknown system id {system_id!r}")
    expected = hmac.new(secret.encode("utf-8"), sign_header.encode("utf-8"), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), hash_header.strip().lower()):
        raise AxisAuthError("bad_signature", "hash-header does not match (wrong secret?)")
    try:
        when = parse_timestamp(raw_ts)
    except ValueError as exc:
        raise AxisAuthError("bad_timestamp", str(exc)) from exc
    if abs(now - when) > max_skew:
        raise AxisAuthError(
            "stale_timestamp", f"timestamp {raw_ts} is more than {max_skew} away from axis time"
        )
    return system_id


def signed_params(headers: Mapping[str, str]) -> dict[str, str]:
    """Parameter name -> value of a request already checked by :func:`verify_headers`."""
    key_header = _header(headers, SIGN_HEADER_KEY) or ""
    names = [n.strip() for n in key_header.split(";") if n.strip()]
    return {name: _header(headers, PREFIX + name) or "" for name in names}

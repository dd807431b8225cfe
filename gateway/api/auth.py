"""Bearer-token authentication and role/scope checks.

Tokens are ``edoc_`` + 43 URL-safe characters (256 random bits) and are stored only as
their SHA-256 (a fast hash is right for high-entropy secrets). Roles:

``eoffice``   an agency's eOffice system: sees and acts on its agencies' documents only
``officer``   a signing officer: signs/verifies with its own key aliases only
``operator``  watches and repairs: all documents, queues, dead letters
``admin``     everything, including clients and configuration
``axis``      an axis or peer that pushes documents to ``/v1/axis/inbox``

No token or an unknown/revoked/expired one gives 401; a valid token whose role or
scope does not allow the call gives 403. A bearer value that is not an RFC 6750 §2.1 ``b64token``
(non-ASCII bytes, spaces, control characters) is 401 ``AUTH_INVALID`` without a database lookup.

Each gateway process remembers an authenticated token for :data:`AUTH_CACHE_TTL` seconds
(10 s) instead of asking the database on every request (:class:`PrincipalCache`): a revoked
token, or a changed role or scope, therefore takes effect within that time in every process;
an expired token stops working at its ``expires_at`` exactly (the cache never outlives it).
Unknown, revoked and expired tokens are never cached. ``api_clients.last_used_at`` is written
at most once per :data:`LAST_USED_RESOLUTION` seconds (60 s) per client.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import asyncpg
from aiohttp import web

from gateway.api.errors import Forbidden, Unauthorized

TOKEN_PREFIX = "edoc_"


class Role(StrEnum):
    EOFFICE = "eoffice"
    OFFICER = "officer"
    OPERATOR = "operator"
    ADMIN = "admin"
    AXIS = "axis"


@dataclass(frozen=True)
class Principal:
    client_id: uuid.UUID
    name: str
    role: Role
    agencies: tuple[str, ...] = ()
    key_aliases: tuple[str, ...] = field(default=())

    @property
    def sees_all_agencies(self) -> bool:
        return self.role in (Role.ADMIN, Role.OPERATOR)

    def may_see_agency(self, code: str | None) -> bool:
        return self.sees_all_agencies or (code is not None and code in self.agencies)

    def may_use_key(self, alias: str) -> bool:
        return self.role == Role.ADMIN or alias in self.key_aliases

    def actor(self) -> str:
        return f"{self.role}:{self.name}"


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedClient:
    id: uuid.UUID
    token: str


async def create_client(conn: asyncpg.Connection, *, name: str, role: Role | str,
                        agencies: list[str] | None = None, key_aliases: list[str] | None = None,
                        expires_at: datetime | None = None) -> CreatedClient:
    role = Role(role)
    token = generate_token()
    client_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO api_clients (id, name, token_hash, token_prefix, role, agencies, key_aliases,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        client_id, name, hash_token(token), token[:10], role.value, agencies or [],
        key_aliases or [], expires_at,
    )
    return CreatedClient(client_id, token)


async def authenticate(pool: asyncpg.Pool, token: str) -> Principal | None:
    row = await pool.fetchrow(
        "UPDATE api_clients SET last_used_at = now() WHERE token_hash = $1 AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())"
        " RETURNING id, name, role, agencies, key_aliases",
        hash_token(token),
    )
    if row is None:
        return None
    return Principal(row["id"], row["name"], Role(row["role"]), tuple(row["agencies"]),
                     tuple(row["key_aliases"]))


#: Seconds an authenticated token is trusted without asking the database again (the longest a
#: revoked token keeps working in a running process).
AUTH_CACHE_TTL = 10.0
#: ``api_clients.last_used_at`` is written at most once per this many seconds per client.
LAST_USED_RESOLUTION = 60.0

_LOOKUP = """
WITH c AS (
    SELECT id, name, role, agencies, key_aliases, expires_at, last_used_at FROM api_clients
    WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
), touched AS (
    UPDATE api_clients SET last_used_at = now()
    WHERE id IN (SELECT id FROM c WHERE last_used_at IS NULL
                 OR last_used_at < now() - make_interval(secs => $2))
)
SELECT id, name, role, agencies, key_aliases,
       extract(epoch FROM expires_at - now())::float8 AS expires_in
FROM c
"""


class PrincipalCache:
    """Authenticated principals by token hash, each kept ``ttl`` seconds (never past the
    token's expiry); misses and failures always ask the database."""

    def __init__(self, ttl: float | None = None, max_entries: int = 10_000) -> None:
        self.ttl = AUTH_CACHE_TTL if ttl is None else ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}

    async def authenticate(self, pool: asyncpg.Pool, token: str) -> Principal | None:
        key = hash_token(token)
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        row = await pool.fetchrow(_LOOKUP, key, LAST_USED_RESOLUTION)
        if row is None:
            self._entries.pop(key, None)
            return None
        who = Principal(row["id"], row["name"], Role(row["role"]), tuple(row["agencies"]),
                        tuple(row["key_aliases"]))
        if self.ttl > 0:
            until = now + self.ttl
            if row["expires_in"] is not None:
                until = min(until, now + row["expires_in"])
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (who, until)
        return who


#: RFC 6750 §2.1: ``b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="``
#: (bounded: our tokens are 48 characters).
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]{1,256}=*")


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def well_formed_token(token: str) -> bool:
    """True when ``token`` has the RFC 6750 ``b64token`` syntax (so it can be hashed and looked
    up); anything else (non-ASCII, undecodable bytes, controls) is refused unseen."""
    return _B64TOKEN.fullmatch(token) is not None


PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def principal(request: web.Request, *roles: Role) -> Principal:
    """The caller, checked against ``roles`` (admin always passes). 401/403 otherwise."""
    who = request.get(PRINCIPAL_KEY)
    if who is None:
        raise Unauthorized("a bearer token is required")
    if roles and who.role not in roles and who.role != Role.ADMIN:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"role {who.role.value} may not do this (needs {allowed})",
                        code="ROLE_FORBIDDEN")
    return who


def require_agency(who: Principal, code: str | None) -> None:
    if not who.may_see_agency(code):
        raise Forbidden(f"this token is not scoped to agency {code}", code="AGENCY_FORBIDDEN")

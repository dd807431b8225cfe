"""Bearer-token authentication and role/scope checks.

Tokens are ``edoc_`` + 43 URL-safe characters (256 random bits) and are stored only as
their SHA-256 (a fast hash is right for high-entropy secrets). Roles:

``eoffice``   an agency's eOffice system: sees and acts on its agencies' documents only
``officer``   a signing officer: signs/verifies with its own key aliases only
``operator``  watches and repairs: all documents, queues, dead letters
``admin``     everything, including clients and configuration
``axis``      an axis or peer that pushes documents to ``/v1/axis/inbox``

No token or an unknown/revoked/expired one gives 401; a valid token whose role or
scope does not allow the call gives 403.
"""

from __future__ import annotations

import hashlib
import secrets
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


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


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

"""``edoc-gateway tokens``: create, list and revoke API bearer tokens.

A token is only created for what this gateway knows: every ``--agency`` is served by the
configuration (``EDOC_AGENCIES``) or listed in the agencies table, every ``--key`` is an alias
of the signing key file (``EDOC_SIGNING__KEYS_FILE``). A scope naming nothing would be a
token that silently grants nothing, or grants an agency added later by mistake.
"""

from __future__ import annotations

from gateway.api.auth import Role
from gateway.cli import CliError
from gateway.cli._common import run, settings_from
from gateway.cli._text import label, safe, word


def register(sub) -> None:
    p = sub.add_parser("tokens", help="manage API tokens")
    tsub = p.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    c = tsub.add_parser("create", help="create a token (printed once)")
    c.add_argument("--role", required=True, choices=[r.value for r in Role])
    c.add_argument("--name", type=label, help="who holds the token")
    c.add_argument("--agency", action="append", default=[], metavar="CODE", type=word,
                   help="agency scope (eoffice tokens; repeatable)")
    c.add_argument("--key", action="append", default=[], metavar="ALIAS", type=word,
                   help="signing key alias the officer may use (repeatable)")
    c.set_defaults(func=_create)
    ls = tsub.add_parser("list", help="list tokens (never shows the secret)")
    ls.set_defaults(func=_list)
    rv = tsub.add_parser("revoke", help="revoke a token by id or prefix")
    rv.add_argument("ident", type=word, metavar="ID_OR_PREFIX")
    rv.set_defaults(func=_revoke)


def _dsn(args) -> str:
    return settings_from(args).database_url.get_secret_value()


def check_key_aliases(keys_file: str | None, aliases: list[str]) -> None:
    """Raise CliError (exit 2) unless every alias is in the configured signing key file."""
    if not aliases:
        return
    if not keys_file:
        raise CliError("--key needs the signing key file: EDOC_SIGNING__KEYS_FILE is not set", 2)
    from signing.keys import KeyConfigError, load_key_config

    try:
        known = load_key_config(keys_file)
    except KeyConfigError as exc:
        raise CliError(f"EDOC_SIGNING__KEYS_FILE: {exc}", 2) from None
    for alias in aliases:
        if alias not in known:
            raise CliError(f"unknown key alias {alias!r}: not in EDOC_SIGNING__KEYS_FILE "
                           f"({keys_file})", 2)


async def check_agencies(conn, served: list[str], codes: list[str]) -> None:
    """Raise CliError (exit 2) unless every code is served or in the agencies table."""
    listed = {r["code"] for r in await conn.fetch(
        "SELECT code FROM agencies WHERE code = ANY($1::text[])", codes)}
    for code in codes:
        if code not in served and code not in listed:
            raise CliError(f"unknown agency {code!r}: not served by this gateway"
                           " (EDOC_AGENCIES) nor in the agencies table", 2)


def _create(args) -> int:
    if args.role == Role.EOFFICE and not args.agency:
        raise CliError("an eoffice token needs at least one --agency CODE", 2)
    if args.role == Role.OFFICER and not args.key:
        raise CliError("an officer token needs at least one --key ALIAS", 2)
    args.agency = list(dict.fromkeys(args.agency))
    args.key = list(dict.fromkeys(args.key))
    settings = settings_from(args)
    check_key_aliases(settings.signing.keys_file, args.key)
    return run(_create_main(settings.database_url.get_secret_value(), settings.served_codes,
                            args))


async def _create_main(dsn: str, served: list[str], args) -> int:
    from gateway.api.auth import create_client
    from gateway.db import audit
    from gateway.db.pool import connect

    conn = await connect(dsn)
    try:
        async with conn.transaction():
            await check_agencies(conn, served, args.agency)
            created = await create_client(conn, name=args.name or args.role, role=args.role,
                                          agencies=args.agency, key_aliases=args.key)
            await audit.append(conn, actor="cli", action="token.create", subject=str(created.id),
                               detail={"role": args.role, "agencies": args.agency,
                                       "keys": args.key})
    finally:
        await conn.close()
    print(created.token)
    return 0


def _list(args) -> int:
    return run(_list_main(_dsn(args)))


async def _list_main(dsn: str) -> int:
    from gateway.db.pool import connect

    conn = await connect(dsn)
    try:
        rows = await conn.fetch("SELECT * FROM api_clients ORDER BY created_at")
    finally:
        await conn.close()
    for r in rows:
        state = "revoked" if r["revoked_at"] else "active"
        agencies = ",".join(r["agencies"]) or "-"
        keys = ",".join(r["key_aliases"]) or "-"
        print(safe(f"{r['id']}  {r['token_prefix']}…  {r['role']:<8} {state:<7} {r['name']}"
                   f"  agencies={agencies} keys={keys}"))
    return 0


def _revoke(args) -> int:
    return run(_revoke_main(_dsn(args), args.ident))


async def _revoke_main(dsn: str, ident: str) -> int:
    from gateway.db import audit
    from gateway.db.pool import connect

    conn = await connect(dsn)
    try:
        async with conn.transaction():
            ids = await conn.fetch(
                "UPDATE api_clients SET revoked_at = now() WHERE revoked_at IS NULL AND"
                " (id::text = $1 OR token_prefix = $1) RETURNING id", ident)
            if len(ids) != 1:
                raise CliError(f"no single active token matches {ident!r} ({len(ids)} found)", 2)
            await audit.append(conn, actor="cli", action="token.revoke", subject=str(ids[0]["id"]))
    finally:
        await conn.close()
    print(f"revoked {ids[0]['id']}")
    return 0

"""``edoc-gateway sign FILE.pdf --key ALIAS --role ROLE [--level LEVEL] -o OUT.pdf``.

Keys come from a key configuration file (``--keys FILE`` or ``$EDOC_KEYS_FILE``), TOML or JSON,
one table per alias (see :mod:`signing.keys` for every setting)::

    [keys.seal]
    role = "agency"                     # competent_person | agency | attachment | copy
    owner = "000.00.00.H01"
    source = "pkcs12"                   # or "pkcs11" with module/token_label/key_label/pin_file
    path = "seal.p12"                   # relative to the key file's folder
    passphrase_file = "seal.pass"

B-T and above need ``--tsa URL``; B-LT/B-LTA also ``--trust PEM`` (roots for the validation data).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from gateway.cli import CliError
from gateway.cli._text import bounded_int, safe, word

ROLES = ("competent_person", "agency", "attachment", "copy")
LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError("box must be x1,y1,x2,y2 in points")
    return values  # type: ignore[return-value]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sign",
        help="sign a PDF (PAdES, Decree 30 appearance)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="PDF to sign")
    p.add_argument("--key", required=True, metavar="ALIAS", type=word,
                   help="key alias in the key file")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--level", default="B-B", choices=LEVELS)
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.pdf")
    p.add_argument("--keys", type=Path, metavar="FILE", help="key config (or EDOC_KEYS_FILE)")
    p.add_argument("--tsa", metavar="URL", help="time-stamping authority (B-T and above)")
    p.add_argument("--trust", type=Path, action="append", default=[], metavar="PEM")
    p.add_argument("--number", help="document number/notation (số, ký hiệu)")
    p.add_argument("--date", help="issue date as printed (agency role)")
    p.add_argument("--copy-form", help="SAO Y | SAO LỤC | TRÍCH SAO (copy role)")
    p.add_argument("--agency-name", help="copying agency (copy role)")
    p.add_argument("--signer-name")
    p.add_argument("--position")
    p.add_argument("--competence", help='e.g. "KT. CHỦ TỊCH"')
    p.add_argument("--reason")
    p.add_argument("--location")
    p.add_argument("--field", help="signature field name")
    p.add_argument("--page", type=bounded_int(0, 1_000_000), default=0,
                   help="1-based page (default 0: the last)")
    p.add_argument("--box", type=_box, help="x1,y1,x2,y2 in points (default: automatic)")
    p.add_argument("--image", type=Path, help="PNG (blue signature / red seal)")
    p.add_argument("--invisible", action="store_true", help="no appearance")
    p.set_defaults(func=run)


def run(args) -> int:
    from signing.errors import SigningError
    from signing.keys import KeyConfigError, KeyStore, SignerRole
    from signing.pool import check_role
    from signing.sign import SigningServices, SignRequest, sign_with_services

    keys_file = args.keys or os.environ.get("EDOC_KEYS_FILE")
    if not keys_file:
        raise CliError("no key file: give --keys FILE or set EDOC_KEYS_FILE")
    try:
        pdf = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        image = args.image.read_bytes() if args.image else None
    except OSError as exc:
        raise CliError(f"cannot read {args.image}: {exc.strerror}") from None
    try:
        store = KeyStore.from_file(keys_file)
        key = store.get(args.key)
        check_role(key.role, SignerRole(args.role), args.key)
        request = SignRequest(
            role=args.role,
            level=args.level,
            reason=args.reason,
            location=args.location,
            field_name=args.field,
            box=args.box,
            page=args.page - 1 if args.page > 0 else -1,
            signer_name=args.signer_name,
            signer_position=args.position,
            competence=args.competence,
            document_number=args.number,
            document_date=args.date,
            copy_form=args.copy_form,
            agency_name=args.agency_name,
            image=image,
            visible=not args.invisible,
        )
        services = SigningServices(tsa_url=args.tsa, trust_roots=tuple(args.trust))
        result = sign_with_services(pdf, request, key, services)
    except KeyConfigError as exc:  # the key file or --key is wrong: bad input, not a failure
        raise CliError(f"{exc.code}: {exc}", 2) from None
    except SigningError as exc:
        raise CliError(f"{exc.code}: {exc}", 1) from None
    try:
        args.output.write_bytes(result.data)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror}", 2) from None
    print(safe(
        f"signed {args.output} field={result.field_name} level={result.level.value} "
        f"time={result.signing_time.isoformat()} sha256={result.sha256}"
    ))
    return 0

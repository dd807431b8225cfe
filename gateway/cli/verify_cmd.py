"""``edoc-gateway verify FILE… [--json] [--trust PATH…] [--offline] [--etsi-xml]``

Exit codes: 0 every document valid; 1 any invalid or indeterminate; 2 unreadable input (the
other files are still checked). With ``--json`` one report per line (JSON Lines), each with
``file`` set to the path given. Trust material and revocation caches are built once for all files.
File names and everything read from a PDF (signature field names, signer names) are printed with
control and bidi characters escaped.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.cli import CliError
from gateway.cli._text import json_text, safe


def register(subparsers) -> None:
    p = subparsers.add_parser("verify", help="verify PDF signatures (PAdES) and print a report")
    p.add_argument("files", nargs="+", metavar="FILE", help="PDF files to verify")
    p.add_argument("--json", action="store_true", help="one JSON report per line")
    p.add_argument("--trust", action="append", default=[], metavar="PATH",
                   help="PEM/DER file or folder of trust anchors and intermediates (repeatable)")
    p.add_argument("--offline", action="store_true",
                   help="no network: use embedded/cached revocation data only")
    p.add_argument("--hard-fail", action="store_true",
                   help="missing revocation data makes a signature indeterminate")
    p.add_argument("--revocation-cache", metavar="DIR",
                   help="folder of cached CRL/OCSP responses (DER) used offline")
    p.add_argument("--etsi-xml", action="store_true",
                   help="include the ETSI TS 119 102-2 XML report (slower)")
    p.set_defaults(func=run)


def _read_file(path: str) -> bytes:
    return Path(path).read_bytes()


def _line(path: str, report) -> str:
    sigs = ", ".join(f"{s.field}={s.verdict.value}" for s in report.signatures)
    return safe(f"{path}: {report.verdict.value.upper()} — {report.summary_vi}" + (
        f" [{sigs}]" if sigs else ""))


async def _run(args) -> int:
    from signing.errors import PdfError, TrustConfigError
    from signing.report import Verdict
    from signing.trust import DEFAULT_TRUST_DIRS, RevocationCache
    from signing.verify import VerificationPolicy, Verifier

    trust = list(args.trust) or [str(d) for d in DEFAULT_TRUST_DIRS if d.is_dir()]
    cache = RevocationCache(args.revocation_cache) if args.revocation_cache else None
    try:
        policy = VerificationPolicy(
            trust_paths=trust, offline=args.offline, revocation_cache=cache,
            revocation_mode="hard-fail" if args.hard_fail else "soft-fail",
            etsi_xml=args.etsi_xml,
        )
        verifier = Verifier(policy)
    except TrustConfigError as exc:
        raise CliError(f"trust configuration: {exc}", 2) from exc
    if not verifier.bundle.anchors:
        print("edoc-gateway: warning: no trust anchors configured (--trust); "
              "no signature can be trusted", file=sys.stderr)
    worst = 0
    try:
        for path in args.files:
            try:
                data = _read_file(path)
                report = await verifier.averify(data)
            except (OSError, PdfError) as exc:
                code = getattr(exc, "code", "IO_ERROR")
                if args.json:
                    print(json_text({"file": path, "verdict": "error", "error":
                                     {"code": code, "message": str(exc)}}))
                else:
                    print(safe(f"{path}: ERROR {code}: {exc}"))
                worst = 2
                continue
            report.file = path
            if args.json:
                print(json_text(report.to_json()), flush=False)
            else:
                print(_line(path, report))
            if report.verdict is not Verdict.VALID and worst == 0:
                worst = 1
    finally:
        await verifier.aclose()
        sys.stdout.flush()
    return worst


def run(args) -> int:
    return asyncio.run(_run(args))

"""``edoc-gateway verify PATH… [--json] [--trust PATH…] [--offline] [--etsi-xml] [--jobs N]``

Verifies the signatures of PDF files; a folder stands for every ``*.pdf`` / ``*.PDF`` inside it,
recursively (symbolic links to folders are not followed), in sorted order. The files are
verified in parallel in worker processes (the gateway's signing pool), each under a memory and
a wall-clock limit like inbound documents: a PDF over either is reported ``PDF_TOO_COMPLEX`` /
``PDF_TIMEOUT`` and the other files go on. Results are printed in the order of the files.

Output: one line per file, then a summary line ``N valid / N invalid / N indeterminate /
N unreadable``. With ``--json``: one report per line on stdout (JSON Lines), each with ``file``
set to its path, and the summary line on stderr. On a terminal (stderr a TTY, and never with
``--json``) the progress is shown on stderr while the files are verified.

Exit codes:
  0  every file is a PDF and every one is valid
  1  some file is invalid or indeterminate (none unreadable); also a failure of the
     verification workers themselves
  2  some file is unreadable (not a PDF, damaged, encrypted, over a job limit, or cannot be
     read from disk; the other files are still checked), no PDF found, or a bad argument or
     trust configuration

Trust material and revocation caches are built once per worker for all files. File names and
everything read from a PDF (signature field names, signer names) are printed with control and
bidi characters escaped.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import stat
import sys
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from gateway.cli import CliError
from gateway.cli._text import bounded_int, json_text, positive_float, safe

#: Kinds of outcome, in the order of the summary line.
OUTCOMES = ("valid", "invalid", "indeterminate", "unreadable")


def register(subparsers) -> None:
    p = subparsers.add_parser("verify", help="verify PDF signatures (PAdES) and print a report",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="PATH",
                   help="PDF files, or folders searched recursively for *.pdf")
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
    p.add_argument("--jobs", type=bounded_int(1, 64), metavar="N",
                   help="worker processes (default: CPUs, at most one per file)")
    p.add_argument("--job-timeout", type=positive_float(3600), default=60.0, metavar="SECONDS",
                   help="wall-clock limit of one file (default 60)")
    p.add_argument("--job-memory-mb", type=bounded_int(64, 1 << 20), default=1536, metavar="MB",
                   help="address-space limit of a worker (default 1536)")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Unlisted:
    """A folder under a given one that could not be listed (permissions, a path too long):
    reported as one unreadable entry, never silently left out."""

    path: str
    message: str


def pdf_files(paths: list[str]) -> list[str | Unlisted]:
    """The files named: each file as given, each folder as its ``*.pdf`` files (any case),
    recursively, sorted; links to folders are not followed (no loops). A folder that cannot
    be listed is an :class:`Unlisted` entry in its sorted place."""
    out: list[str | Unlisted] = []
    for arg in paths:
        if not os.path.isdir(arg):
            out.append(arg)
            continue
        unlisted: list[Unlisted] = []

        def failed(exc: OSError, unlisted=unlisted) -> None:
            path = exc.filename if isinstance(exc.filename, str) else str(exc.filename)
            unlisted.append(Unlisted(path, f"cannot list folder: {exc.strerror or exc}"))

        found: list[str | Unlisted] = [
            os.path.join(root, name)
            for root, _dirs, names in os.walk(arg, onerror=failed, followlinks=False)
            for name in names if name.lower().endswith(".pdf")]
        found += unlisted
        out.extend(sorted(found, key=lambda f: f.path if isinstance(f, Unlisted) else f))
    return out


def _line(path: str, report) -> str:
    sigs = ", ".join(f"{s.field}={s.verdict.value}" for s in report.signatures)
    return safe(f"{path}: {report.verdict.value.upper()} — {report.summary_vi}" + (
        f" [{sigs}]" if sigs else ""))


def summary_line(counts: Counter) -> str:
    return " / ".join(f"{counts[k]} {k}" for k in OUTCOMES)


@dataclass
class _Outcome:
    path: str
    report: Any = None
    code: str | None = None
    message: str = ""

    @property
    def kind(self) -> str:
        return "unreadable" if self.report is None else self.report.verdict.value


class _Progress:
    """``verifying 12/40`` on stderr, redrawn in place; only on a terminal, never with --json."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled, self.shown = total, 0, enabled, False

    def step(self) -> None:
        self.done += 1
        self.show()

    def show(self) -> None:
        if self.enabled:
            sys.stderr.write(f"\r\x1b[Kverifying {self.done}/{self.total}")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def _policy(args):
    from signing.errors import TrustConfigError
    from signing.trust import DEFAULT_TRUST_DIRS, RevocationCache, load_trust_bundle
    from signing.verify import VerificationPolicy

    trust = list(args.trust) or [str(d) for d in DEFAULT_TRUST_DIRS if d.is_dir()]
    cache = RevocationCache(args.revocation_cache) if args.revocation_cache else None
    try:
        anchors = load_trust_bundle(trust).anchors  # fail here, once, not in every worker
    except TrustConfigError as exc:
        raise CliError(f"trust configuration: {exc}", 2) from exc
    if not anchors:
        print("edoc-gateway: warning: no trust anchors configured (--trust); "
              "no signature can be trusted", file=sys.stderr)
    return VerificationPolicy(
        trust_paths=trust, offline=args.offline, revocation_cache=cache,
        revocation_mode="hard-fail" if args.hard_fail else "soft-fail",
        etsi_xml=args.etsi_xml,
    )


def _read(path: str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. Anything else is refused before
    a byte is read: a FIFO (opened without blocking), a device, a socket; a file that grows
    past the limit while it is read is refused too (never more than ``limit + 1`` bytes)."""
    from signing.errors import PdfTooLargeError

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(path)
        if info.st_size > limit:  # not read into memory at all
            raise PdfTooLargeError(f"PDF of {info.st_size} bytes exceeds the limit")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while chunk := stream.read(min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise PdfTooLargeError(f"PDF of more than {limit} bytes exceeds the limit")
    return b"".join(chunks)


class NotRegular(OSError):
    """The path names a FIFO, a device or a socket, not a file."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.EINVAL, "not a regular file", path)


async def _verify_one(pool, policy, entry: str | Unlisted) -> _Outcome:
    from signing.errors import PdfError
    from signing.pool import WorkerCrashed

    if isinstance(entry, Unlisted):
        return _Outcome(entry.path, code="IO_ERROR", message=entry.message)
    path = entry
    try:
        data = await asyncio.to_thread(_read, path, policy.max_pdf_bytes)
        report = await pool.verify(data, policy, lane="api")
    except (OSError, PdfError, WorkerCrashed) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _Outcome(path, code=getattr(exc, "code", "IO_ERROR"), message=message)
    report.file = path
    return _Outcome(path, report)


def _print(outcome: _Outcome, as_json: bool) -> None:
    if as_json:
        if outcome.report is not None:
            print(json_text(outcome.report.to_json()))
        else:
            print(json_text({"file": outcome.path, "verdict": "error", "error":
                             {"code": outcome.code, "message": outcome.message}}))
    elif outcome.report is not None:
        print(_line(outcome.path, outcome.report))
    else:
        print(safe(f"{outcome.path}: ERROR {outcome.code}: {outcome.message}"))


async def _run(args) -> int:
    from signing.errors import SigningError
    from signing.pool import SigningPool

    files = pdf_files(args.files)
    if not files:
        raise CliError("no PDF file found in " + ", ".join(args.files), 2)
    policy = _policy(args)
    jobs = args.jobs or max(1, min(os.cpu_count() or 1, len(files)))
    window = 2 * jobs  # files read and queued at once: memory stays bounded, workers busy
    pool = SigningPool(max_workers=jobs, max_pending=window, memory_mb=args.job_memory_mb,
                       job_timeout=args.job_timeout)
    progress = _Progress(len(files), len(files) > 1 and not args.json and sys.stderr.isatty())
    counts: Counter = Counter()
    pending: deque[asyncio.Task] = deque()
    queue = iter(files)

    def submit() -> None:
        path = next(queue, None)
        if path is not None:
            task = asyncio.ensure_future(_verify_one(pool, policy, path))
            task.add_done_callback(lambda _t: progress.step())
            pending.append(task)

    try:
        for _ in range(window):
            submit()
        progress.show()
        while pending:
            try:
                outcome = await pending.popleft()
            except SigningError as exc:  # the pool's own failure, not a file's
                raise CliError(f"verification workers failed: {exc} ({exc.code})", 1) from exc
            submit()
            counts[outcome.kind] += 1
            progress.clear()
            _print(outcome, args.json)
            sys.stdout.flush()
            progress.show()
    finally:
        progress.enabled = False  # cancelled tasks' callbacks must not redraw it
        for task in pending:
            task.cancel()
        progress.clear()
        pool.close()  # kills busy workers: the jobs of cancelled files end (PoolClosed) ...
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:  # ... here, not as "unhandled exception" noise of asyncio.run's shutdown
            await asyncio.wait(others, timeout=10)
        sys.stdout.flush()
    print(summary_line(counts), file=sys.stderr if args.json else sys.stdout)
    if counts["unreadable"]:
        return 2
    return 0 if counts["valid"] == len(files) else 1


def run(args) -> int:
    return asyncio.run(_run(args))

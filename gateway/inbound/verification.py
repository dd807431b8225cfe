"""Judging the PDFs of an inbound document (Decree 30: legal validity rests on the signed PDF).

Every attachment that is a PDF is verified in the signing pool (never on the event loop) and
gets a :class:`FileVerdict`; the document's verdict combines them:

* ``invalid``        any PDF has an invalid signature or cannot be read as a PDF
* ``indeterminate``  otherwise, any PDF is indeterminate (untrusted, expired, encrypted…)
                     or unsigned while others are signed
* ``unsigned``       no PDF carries a signature (or there is no PDF at all)
* ``valid``          every PDF is signed and every signature is valid
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from gateway.config import SigningSettings
from gateway.inbound.policy import limit_code
from signing.errors import PdfEncryptedError, PdfError, SigningError
from signing.pool import PoolOverloaded, SigningPool, WorkerCrashed
from signing.report import Verdict
from signing.verify import VerificationPolicy

PDF_TYPES = ("application/pdf", "application/x-pdf")


def is_pdf(name: str, content_type: str | None, data: bytes) -> bool:
    """Whether an attachment is judged as a PDF: by declared type, by name or by content.

    Any one suffices, and each is read the way a viewer would: a type with parameters
    (``application/pdf; name=x``), a name with trailing dots or spaces (``x.pdf.``), and a
    header anywhere in the first 1024 bytes (PDF 32000-1 readers accept leading junk).
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return (
        media_type in PDF_TYPES
        or name.strip().rstrip(". ").lower().endswith(".pdf")
        or b"%PDF-" in data[:1024]
    )


@dataclass(frozen=True)
class FileVerdict:
    verdict: str  # valid | invalid | indeterminate | unsigned
    summary_vi: str
    report: dict[str, Any]
    signatures: int = 0


@dataclass
class DocumentVerdict:
    verdict: str
    files: dict[int, FileVerdict] = field(default_factory=dict)  # by attachment ordinal

    @property
    def summary_vi(self) -> str:
        bad = [f for f in self.files.values() if f.verdict == self.verdict]
        return bad[0].summary_vi if bad else "Không có tệp PDF"


def combine(files: list[FileVerdict]) -> str:
    verdicts = {f.verdict for f in files}
    if not files or verdicts == {"unsigned"}:
        return "unsigned"
    if "invalid" in verdicts:
        return "invalid"
    if verdicts == {"valid"}:
        return "valid"
    return "indeterminate"


class PdfJudge:
    """Verifies PDFs in a process pool, waiting (not failing) when the pool is busy."""

    def __init__(self, settings: SigningSettings, pool: SigningPool | None = None) -> None:
        self.policy = VerificationPolicy(trust_paths=tuple(settings.trust_bundles),
                                         offline=settings.offline,
                                         revocation_mode=settings.revocation_mode,
                                         revocation_cache=settings.revocation_cache)
        self._own_pool = pool is None
        self.pool = pool or SigningPool(max_workers=settings.workers,
                                        max_pending=settings.max_queue,
                                        memory_mb=settings.job_memory_mb,
                                        job_timeout=settings.job_timeout,
                                        reserved_for_intake=settings.intake_reserved_workers)
        self._slots = asyncio.Semaphore(max(1, self.pool.max_pending))

    async def judge_file(self, data: bytes) -> FileVerdict:
        async with self._slots:
            while True:
                try:
                    report = await self.pool.verify(data, self.policy, lane="intake")
                    break
                except PoolOverloaded:
                    await asyncio.sleep(0.05)
                except PdfEncryptedError as exc:
                    return _error_verdict("indeterminate", exc, data)
                except PdfError as exc:
                    # unreadable, too large, over the memory or time limit (PDF_TOO_COMPLEX,
                    # PDF_TIMEOUT): the file's own fault, never tried again
                    return _error_verdict("invalid", exc, data)
                except WorkerCrashed as exc:
                    # the worker died on this file; a job is never run twice
                    return _error_verdict("invalid", _Crash(str(exc)), data)
                # any other SigningError (trust bundle unreadable, pool closed…) is ours, not
                # the sender's: it propagates, intake fails and the axis offers the package again
        # Decree 30 signatures only: a document timestamp alone leaves the file unsigned
        # (unless it is broken, which is evidence of tampering)
        count = report.signature_count
        if count or report.verdict is Verdict.INVALID:
            return FileVerdict(report.verdict.value, report.summary_vi, report.to_json(), count)
        return FileVerdict("unsigned", "Chưa xác định: tệp PDF không có chữ ký số",
                           report.to_json(), 0)

    async def judge(self, pdfs: dict[int, bytes]) -> DocumentVerdict:
        """Every PDF's verdict, judged concurrently. Once one PDF is stopped by a job limit
        (PDF_TOO_COMPLEX, PDF_TIMEOUT, a crash) the document's decision is made: the PDFs not
        yet started are not judged (``PDF_NOT_VERIFIED``), so that a package of fifty
        hostile PDFs costs one round of job limits, not fifty."""
        tasks = {o: asyncio.ensure_future(self.judge_file(pdfs[o])) for o in pdfs}
        try:
            for done in asyncio.as_completed(list(tasks.values())):
                if limit_code((await done).report):
                    for task in tasks.values():
                        task.cancel()
                    break
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        finally:
            for task in tasks.values():
                task.cancel()
        files = {o: (t.result() if not t.cancelled() else _error_verdict(
            "indeterminate", _NotVerified("not verified: another PDF of the document was"
                                          " stopped by a job limit"), pdfs[o]))
                 for o, t in tasks.items()}
        return DocumentVerdict(combine(list(files.values())), files)

    def close(self) -> None:
        if self._own_pool:
            self.pool.close(wait=False)


class _Crash(SigningError):
    code = "PDF_VERIFICATION_CRASHED"


class _NotVerified(SigningError):
    code = "PDF_NOT_VERIFIED"







def _error_verdict(verdict: str, exc: SigningError, data: bytes) -> FileVerdict:
    code = getattr(exc, "code", "PDF_UNREADABLE")
    head = "Không hợp lệ" if verdict == "invalid" else "Chưa xác định"
    report = {"verdict": verdict, "error": {"code": code, "message": str(exc)},
              "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "signatures": []}
    return FileVerdict(verdict, f"{head}: không đọc được tệp PDF ({code})", report)

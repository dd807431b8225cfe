"""Error classes shared by the ``signing`` library.

Every error carries a machine-readable ``code`` (upper-case, stable) so that callers (the HTTP
API, the CLI, the intake flow) can map it to a status without parsing messages.
"""

from __future__ import annotations


class SigningError(Exception):
    """Base class of every error raised by :mod:`signing`.

    ``code`` is a stable machine-readable identifier; ``detail`` an optional free-form dict.
    """

    code: str = "SIGNING_ERROR"

    def __init__(self, message: str, *, code: str | None = None, detail: dict | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.detail = dict(detail or {})

    def to_json(self) -> dict:
        out: dict = {"code": self.code, "message": str(self)}
        if self.detail:
            out["detail"] = self.detail
        return out


class PdfError(SigningError):
    """The PDF itself cannot be processed."""

    code = "PDF_ERROR"


class PdfUnreadableError(PdfError):
    """The input is not a PDF that can be parsed (broken syntax, truncated, over decode limits)."""

    code = "PDF_UNREADABLE"


class PdfEncryptedError(PdfError):
    """The PDF is encrypted with a non-empty user password (or for certificate holders):
    the gateway cannot open it. Files with an empty user password are verified."""

    code = "PDF_ENCRYPTED"


class PdfTooLargeError(PdfError):
    """The input exceeds the configured size limit."""

    code = "PDF_TOO_LARGE"


class PdfTooComplexError(PdfError):
    """The PDF asked for more memory than a job may use (``signing.job_memory_mb``): a
    cross-reference table declaring billions of entries, a decompression bomb, a deeply nested
    object graph. The job was stopped and is never retried."""

    code = "PDF_TOO_COMPLEX"


class PdfTimeoutError(PdfError):
    """The PDF kept a worker busy past the wall-clock limit (``signing.job_timeout``): the
    worker was killed and the job is never retried."""

    code = "PDF_TIMEOUT"


class TrustConfigError(SigningError):
    """A trust bundle (PEM/DER file or folder) cannot be loaded."""

    code = "TRUST_CONFIG"


class TestPkiError(SigningError):
    """The test PKI cannot be built (missing certomancer, bad configuration)."""

    __test__ = False  # not a pytest test class
    code = "TEST_PKI"

"""Validation report: per document and per signature, JSON-ready, with a Vietnamese summary.

Vocabulary (ETSI EN 319 102-1 §5.1.3): an *indication* is ``TOTAL_PASSED``, ``TOTAL_FAILED`` or
``INDETERMINATE``, optionally with a *sub-indication* (``HASH_FAILURE``, ``REVOKED_NO_POE`` …).
The gateway's *verdict* (``valid`` / ``invalid`` / ``indeterminate``) combines the indication with
the PDF-specific checks (coverage, modifications after signing, DocMDP) that AdES alone does not
judge; see :mod:`signing.verify` for the rule.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Indication",
    "Role",
    "SignatureReport",
    "SignerInfo",
    "ValidationReport",
    "Verdict",
]


class Verdict(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    INDETERMINATE = "indeterminate"


class Indication(enum.StrEnum):
    """EN 319 102-1 main indications."""

    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


class Role(enum.StrEnum):
    """Decree 30/2020 roles of a signature on an official document."""

    COMPETENT_PERSON = "competent_person"  # người có thẩm quyền
    AGENCY = "agency"  # cơ quan, tổ chức (văn thư)
    DOCUMENT_TIMESTAMP = "document_timestamp"
    UNKNOWN = "unknown"


_ROLE_VI = {
    Role.COMPETENT_PERSON: "người có thẩm quyền",
    Role.AGENCY: "cơ quan, tổ chức",
    Role.DOCUMENT_TIMESTAMP: "dấu thời gian tài liệu",
    Role.UNKNOWN: "không rõ vai trò",
}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


@dataclass
class SignerInfo:
    common_name: str | None
    organization: str | None
    serial: str
    issuer: str
    subject: str
    not_before: datetime | None = None
    not_after: datetime | None = None
    sha256: str = ""
    #: HTTP(S) CRL distribution points of the certificate, only when a CA of the trust bundle
    #: issued it (:func:`signing.trust.issued_by_bundle`): where its issuing CA's CRL lives.
    crl_urls: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "common_name": self.common_name,
            "organization": self.organization,
            "serial": self.serial,
            "issuer": self.issuer,
            "subject": self.subject,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "sha256": self.sha256,
            "crl_urls": list(self.crl_urls),
        }


@dataclass
class SignatureReport:
    """Result for one signature or document timestamp (one signature field)."""

    field: str
    kind: str  # "signature" | "document_timestamp" | "unsupported"
    subfilter: str | None
    role: Role = Role.UNKNOWN
    verdict: Verdict = Verdict.INDETERMINATE
    indication: Indication = Indication.INDETERMINATE
    sub_indication: str | None = None
    intact: bool = False
    valid: bool = False
    trusted: bool = False
    revoked: bool = False
    coverage: str | None = None
    modification_level: str | None = None
    docmdp_ok: bool | None = None
    #: DocMDP permission in force (ISO 32000-2 §12.8.2.2: 1, 2, 3; ``None``: approval
    #: signatures only): the strictest of the certification and the signature's own lock.
    docmdp: int | None = None
    bottom_line: bool | None = None
    pades_level: str | None = None
    signer: SignerInfo | None = None
    chain: list[str] = field(default_factory=list)
    trust_anchor: str | None = None
    claimed_signing_time: datetime | None = None
    timestamp_time: datetime | None = None
    timestamp_trusted: bool | None = None
    revocation: dict[str, Any] = field(default_factory=dict)
    md_algorithm: str | None = None
    signed_revision: int | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""  # short machine-friendly reason of a non-valid verdict
    etsi_xml: str | None = None  # ETSI TS 119 102-2 report, on request
    status: Any = field(default=None, repr=False, compare=False)  # the pyHanko status object

    @property
    def integrity_ok(self) -> bool:
        """Intact, cryptographically valid, covers its revision, only allowed later changes
        (trust aside). Added annotations are allowed under DocMDP P=3 or with no DocMDP, as
        in the verdict (:func:`signing.verify.engine.annotations_allowed`)."""
        level_ok = self.modification_level in ("NONE", "LTA_UPDATES", "FORM_FILLING") or (
            self.modification_level == "ANNOTATIONS" and self.docmdp in (None, 3))
        return bool(
            self.intact
            and self.valid
            and self.coverage in ("ENTIRE_FILE", "ENTIRE_REVISION")
            and level_ok
            and self.docmdp_ok is not False
        )

    def judge(self, verdict: Verdict, indication: Indication, sub_indication: str | None,
              reason: str) -> None:
        """Set the verdict with its EN 319 102-1 indication, sub-indication and our reason."""
        self.verdict, self.indication, self.sub_indication, self.reason = (
            verdict, indication, sub_indication, reason)

    def fail_format(self, reason: str = "FORMAT_FAILURE") -> None:
        """``invalid`` / TOTAL_FAILED / FORMAT_FAILURE (the format-checking building block)."""
        self.judge(Verdict.INVALID, Indication.TOTAL_FAILED, "FORMAT_FAILURE", reason)

    def error(self, code: str, message: str) -> None:
        self.errors.append({"code": code, "message": message})

    def warn(self, code: str, message: str) -> None:
        self.warnings.append({"code": code, "message": message})

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "kind": self.kind,
            "subfilter": self.subfilter,
            "role": self.role.value,
            "verdict": self.verdict.value,
            "indication": self.indication.value,
            "sub_indication": self.sub_indication,
            "integrity_ok": self.integrity_ok,
            "intact": self.intact,
            "valid": self.valid,
            "trusted": self.trusted,
            "revoked": self.revoked,
            "coverage": self.coverage,
            "modification_level": self.modification_level,
            "docmdp_ok": self.docmdp_ok,
            "docmdp": self.docmdp,
            "bottom_line": self.bottom_line,
            "pades_level": self.pades_level,
            "signer": self.signer.to_json() if self.signer else None,
            "chain": self.chain,
            "trust_anchor": self.trust_anchor,
            "claimed_signing_time": _iso(self.claimed_signing_time),
            "timestamp_time": _iso(self.timestamp_time),
            "timestamp_trusted": self.timestamp_trusted,
            "revocation": self.revocation,
            "md_algorithm": self.md_algorithm,
            "signed_revision": self.signed_revision,
            "reason": self.reason,
            "errors": self.errors,
            "warnings": self.warnings,
            **({"etsi_xml": self.etsi_xml} if self.etsi_xml is not None else {}),
        }


_REASON_VI = {
    "NO_SIGNATURE": "tài liệu không có chữ ký số",
    "HASH_FAILURE": "nội dung đã bị thay đổi sau khi ký",
    "SIG_CRYPTO_FAILURE": "chữ ký không đúng về mật mã",
    "COVERAGE": "chữ ký không bao phủ toàn bộ phiên bản tài liệu",
    "TRAILING_DATA": "có dữ liệu nối thêm sau khi ký mà không chữ ký nào bao phủ",
    "MODIFIED_AFTER_SIGNING": "tài liệu bị sửa đổi không được phép sau khi ký",
    "DOCMDP": "thay đổi vi phạm quyền sửa đổi do người chứng thực đặt ra",
    "REVOKED": "chứng thư số đã bị thu hồi",
    "EXPIRED": "chứng thư số đã hết hạn",
    "UNTRUSTED": "chứng thư số không thuộc nguồn tin cậy",
    "REVOCATION_UNKNOWN": "không kiểm tra được tình trạng thu hồi",
    "TIMESTAMP": "dấu thời gian không hợp lệ",
    "FORMAT_FAILURE": "chữ ký sai định dạng",
    "NONSTRICT_PARSE": "tệp PDF sai cấu trúc, chỉ đọc được sau khi sửa lỗi",
    "UNSUPPORTED": "loại chữ ký không được hỗ trợ",
    "WEAK_ALGORITHM": "thuật toán mật mã không còn đủ an toàn (ví dụ SHA-1)",
    "GENERIC": "không xác định được tính hợp lệ",
}


@dataclass
class ValidationReport:
    """Result for one PDF: every signature and document timestamp, in signing order."""

    sha256: str
    size: int
    signatures: list[SignatureReport] = field(default_factory=list)
    validation_time: datetime | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    file: str | None = None
    etsi_xml: str | None = None

    @property
    def verdict(self) -> Verdict:
        """``invalid`` if any signature or document timestamp is invalid; else
        ``indeterminate`` if any is, or if there is no signature (a document timestamp proves
        when the bytes existed, not who approved them); else ``valid``."""
        verdicts = {s.verdict for s in self.signatures}
        if Verdict.INVALID in verdicts:
            return Verdict.INVALID
        if Verdict.INDETERMINATE in verdicts or not self.signature_count:
            return Verdict.INDETERMINATE
        return Verdict.VALID

    @property
    def integrity_ok(self) -> bool:
        """Every signature and document timestamp passes its integrity checks, and at least
        one is a signature: a document timestamp proves when the bytes existed, not that
        anyone approved them, so a file with only document timestamps has no integrity."""
        return bool(self.signature_count) and all(s.integrity_ok for s in self.signatures)

    @property
    def signature_count(self) -> int:
        return sum(1 for s in self.signatures if s.kind == "signature")

    @property
    def timestamp_count(self) -> int:
        return sum(1 for s in self.signatures if s.kind == "document_timestamp")

    @property
    def valid_count(self) -> int:
        return sum(1 for s in self.signatures if s.verdict is Verdict.VALID)

    @property
    def summary_vi(self) -> str:
        """One line for people: ``Hợp lệ`` / ``Không hợp lệ`` / ``Chưa xác định`` + reason."""
        verdict = self.verdict
        if verdict is not Verdict.INVALID and not self.signature_count:
            return "Chưa xác định: " + _REASON_VI["NO_SIGNATURE"]
        if verdict is Verdict.VALID:
            roles = ", ".join(
                f"{_ROLE_VI[s.role]} ({s.signer.common_name})" if s.signer else _ROLE_VI[s.role]
                for s in self.signatures
            )
            return f"Hợp lệ: {len(self.signatures)} chữ ký/dấu thời gian hợp lệ — {roles}"
        bad = next(s for s in self.signatures if s.verdict is verdict)
        head = "Không hợp lệ" if verdict is Verdict.INVALID else "Chưa xác định"
        who = f" của {bad.signer.common_name}" if bad.signer and bad.signer.common_name else ""
        reason = _REASON_VI.get(bad.reason, bad.reason or _REASON_VI["GENERIC"])
        return f"{head}: chữ ký {bad.field}{who} — {reason}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.file is not None:
            out["file"] = self.file
        out.update({
            "verdict": self.verdict.value,
            "integrity_ok": self.integrity_ok,
            "summary_vi": self.summary_vi,
            "sha256": self.sha256,
            "size": self.size,
            "signature_count": self.signature_count,
            "timestamp_count": self.timestamp_count,
            "valid_count": self.valid_count,
            "validation_time": _iso(self.validation_time),
            "policy": self.policy,
            "warnings": self.warnings,
            "signatures": [s.to_json() for s in self.signatures],
        })
        if self.etsi_xml is not None:
            out["etsi_xml"] = self.etsi_xml
        return out

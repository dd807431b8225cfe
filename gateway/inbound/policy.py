"""What intake does with an inbound document, from what was found about it (pure rules).

Findings, each with a machine code and the :class:`gateway.config.IntakePolicy` field that
says what to do with it:

==========================  =====================  ===========================================
code                        policy field           when
==========================  =====================  ===========================================
``PDF_TOO_COMPLEX``         ``too_complex``        a PDF was stopped by a job limit (memory,
``PDF_TIMEOUT``                                    time, size) or killed its worker
``PDF_TOO_LARGE``
``ATTACHMENT_UNREADABLE``   ``unreadable``         an attachment judged as a PDF cannot be
                                                   read as one (not a PDF, or a PDF damaged in
                                                   transit: line ends or text re-encoding)
``SIGNATURE_INVALID``       ``invalid``            a PDF signature is invalid
``SIGNER_NOT_SENDER``       ``signer_not_sender``  an agency seal is not a certificate of the
                                                   package's ``From`` agency (or is another
                                                   agency's, when ``From`` has no binding)
``SEAL_MISSING``            ``unsealed``           ``From`` has a binding, the package no seal
``SIGNATURE_INDETERMINATE`` ``indeterminate``      a signature cannot be decided now
``SIGNATURE_MISSING``       ``unsigned``           no PDF signature at all
``SENDER_NOT_BOUND``        ``unknown_sender``     no seal certificate configured for ``From``
``ANNOTATED_AFTER_SIGNING`` ``annotated``          a valid signature's PDF gained comments
                                                   after it (allowed by the signer: no DocMDP
                                                   or P=3; the page shows more than was signed)
==========================  =====================  ===========================================

The strictest action wins (reject > hold > route); its first finding gives the code and the
reason. Findings routed anyway travel with the document as flags.

The sender check (Decree 30/2020 Art. 5 and Appendix I: the agency's digital signature is the
organisation's own): every signature a report classes as the agency's seal must be a
certificate bound to the ``From`` agency in ``[[senders]]`` — by SHA-256, or by an ``O=`` /
``CN=`` pattern. A seal of the city on a package claiming to come from a district is
``SIGNER_NOT_SENDER``, whoever signed it. Subject patterns count only for certificates that
chain to a trust anchor (a self-made certificate can name any organisation); pinned SHA-256
fingerprints count as they are.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.config import IntakePolicy, SenderBinding

REASONS_VI = {
    "PDF_TOO_COMPLEX": "tệp PDF quá phức tạp để kiểm tra (vượt giới hạn bộ nhớ hoặc thời gian)",
    "PDF_TOO_LARGE": "tệp PDF vượt quá kích thước được phép kiểm tra",
    "ATTACHMENT_UNREADABLE": "tệp đính kèm không đọc được dưới dạng PDF (tệp hỏng, không phải"
                             " PDF hoặc bị chuyển đổi khi truyền); đề nghị gửi lại tệp PDF gốc",
    "SIGNATURE_INVALID": "chữ ký số trên văn bản không hợp lệ",
    "SIGNER_NOT_SENDER": "chữ ký số của cơ quan không thuộc cơ quan gửi văn bản",
    "SEAL_MISSING": "văn bản không có chữ ký số của cơ quan gửi",
    "SIGNATURE_INDETERMINATE": "chưa xác định được hiệu lực của chữ ký số",
    "SIGNATURE_MISSING": "văn bản không có chữ ký số",
    "SENDER_NOT_BOUND": "chưa đăng ký chứng thư số của cơ quan gửi",
    "ANNOTATED_AFTER_SIGNING": "tệp PDF có ghi chú (chú thích) được thêm sau khi ký",
}

_SEVERITY = {"route": 0, "hold": 1, "reject": 2}

#: Codes of a file's report when a job limit stopped its PDF (or the PDF killed its worker).
LIMIT_CODES = frozenset({"PDF_TOO_COMPLEX", "PDF_TIMEOUT", "PDF_VERIFICATION_CRASHED",
                         "PDF_TOO_LARGE"})


#: Codes of a file's report when the file is not a readable PDF (ISO 32000-2 §7.5: no header,
#: or a cross-reference table, trailer or stream that does not parse) — the sender's file is
#: broken, not its signature.
UNREADABLE_CODES = frozenset({"PDF_UNREADABLE"})

#: At most this many unreadable attachments are named in a reason, each at most
#: :data:`_NAME_MAX` characters (the reason travels in a status message's ``Description``).
_NAMES_SHOWN, _NAME_MAX = 3, 80


def error_code(file_report: Mapping) -> str | None:
    """The code of a file's report when the file could not be verified at all, else None."""
    error = file_report.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    return code if isinstance(code, str) else None


def annotated_after_signing(file_report: Mapping) -> bool:
    """A signature of the file allowed comments added after it and got some (the verifier's
    ``ANNOTATIONS_ADDED`` warning, :mod:`signing.verify.engine`)."""
    signatures = file_report.get("signatures")
    if not isinstance(signatures, list):
        return False
    return any(isinstance(s, Mapping) and isinstance(s.get("warnings"), list) and any(
        isinstance(w, Mapping) and w.get("code") == "ANNOTATIONS_ADDED" for w in s["warnings"])
        for s in signatures)


def limit_code(file_report: Mapping) -> str | None:
    """The code of a file's verification report when a job limit stopped it, else None."""
    code = error_code(file_report)
    return code if code in LIMIT_CODES else None


def _shown_names(names: list[str]) -> str:
    """Attachment names as a sender reads them in a reason: printable, bounded, a few."""
    shown = []
    for name in names[:_NAMES_SHOWN]:
        clean = "".join(c if c.isprintable() else " " for c in " ".join(name.split()))
        shown.append(clean[:_NAME_MAX] + ("…" if len(clean) > _NAME_MAX else "") or "?")
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" và {more} tệp khác" if more > 0 else "")


@dataclass(frozen=True)
class Finding:
    code: str
    policy_field: str
    reason_vi: str


@dataclass(frozen=True)
class Decision:
    """``state``: ROUTED, HELD or REJECTED; ``code``/``reason`` of the finding that decided
    (None when routed); ``flags``: codes of every finding."""

    state: str
    code: str | None = None
    reason: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SenderCheck:
    """``result``: ``ok`` (every seal bound to the sender), ``mismatch``, ``unbound`` (no
    binding configured for the sender), ``no_seal`` (no agency signature to check)."""

    result: str
    seals: tuple[dict, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"result": self.result, "seals": list(self.seals)}


def agency_seals(reports: Iterable[Mapping]) -> list[dict]:
    """The agency-seal signatures of the files' verification reports (JSON form)."""
    seals = []
    for report in reports:
        for sig in report.get("signatures") or ():
            if sig.get("role") == "agency" and sig.get("kind") == "signature":
                signer = sig.get("signer") or {}
                seals.append({"field": sig.get("field"), "sha256": signer.get("sha256") or "",
                              "organization": signer.get("organization"),
                              "common_name": signer.get("common_name"),
                              "trusted": sig.get("trusted") is True})
    return seals


def _matches(seal: Mapping, binding: SenderBinding) -> bool:
    """A pinned certificate matches as it is; a subject pattern only on a certificate that
    chains to a trust anchor (anyone can make a certificate that says ``O=<any agency>``)."""
    if seal["sha256"] and seal["sha256"].lower() in binding.certificate_sha256:
        return True
    if not seal.get("trusted"):
        return False
    for pattern in binding.subjects:
        attr, _, glob = pattern.partition("=")
        value = seal["organization"] if attr.strip().upper() == "O" else seal["common_name"]
        if value and fnmatch.fnmatchcase(value.casefold(), glob.strip().casefold()):
            return True
    return False


def organ_key(code: str) -> str:
    """Agency codes compare without case and surrounding space (``000.00.01.h99`` is
    ``000.00.01.H99``: a sender must not escape its binding by spelling)."""
    return code.strip().casefold()


def check_sender(sender: str, reports: Iterable[Mapping],
                 bindings: Mapping[str, SenderBinding]) -> SenderCheck:
    """Are the agency seals on the package the ``sender``'s own? ``bindings`` by
    :func:`organ_key`.

    * ``mismatch``: a seal is not bound to the sender — or, when the sender has no binding,
      a seal is bound to *another* agency (the city's seal on a package from an unknown code);
    * ``missing``: the sender has a binding but the package carries no agency seal at all;
    * ``unbound``: seals, none bound to anyone, and no binding for the sender;
    * ``no_seal``: no seal and no binding; ``ok``: every seal is the sender's."""
    seals = agency_seals(reports)
    binding = bindings.get(organ_key(sender))
    if not seals:
        return SenderCheck("missing" if binding is not None else "no_seal")
    if binding is None:
        others = tuple({**s, "bound_to": [b.agency for b in bindings.values() if _matches(s, b)]}
                       for s in seals)
        if any(s["bound_to"] for s in others):
            return SenderCheck("mismatch", others)
        return SenderCheck("unbound", tuple(seals))
    marked = tuple({**s, "bound": _matches(s, binding)} for s in seals)
    return SenderCheck("ok" if all(s["bound"] for s in marked) else "mismatch", marked)


def findings(verdict: str, file_reports: Iterable[Mapping], sender: SenderCheck, *,
             names: Iterable[str] = ()) -> list[Finding]:
    """Everything intake found about a document, most severe kind first. ``names``: the
    attachment name of each report, in the same order (named in an unreadable one's reason).

    A file that is not a readable PDF is ``ATTACHMENT_UNREADABLE``, not ``SIGNATURE_INVALID``:
    nothing of it can be validated, and what the sender must fix is the file. An invalid
    signature in another PDF of the document is still ``SIGNATURE_INVALID`` beside it."""
    reports = list(file_reports)
    labels = list(names)
    out: list[Finding] = []
    killed = [code for r in reports if (code := limit_code(r))]
    unreadable = [i for i, r in enumerate(reports) if error_code(r) in UNREADABLE_CODES]
    if killed:
        out.append(Finding(killed[0], "too_complex",
                           REASONS_VI.get(killed[0], REASONS_VI["PDF_TOO_COMPLEX"])))
    elif unreadable:
        which = [labels[i] for i in unreadable if i < len(labels)]
        reason = REASONS_VI["ATTACHMENT_UNREADABLE"] + (
            f" (tệp: {_shown_names(which)})" if which else "")
        out.append(Finding("ATTACHMENT_UNREADABLE", "unreadable", reason))
        if verdict == "invalid" and any(r.get("verdict") == "invalid"
                                        for i, r in enumerate(reports) if i not in unreadable):
            out.append(Finding("SIGNATURE_INVALID", "invalid",
                               REASONS_VI["SIGNATURE_INVALID"]))
    elif verdict == "invalid":
        out.append(Finding("SIGNATURE_INVALID", "invalid", REASONS_VI["SIGNATURE_INVALID"]))
    if sender.result == "mismatch":
        out.append(Finding("SIGNER_NOT_SENDER", "signer_not_sender",
                           REASONS_VI["SIGNER_NOT_SENDER"]))
    if sender.result == "missing":
        out.append(Finding("SEAL_MISSING", "unsealed", REASONS_VI["SEAL_MISSING"]))
    if verdict == "indeterminate":
        out.append(Finding("SIGNATURE_INDETERMINATE", "indeterminate",
                           REASONS_VI["SIGNATURE_INDETERMINATE"]))
    if verdict == "unsigned":
        out.append(Finding("SIGNATURE_MISSING", "unsigned", REASONS_VI["SIGNATURE_MISSING"]))
    if sender.result == "unbound":
        out.append(Finding("SENDER_NOT_BOUND", "unknown_sender", REASONS_VI["SENDER_NOT_BOUND"]))
    if any(annotated_after_signing(r) for r in reports):
        out.append(Finding("ANNOTATED_AFTER_SIGNING", "annotated",
                           REASONS_VI["ANNOTATED_AFTER_SIGNING"]))
    return out


def decide(found: list[Finding], policy: IntakePolicy, *, detail: str = "") -> Decision:
    """The strictest action the policy gives any finding (first finding of that action)."""
    flags = tuple(f.code for f in found)
    worst: tuple[str, Finding] | None = None
    for finding in found:
        action = getattr(policy, finding.policy_field)
        if worst is None or _SEVERITY[action] > _SEVERITY[worst[0]]:
            worst = (action, finding)
    if worst is None or worst[0] == "route":
        return Decision("ROUTED", flags=flags)
    action, finding = worst
    reason = finding.reason_vi + (f" ({detail})" if detail and finding.policy_field in (
        "invalid", "indeterminate", "too_complex") else "")
    return Decision("REJECTED" if action == "reject" else "HELD", finding.code, reason, flags)

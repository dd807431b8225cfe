"""The pure rules of intake's decision (gateway.inbound.policy): the sender check and the
policy. Reports are the verification reports' JSON form, as intake sees them."""

from __future__ import annotations

import pytest

from gateway.config import IntakePolicy, SenderBinding
from gateway.inbound.policy import check_sender, decide, findings, organ_key

CITY, DISTRICT = "000.00.01.H99", "000.00.02.H99"
BINDINGS = {organ_key(b.agency): b for b in (
    SenderBinding(agency=CITY, subjects=["O=UBND thành phố*"]),
    SenderBinding(agency=DISTRICT, certificate_sha256=["ab" * 32]),
)}


def report(*sigs: dict) -> dict:
    return {"signatures": list(sigs)}


def seal(org: str, *, trusted: bool = True, sha256: str = "cd" * 32) -> dict:
    return {"kind": "signature", "role": "agency", "trusted": trusted,
            "signer": {"organization": org, "common_name": org, "sha256": sha256}}


def person(org: str) -> dict:
    return {"kind": "signature", "role": "competent_person", "trusted": True,
            "signer": {"organization": org, "common_name": "Nguyễn Văn A", "sha256": "ef" * 32}}


@pytest.mark.parametrize(("sender", "reports", "result"), [
    (CITY, [report(person("UBND thành phố X"), seal("UBND thành phố X"))], "ok"),
    (CITY.lower(), [report(seal("UBND thành phố X"))], "ok"),  # codes compare without case
    # a self-made certificate can name any organisation: patterns need a trusted chain
    (CITY, [report(seal("UBND thành phố X", trusted=False))], "mismatch"),
    (DISTRICT, [report(seal("Anything", trusted=False, sha256="ab" * 32))], "ok"),  # pinned
    (DISTRICT, [report(seal("UBND thành phố X"))], "mismatch"),
    # the city's seal on a package from a code nobody bound
    ("000.00.77.H99", [report(seal("UBND thành phố X"))], "mismatch"),
    ("000.00.77.H99", [report(seal("UBND huyện Lạ"))], "unbound"),
    # a bound sender, a package signed only by a person: no seal at all
    (CITY, [report(person("UBND thành phố X"))], "missing"),
    ("000.00.77.H99", [report(person("UBND thành phố X"))], "no_seal"),
    # every seal must be the sender's, in every PDF
    (CITY, [report(seal("UBND thành phố X")), report(seal("UBND huyện Lạ"))], "mismatch"),
])
def test_sender_check(sender, reports, result):
    assert check_sender(sender, reports, BINDINGS).result == result


def test_strictest_action_wins_and_names_its_finding():
    reports = [report(person("UBND thành phố X"))]
    check = check_sender(CITY, reports, BINDINGS)
    found = findings("indeterminate", reports, check)
    assert [f.code for f in found] == ["SEAL_MISSING", "SIGNATURE_INDETERMINATE"]
    decision = decide(found, IntakePolicy())
    assert (decision.state, decision.code) == ("HELD", "SEAL_MISSING")
    assert decision.flags == ("SEAL_MISSING", "SIGNATURE_INDETERMINATE")
    assert decide(found, IntakePolicy(unsealed="route")).state == "ROUTED"
    assert decide(found, IntakePolicy(unsealed="route", indeterminate="reject")).code == \
        "SIGNATURE_INDETERMINATE"


def test_a_pdf_stopped_by_a_limit_is_too_complex_whatever_else():
    reports = [{"error": {"code": "PDF_TIMEOUT"}, "signatures": []},
               report(seal("UBND thành phố X"))]
    found = findings("invalid", reports, check_sender(CITY, reports, BINDINGS))
    assert found[0].code == "PDF_TIMEOUT"
    assert decide(found, IntakePolicy()).state == "REJECTED"
    # the size limit is a limit too: its own code and reason, never SIGNATURE_INVALID
    large = [{"verdict": "invalid", "error": {"code": "PDF_TOO_LARGE"}, "signatures": []}]
    found = findings("invalid", large, check_sender(CITY, large, BINDINGS))
    assert found[0].code == "PDF_TOO_LARGE"
    assert "SIGNATURE_INVALID" not in [f.code for f in found]
    assert "kích thước" in found[0].reason_vi


UNREADABLE = {"verdict": "invalid", "error": {"code": "PDF_UNREADABLE"}, "signatures": []}


def test_an_unreadable_attachment_is_its_own_finding_named_in_the_reason():
    """ISO 32000-2 §7.5: a file that does not parse as a PDF is ATTACHMENT_UNREADABLE (policy
    ``unreadable``, rejected by default), not SIGNATURE_INVALID; the reason names the file,
    printable and bounded (it travels in a 02's Description)."""
    reports = [{"verdict": "valid", "signatures": []}, UNREADABLE]
    found = findings("invalid", reports, check_sender(CITY, reports, {}),
                     names=["cv.pdf", "phu\x1b[31mluc\u202e.PDF" + "x" * 200])
    assert [f.code for f in found] == ["ATTACHMENT_UNREADABLE"]
    decision = decide(found, IntakePolicy())
    assert (decision.state, decision.code) == ("REJECTED", "ATTACHMENT_UNREADABLE")
    assert "phu [31mluc .PDF" in decision.reason and "cv.pdf" not in decision.reason
    assert decision.reason.isprintable() and len(decision.reason) < 300
    assert decide(found, IntakePolicy(unreadable="hold")).state == "HELD"


def test_an_invalid_signature_beside_an_unreadable_attachment_still_counts():
    """Negative: routing unreadable attachments must not let an invalid signature in another
    PDF of the document through; an error other than PDF_UNREADABLE (e.g. PDF_TOO_LARGE, a
    limit) is never taken for an unreadable attachment."""
    reports = [UNREADABLE, {"verdict": "invalid", "signatures": []}]
    found = findings("invalid", reports, check_sender(CITY, reports, {}))
    assert [f.code for f in found][:2] == ["ATTACHMENT_UNREADABLE", "SIGNATURE_INVALID"]
    lenient = IntakePolicy(unreadable="route")
    assert (decide(found, lenient).state, decide(found, lenient).code) == (
        "REJECTED", "SIGNATURE_INVALID")
    too_large = [{"verdict": "invalid", "error": {"code": "PDF_TOO_LARGE"}, "signatures": []}]
    found = findings("invalid", too_large, check_sender(CITY, too_large, {}))
    assert found[0].code == "PDF_TOO_LARGE"
    assert decide(found, lenient).state == "REJECTED"


def test_comments_added_after_signing_are_a_finding_routed_or_held_by_policy():
    """ANNOTATED_AFTER_SIGNING: a signature that allowed comments (no DocMDP, P=3) got some
    (the verifier's ANNOTATIONS_ADDED warning). Routed flagged by default; an operator may
    hold or reject such documents ([intake] annotated)."""
    annotated = dict(person("UBND thành phố X"),
                     warnings=[{"code": "ANNOTATIONS_ADDED", "message": "…"}])
    sender = check_sender(CITY, [report(annotated)], BINDINGS)
    found = findings("valid", [report(annotated)], sender)
    assert [f.code for f in found] == ["SEAL_MISSING", "ANNOTATED_AFTER_SIGNING"]
    plain = findings("valid", [report(person("UBND thành phố X"))], sender)
    assert "ANNOTATED_AFTER_SIGNING" not in [f.code for f in plain]
    routed = decide(found, IntakePolicy(unsealed="route"))
    assert routed.state == "ROUTED" and "ANNOTATED_AFTER_SIGNING" in routed.flags
    held = decide(found, IntakePolicy(unsealed="route", annotated="hold"))
    assert held.state == "HELD" and held.code == "ANNOTATED_AFTER_SIGNING"
    # hostile report shapes never raise
    for bad in ({"signatures": "x"}, {"signatures": [1, {"warnings": "x"}]},
                {"signatures": [{"warnings": [1, None]}]}):
        assert findings("valid", [bad], sender) is not None
